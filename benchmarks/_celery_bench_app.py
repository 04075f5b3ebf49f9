"""The Celery application of ``bench_engines.py``'s worker: plait's task, plus the raw
contender's tasks (``ident``, ``inc``, ``total_list``) with a Redis result backend."""

from __future__ import annotations

import os

from plait.run._celery_worker import app_for

broker = os.environ["PLAIT_CELERY_BROKER"]
app = app_for(broker)
app.conf.update(result_backend=broker, task_ignore_result=False)


@app.task(name="bench.ident")
def ident(v: int) -> int:
    return v


@app.task(name="bench.inc")
def inc(v: int) -> int:
    return v + 1


@app.task(name="bench.total_list")
def total_list(values: list[int]) -> int:
    return sum(values)
