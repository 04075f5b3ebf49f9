"""The worker side of the Celery executor: plait's Celery task, its application, and the
signing of what travels (see :mod:`plait.run.celery_executor` for the design).

Everything here runs in a Celery worker (the task, in a pool process; the
``task_failure`` handler, in the worker's main process too), except :func:`sign` /
:func:`unsign` and :func:`read_value`, which the driver shares.
"""

from __future__ import annotations

import base64
import os
import time
from dataclasses import dataclass
from typing import Any

from plait.errors import PlaitError, SerializationError, UsageError, WorkerError
from plait.run.remote import describe, failed, run_task
from plait.run.task import TaskResult
from plait.run.worker_setup import install

__all__ = [
    "TASK_NAME",
    "VALUES_TTL",
    "Stored",
    "app_for",
    "celery_module",
    "is_redis",
    "read_value",
    "redis_scheme",
    "register",
    "run_on_celery",
    "sign",
    "unsign",
]

TASK_NAME = "plait.run_step"
_HINT = "pip install 'plait[celery]'"
VALUES_TTL = 24 * 3600  # seconds values and outcomes live in a default Redis transport


def celery_module() -> Any:
    try:
        import celery
    except ImportError as exc:
        raise UsageError(
            f"the Celery executor needs the 'celery' package ({exc}); install it with {_HINT}"
        ) from exc
    return celery


def is_redis(url: str) -> bool:
    return url.partition("://")[0] in ("redis", "rediss", "valkey", "valkeys")


def _secret() -> bytes | None:
    secret = os.environ.get("PLAIT_SECRET")
    return secret.encode() if secret else None


def sign(purpose: str, data: bytes) -> bytes:
    """``data`` marked signed (``S`` and its signature, 64 hex digits) when this process has
    a secret, else marked unsigned (``U``)."""
    secret = _secret()
    if secret is None:
        return b"U" + data
    from plait.store.signing import Signer

    return b"S" + Signer(secret).sign(purpose, data).encode() + data


def unsign(purpose: str, data: bytes) -> bytes:
    """``data`` without its mark and signature. A process with a secret refuses data that
    is unsigned or whose signature does not match; one without reads both (it has nothing
    to check against).

    Raises:
        PlaitError: When the data is refused.
    """
    secret = _secret()
    signed = data[:1] == b"S"
    body = data[65:] if signed else data[1:]
    if secret is None:
        return body
    from plait.store.signing import Signer

    signature = data[1:65].decode("ascii", "replace")
    if not signed or not Signer(secret).verify(signature, purpose, body):
        raise PlaitError(
            f"a Celery {purpose} is not signed with this process's PLAIT_SECRET: refused "
            "(give the driver and the workers the same secret)"
        )
    return body


@dataclass(frozen=True, slots=True)
class Stored:
    """A value held by the transport store, at ``path``."""

    path: str


# -- the worker side ---------------------------------------------------------------------

_CLIENTS: dict[str, Any] = {}  # outcome URL -> Redis client, one per worker process


def _outcomes(url: str) -> Any:
    client = _CLIENTS.get(url)
    if client is None:
        import redis

        client = _CLIENTS[url] = redis.Redis.from_url(redis_scheme(url))
    return client


def redis_scheme(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return scheme.replace("valkey", "redis") + "://" + rest


def run_on_celery(message: str, route: list[str] | None = None) -> None:
    """The Celery task: run one step, store its values, push its outcome.

    ``route`` (outcome URL, list key, token, step label) is plain data, so that the
    worker's main process can report a task whose pool process died
    (:func:`_on_task_failure`) without unpickling anything.
    """
    import cloudpickle

    data = unsign("task", base64.b64decode(message))
    (token, count, item, run_id, element, ticket, template, refs, setup, transport, where) = (
        cloudpickle.loads(data)
    )
    outcome_url, queue, prefix = where
    started = time.time()
    try:
        install(setup)
        if isinstance(item, bytes):  # a fresh copy per task, as run_task would make
            item = cloudpickle.loads(item)
        values = [read_value(transport, ref) for ref in refs]
        result = run_task(item, run_id, element, ticket, template, *values)
        stored: list[Stored] = []
        if result.ok:
            stored = _write_values(transport, prefix, token, result, count, item)
    except Exception as exc:  # never leave the driver waiting
        result, stored = failed(exc, started), []
    _push(outcome_url, queue, token, describe(result), stored, lost=False)


def _push(
    outcome_url: str, queue: str, token: str, result: TaskResult, stored: list[Any], *, lost: bool
) -> None:
    import cloudpickle

    outcome = sign(f"outcome {token}", bytes(cloudpickle.dumps((result, stored, lost))))
    pipe = _outcomes(outcome_url).pipeline(transaction=False)  # one round trip
    pipe.rpush(queue, token.encode() + b":" + outcome)
    pipe.expire(queue, VALUES_TTL)
    pipe.execute()


def _on_task_failure(
    sender: Any = None, exception: BaseException | None = None, kwargs: Any = None, **_: Any
) -> None:
    """Celery's ``task_failure`` signal: plait's task failed outside its own handling (its
    pool process died: ``WorkerLostError``, in the worker's main process; or the message
    was refused, in the pool process). Report it, so the run does not wait for it."""
    if getattr(sender, "name", None) != TASK_NAME:
        return
    route = (kwargs or {}).get("route")
    if not isinstance(route, list | tuple) or len(route) != 4:
        return
    outcome_url, queue, token, label = map(str, route)
    error = exception or PlaitError("the task failed")
    died = type(error).__name__ == "WorkerLostError"
    what = (
        "the Celery worker process running it died or was lost"
        if died
        else "its Celery task failed before the step could run"
    )
    report = WorkerError(
        f"step {label!r}: {what} ({type(error).__name__}: {error})",
        type_name=type(error).__name__,
    )
    try:
        _push(outcome_url, queue, token, failed(report, time.time()), [], lost=died)
    except Exception:  # the Redis of outcomes is unreachable: nothing more to do here
        return


def read_value(transport: Any, ref: Stored) -> Any:
    import pickle

    return pickle.loads(unsign(f"value {ref.path}", transport.read(ref.path)))


def _write_values(
    transport: Any, prefix: str, token: str, result: TaskResult, count: int, item: Any
) -> list[Stored]:
    import cloudpickle

    stored = []
    for index, value in enumerate(result.values[:count]):
        path = f"{prefix}/{token}/{index}"
        try:
            data = bytes(cloudpickle.dumps(value, protocol=5))
        except Exception as exc:
            name = getattr(item, "name", "?")
            raise SerializationError(
                f"step {name!r}: an output ({type(value).__name__}) cannot be pickled to "
                f"reach the next step through the shared store: {exc}; return plain data",
                step=name,
            ) from exc
        transport.write(path, sign(f"value {path}", data))
        stored.append(Stored(path))
    return stored


_CONNECTED: list[bool] = []


def register(app: Any) -> Any:
    """Add plait's task to a Celery application (its workers can then run plait steps);
    returns the task."""
    if not _CONNECTED:
        from celery import signals

        signals.task_failure.connect(_on_task_failure, weak=False)
        _CONNECTED.append(True)
    return app.task(name=TASK_NAME, ignore_result=True, acks_late=False)(run_on_celery)


def app_for(broker: str) -> Any:
    """A Celery application on ``broker`` with plait's task (JSON messages, no results)."""
    celery = celery_module()
    app = celery.Celery("plait", broker=broker or None, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        worker_prefetch_multiplier=1,  # a long step does not hold queued steps back
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )
    register(app)
    return app
