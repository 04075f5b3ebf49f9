"""The runnable example of docs/events.md, run for real: a webhook request starts a run,
SIGTERM stops the server cleanly."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

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
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLAIT_")}
    env["PLAIT_TOKEN"] = "change-me-to-a-long-secret"
    server = subprocess.Popen(
        [sys.executable, "report_server.py"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stderr is not None
        url = ""
        for line in server.stderr:
            if "POST http://" in line:
                url = line.split("POST ", 1)[1].split()[0]
                break
        assert url, "the example announced no URL"
        headers = {"Authorization": "Bearer change-me-to-a-long-secret"}
        request = urllib.request.Request(url, data=b'{"region": "us"}', headers=headers)
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert answer.status == 202
            run_id = json.loads(answer.read())["run_id"]
        status = url.removesuffix("/run") + f"/runs/{run_id}"
        deadline = time.monotonic() + 30
        while True:
            with urllib.request.urlopen(
                urllib.request.Request(status, headers=headers), timeout=30
            ) as answer:
                if json.loads(answer.read())["status"] == "succeeded":
                    break
            assert time.monotonic() < deadline
            time.sleep(0.02)
        server.send_signal(signal.SIGTERM)
        _, stderr = server.communicate(timeout=60)
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()
    assert server.returncode == 0, stderr
    assert "Traceback" not in stderr
    record = Store(str(tmp_path / ".plait")).history.run(run_id)
    assert record.params["region"] == "us"
    assert record.trigger["name"] == "webhook /run"
