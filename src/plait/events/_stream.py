"""``stream``: one run per item (or micro-batch) of a source, with checkpointed offsets.

Design. A reader thread pulls items from the source into a queue of ``max_in_flight``
items (back-pressure: the source is never read further ahead); a source that never blocks
(:class:`Iterable`) is read in the calling thread instead, ``batch`` items at a time. The
calling thread takes one item, or up to ``batch`` items (waiting at most ``batch_wait``
seconds for more from a blocking source), runs
the pipeline with them as the param ``param`` (a list for a batch), and only once the run
has been recorded commits them: the source acknowledges them (Redis ``XACK``) or gives an
offset that is saved in the store (``events/checkpoints``, written atomically). A SIGKILL
therefore loses nothing and replays at most the items in flight (at-least-once); each run
records its items' ids in ``RunRecord.trigger["event_id"]``, so a replayed item shows.

A run that fails is recorded, so it is committed too (``on_failure="stop"`` stops the
stream before committing it instead, so a restart retries it). SIGTERM/SIGINT stop
taking items; the run in progress finishes and is committed.
"""

from __future__ import annotations

import itertools
import logging
import queue
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from collections.abc import Iterable as IterableType
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from plait.errors import UsageError
from plait.events._checkpoint import Checkpoints

if TYPE_CHECKING:
    from plait.pipeline import Pipeline

__all__ = ["Item", "Iterable", "Source", "StreamStats", "stream"]

_log = logging.getLogger("plait.events")
_END = object()


@dataclass(frozen=True, slots=True)
class Item:
    """One item of a source: its id (in run records), value, and offset after it."""

    id: str
    value: Any
    offset: Any = None


class Source(Protocol):
    """What :func:`stream` needs of a source."""

    kind: str
    name: str

    def items(self, checkpoint: Any, stop: threading.Event) -> Iterator[Item]:
        """The items after ``checkpoint``, until the source ends or ``stop`` is set."""

    def commit(self, items: Sequence[Item]) -> Any:
        """Acknowledge processed items; return the checkpoint to save (None: none)."""


class Iterable:
    """A stream source over any iterable; its offset is the count of items processed.

    On restart it skips that many items, so give it an iterable that yields the same
    items again (a list, a file's lines, a query ordered by a key).

    Args:
        iterable: The items.
        name: The source's name in run records and checkpoints.
    """

    kind = "iterable"
    blocking = False  # read in the stream's own thread

    def __init__(self, iterable: IterableType[Any], *, name: str = "iterable") -> None:
        self.iterable = iterable
        self.name = name

    def __repr__(self) -> str:
        return f"Iterable(name={self.name!r})"

    def items(self, checkpoint: Any, stop: threading.Event) -> Iterator[Item]:
        """The items after the first ``checkpoint`` ones."""
        skip = checkpoint if isinstance(checkpoint, int) else 0
        for index, value in enumerate(self.iterable):
            if stop.is_set():
                return
            if index >= skip:
                yield Item(str(index), value, index + 1)

    def commit(self, items: Sequence[Item]) -> Any:
        """The count of items processed."""
        return items[-1].offset


@dataclass(slots=True)
class StreamStats:
    """What a stream did: ``items`` processed, ``runs`` and their statuses."""

    items: int = 0
    runs: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    run_ids: list[str] = field(default_factory=list)


def _reader(source: Source, checkpoint: Any, stop: threading.Event, out: queue.Queue[Any]) -> None:
    try:
        for item in source.items(checkpoint, stop):
            while not stop.is_set():
                try:
                    out.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if stop.is_set():
                return
    except BaseException as exc:  # handed to the stream's thread
        out.put(exc)
        return
    out.put(_END)


def _add(got: Any, taken: list[Item]) -> bool:
    """Add what the reader thread sent to ``taken``; True for its end marker (an error it
    caught is raised here, in the stream's thread)."""
    if got is _END:
        return True
    if isinstance(got, BaseException):
        raise got
    taken.append(got)
    return False


def _take(
    inbox: queue.Queue[Any], size: int, wait: float, stop: threading.Event
) -> tuple[list[Item], bool]:
    """Up to ``size`` items (the first waited for); True once the source has ended."""
    taken: list[Item] = []
    while not taken:
        if stop.is_set():
            return taken, True
        try:
            got = inbox.get_nowait()  # the common case, without a timed wait's cost
        except queue.Empty:
            try:
                got = inbox.get(timeout=0.1)
            except queue.Empty:
                continue
        if _add(got, taken):
            return taken, True
    deadline = time.monotonic() + wait  # for the whole batch, not per item
    while len(taken) < size:
        left = deadline - time.monotonic()
        try:
            got = inbox.get(timeout=left) if left > 0 else inbox.get_nowait()
        except queue.Empty:
            break
        if _add(got, taken):
            return taken, True
    return taken, False


Take = Callable[[int, float], tuple[list[Item], bool]]


def _feed(
    source: Source, checkpoint: Any, stop: threading.Event, max_in_flight: int
) -> tuple[Take, Callable[[], None]]:
    """How the stream takes items: ``take(size, wait)`` and the ``finish`` to call after.

    A source that never blocks (``blocking = False``: :class:`Iterable`) is read in the
    stream's own thread, ``size`` items at a time. Others are read by a thread into a
    queue of ``max_in_flight`` items, so a batch can stop waiting after ``wait`` seconds.
    """
    if not getattr(source, "blocking", True):
        iterator = source.items(checkpoint, stop)

        def take_inline(size: int, wait: float) -> tuple[list[Item], bool]:
            taken = list(itertools.islice(iterator, size))
            return taken, len(taken) < size

        return take_inline, getattr(iterator, "close", lambda: None)
    inbox: queue.Queue[Any] = queue.Queue(max_in_flight)
    reader = threading.Thread(
        target=_reader,
        args=(source, checkpoint, stop, inbox),
        name="plait-stream-reader",
        daemon=True,
    )
    reader.start()

    def take_queued(size: int, wait: float) -> tuple[list[Item], bool]:
        return _take(inbox, size, wait, stop)

    return take_queued, lambda: reader.join(timeout=5)


def stream(
    pipeline: Pipeline,
    source: Source,
    *,
    param: str = "item",
    batch: int | None = None,
    batch_wait: float = 0.5,
    store: Any = None,
    executor: Any = "sequential",
    hooks: Sequence[Any] = (),
    max_in_flight: int = 1000,
    on_failure: str = "continue",
    stop: threading.Event | None = None,
    target: str | None = None,
    params: Mapping[str, Any] | None = None,
    config: Any = None,
) -> StreamStats:
    """Run ``pipeline`` once per item of ``source`` (or per micro-batch of ``batch``).

    Args:
        pipeline: The pipeline; it reads each item as the param ``param``.
        source: :class:`Iterable`, :class:`FileTail` or :class:`RedisStream`.
        param: The param that receives the item (a list of items with ``batch``).
        batch: Items per run (None: one run per item, the param is the item itself).
        batch_wait: Seconds a batch waits for more items before running with fewer.
        store: Where runs are recorded and the source's offset checkpointed.
        executor: The executor of each run.
        hooks: Hooks of each run.
        max_in_flight: Items read ahead of the one being processed, at most.
        on_failure: ``"continue"`` (a failed run is recorded and committed) or ``"stop"``
            (stop before committing it; a restart retries it).
        stop: Set it to stop (SIGTERM/SIGINT also stop when called in the main thread).
        target: The target recorded with each run (the CLI sets it).
        params: Other params of every run.
        config: The config of every run (see ``Pipeline.run``).

    Returns:
        :class:`StreamStats`.

    Raises:
        UsageError: For bad options.
    """
    from plait.store.store import as_store

    if batch is not None and batch < 1:
        raise UsageError(f"batch must be a positive number of items or None, got {batch!r}")
    if on_failure not in ("continue", "stop"):
        raise UsageError(f"on_failure must be 'continue' or 'stop', got {on_failure!r}")
    if max_in_flight < 1:
        raise UsageError(f"max_in_flight must be at least 1, got {max_in_flight!r}")
    chosen = as_store(store if store is not None else pipeline.store)
    checkpoints = Checkpoints(chosen)
    key = f"stream/{pipeline.name}/{source.kind}/{source.name}"
    stop = stop or threading.Event()
    take, finish = _feed(source, checkpoints.load(key), stop, max_in_flight)
    stats = StreamStats()
    options = {
        "store": chosen,
        "executor": executor,
        "hooks": hooks,
        "target": target,
        "config": config,
    }
    base = dict(params or {})
    restore = _catch_signals(stop)
    try:
        ended = False
        while not ended:
            items, ended = take(batch or 1, batch_wait if batch else 0)
            if not items:
                break
            status = _run_items(pipeline, source, items, param, batch, base, options, stats)
            if status == "failed" and on_failure == "stop":
                _log.error("stream %s: a run failed; stopping before committing it", source.name)
                break
            offset = source.commit(items)
            if offset is not None:
                checkpoints.save(key, offset)
    finally:
        stop.set()
        restore()
        finish()
    return stats


def _run_items(
    pipeline: Pipeline,
    source: Source,
    items: list[Item],
    param: str,
    batch: int | None,
    params: dict[str, Any],
    options: dict[str, Any],
    stats: StreamStats,
) -> str:
    from plait.errors import PipelineValidationError
    from plait.run.runner import new_run_id, run_pipeline

    value = [item.value for item in items] if batch else items[0].value
    event_id = items[0].id if len(items) == 1 else f"{items[0].id}..{items[-1].id}"
    run_id = new_run_id()
    try:
        result = run_pipeline(
            pipeline,
            params={**params, param: value},
            outputs=None,
            force=False,
            on_error="continue",
            tags=None,
            max_concurrency=None,
            run_id=run_id,
            trigger={"kind": "stream", "name": source.name, "event_id": event_id},
            **options,
        )
        status: str = result.status
    except PipelineValidationError as exc:
        _log.error("stream %s: item %s not run: %s", source.name, event_id, exc)
        status = "rejected"
    stats.items += len(items)
    stats.runs += 1
    stats.statuses[status] += 1
    if len(stats.run_ids) < 100_000:
        stats.run_ids.append(run_id)
    return status


def _catch_signals(stop: threading.Event) -> Any:
    """SIGTERM/SIGINT set ``stop`` (main thread only); returns the undo."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

    def handle(signum: int, frame: Any) -> None:
        if stop.is_set():  # a second signal: stop now
            signal.default_int_handler(signum, frame)
        stop.set()

    for sig in previous:
        signal.signal(sig, handle)

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore
