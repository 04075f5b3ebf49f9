"""Running the real command line in tests: ``python -m plait ARGS`` in a subprocess.

One helper for every CLI test module, so that each test sees the same clean environment:
no ``PLAIT_*`` variable of the developer's (store, env, secret, token) leaks in, except the
test servers' (``PLAIT_TEST_*``), and a wide terminal, so tables are not wrapped.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def plait(
    *args: str, cwd: Path | str, timeout: float = 120, **env: str
) -> subprocess.CompletedProcess[str]:
    """``python -m plait ARGS`` in ``cwd``; ``env`` adds variables (e.g. ``PLAIT_SECRET``)."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PLAIT_") or k.startswith("PLAIT_TEST_")
    }
    clean["COLUMNS"] = "250"
    clean.update(env)
    return subprocess.run(
        [sys.executable, "-m", "plait", *args],
        cwd=cwd,
        env=clean,
        input="",
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def succeeds(*args: str, cwd: Path | str, **env: str) -> str:
    """The output of ``python -m plait ARGS`` in ``cwd``, which must succeed cleanly."""
    completed = plait(*args, cwd=cwd, **env)
    assert completed.returncode == 0, completed.stderr + completed.stdout
    assert "Traceback" not in completed.stderr, completed.stderr
    return completed.stdout
