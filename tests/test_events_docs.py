"""The runnable example of docs/events.md, run for real: a webhook request starts a run,
SIGTERM stops the server cleanly."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from events_cases import (
    announced_url,
    environment,
    post_run,
    run_status,
    started,
    terminate,
    wait_until,
)
from plait import Store

DOC = Path(__file__).resolve().parent.parent / "docs" / "events.md"


def _example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    found = [b for b in blocks if b.startswith("# report_server.py")]
    assert len(found) == 1
    return found[0]


def test_the_report_server_example_runs_on_a_webhook_request(tmp_path: Path) -> None:
    code = _example()
    assert "port=8000" in code
    (tmp_path / "report_server.py").write_text(code.replace("port=8000", "port=0"))
    token = "change-me-to-a-long-secret"
    env = environment(PLAIT_TOKEN=token)
    command = [sys.executable, "report_server.py"]
    with started(command, tmp_path, env, stdout=subprocess.DEVNULL) as server:
        url = announced_url(server)
        run_id = post_run(url, token, b'{"region": "us"}')
        wait_until(lambda: run_status(url, token, run_id) == "succeeded", what="the run")
        _, stderr = terminate(server)
    assert server.returncode == 0, stderr
    assert "Traceback" not in stderr
    record = Store(str(tmp_path / ".plait")).history.run(run_id)
    assert record.params["region"] == "us"
    assert record.trigger["name"] == "webhook /run"
