"""The cyclic garbage collector while a large run goes on.

Design note
-----------
A full collection walks every object the process holds: a pipeline of 10,000 steps that
was built earlier, the user's data frames, another library's graph. A run allocates
while it goes (values, records), and CPython starts a full collection each time the
objects that survived younger collections exceed a quarter of the older ones, so a run of
many cheap steps used to spend most of its time walking a heap that was there before it
started and that it does not change (24 instead of 11 microseconds a step beside a
Hamilton driver in one benchmark).

:class:`run_collection` uses :func:`gc.freeze`: at the start of a run of at least
:data:`LARGE` steps, the objects alive then move to the collector's permanent
generation, which collections skip; :func:`gc.unfreeze` returns them to the oldest
generation when the run ends. Collection itself never stops: every object made during the
run is collected as usual, so a step that makes cyclic garbage for hours runs in bounded
memory (``tests/test_hotpath_gc.py`` proves it by counting live objects). What the freeze
costs: an object that was alive before the run and becomes cyclic garbage during it
waits for the run's end (so at most the heap as it was at the start).

The young generations are collected (``gc.collect(1)``, a few thousand objects at most)
before freezing and before unfreezing: otherwise young garbage would be moved to the
oldest generation unexamined, and a loop of runs could pile it up there.

Runs nest and run in threads: the first run to start freezes, the last to end unfreezes
(a count under a lock). Nothing is done when the collector is off, or when the process
froze objects itself (``gc.get_freeze_count() > 0``: its freeze is left alone). A step
that calls ``gc.freeze()`` itself during a large run has its freeze undone at the run's
end. The state is restored on every way out: return, exception, ``KeyboardInterrupt``,
cancellation.
"""

from __future__ import annotations

import gc
import threading

__all__ = ["LARGE", "run_collection"]

LARGE = 1_000  # steps: smaller runs finish before the heap walks matter

_LOCK = threading.Lock()
_state = {"active": 0, "frozen": False}


class run_collection:  # used as a function: ``with run_collection(n):``
    """Freeze the heap that exists when a run of ``size`` steps starts (see the module)."""

    __slots__ = ("counted",)

    def __init__(self, size: int) -> None:
        self.counted = size >= LARGE

    def __enter__(self) -> None:
        if not self.counted:
            return
        with _LOCK:
            if _state["active"] == 0 and gc.isenabled() and gc.get_freeze_count() == 0:
                gc.collect(1)
                gc.freeze()
                _state["frozen"] = True
            _state["active"] += 1

    def __exit__(self, *exc_info: object) -> None:
        if not self.counted:
            return
        with _LOCK:
            _state["active"] -= 1
            if _state["active"] == 0 and _state["frozen"]:
                _state["frozen"] = False
                gc.collect(1)
                gc.unfreeze()
