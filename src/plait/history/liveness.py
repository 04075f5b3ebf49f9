"""Is the process that ran a run still alive?

A run records its host, its pid and the process's start time (a token that tells a
reused pid from the original process), and a daemon thread refreshes its ``heartbeat``
every :func:`heartbeat_period` seconds while it runs. A ``running`` run is dead when:

- it ran on this host (same name and same pid namespace: two containers sharing the
  host's name do not see each other's pids) and its pid is gone, is a zombie, or now
  belongs to a process that started at another time;
- it ran on another host (or in another pid namespace) and its heartbeat is older than
  :data:`MISSED_BEATS` periods.

A run recorded without a pid (before plait kept one) is never declared dead.
"""

from __future__ import annotations

import os
import platform
import threading
import time
from collections.abc import Callable

__all__ = [
    "MISSED_BEATS",
    "Heartbeat",
    "dead_reason",
    "heartbeat_period",
    "host",
    "process_start",
]

MISSED_BEATS = 3
_DEFAULT_PERIOD = 10.0


def host() -> str:
    """This machine's name, as recorded with each run."""
    return platform.node()


def heartbeat_period() -> float:
    """Seconds between heartbeats: ``PLAIT_HISTORY_HEARTBEAT`` if set, else 10."""
    text = os.environ.get("PLAIT_HISTORY_HEARTBEAT", "")
    try:
        period = float(text) if text else _DEFAULT_PERIOD
    except ValueError:
        period = _DEFAULT_PERIOD
    return period if period > 0 else _DEFAULT_PERIOD


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            text = handle.read()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after the last ')'
    return text[text.rfind(")") + 2 :].split()


def _namespace() -> str:
    """This process's pid namespace (``pid:[4026531836]``), or "" where there is none."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def _here(run_host: str, start: str | None) -> bool:
    """True when a run's pid means the same process here (same host, same namespace)."""
    if run_host != host():
        return False
    return start is None or "@" not in start or start.rsplit("@", 1)[1] == _namespace()


def process_start(pid: int) -> str | None:
    """A token for when process ``pid`` started (None when it cannot be known).

    From ``/proc/<pid>/stat`` (field 22, clock ticks since boot) where there is one, else
    from psutil if it is installed.
    """
    fields = _stat_fields(pid)
    if fields is not None and len(fields) > 19:
        return f"proc:{fields[19]}@{_namespace()}"
    try:
        import psutil  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        return None
    try:
        return f"psutil:{psutil.Process(pid).create_time():.3f}"
    except Exception:  # gone, or not allowed to look
        return None


def _alive(pid: int, start: str | None) -> bool:
    fields = _stat_fields(pid)
    if fields is not None and fields and fields[0] in ("Z", "X"):
        return False  # killed, not yet reaped by its parent
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    if start is None:
        return True
    now = process_start(pid)
    return now is None or now == start


def dead_reason(
    run_host: str, pid: int | None, start: str | None, heartbeat: float | None
) -> str | None:
    """Why a ``running`` run's process is known to be dead, or None if it may be alive."""
    if pid is None:
        return None
    if _here(run_host, start):
        if _alive(pid, start):
            return None
        return f"process died (pid {pid} on {run_host} is gone)"
    if heartbeat is None:
        return None
    silent = time.time() - heartbeat
    if silent <= MISSED_BEATS * heartbeat_period():
        return None
    return f"process died (pid {pid} on {run_host}: no heartbeat for {silent:.0f} s)"


class Heartbeat:
    """A daemon thread that calls ``beat`` every ``period`` seconds until stopped.

    A failing beat is skipped (the next one tries again): it never stops the run.
    """

    def __init__(self, beat: Callable[[], None], period: float) -> None:
        self._beat = beat
        self._period = period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="plait-heartbeat", daemon=True)

    def start(self) -> None:
        """Start beating."""
        self._thread.start()

    def stop(self) -> None:
        """Stop beating and wait for the thread."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(self._period):
            try:
                self._beat()
            except Exception:  # the history is unreachable for now; try at the next beat
                continue
