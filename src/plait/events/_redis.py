"""``RedisStream``: a Redis (or ValKey) stream read through a consumer group, as a trigger
of :func:`serve` or a source of :func:`stream`.

Design. Entries are read with ``XREADGROUP`` as consumer ``consumer`` of ``group`` (the
group is created at the stream's start if missing). An entry is acknowledged
(``XACK``) only after its run has been recorded, so entries of a process killed
mid-run stay pending; a restarted consumer of the same name first re-reads its own
pending entries (id ``0``), then new ones (``>``). Redis going away is no failure: the
reader logs it and tries again (0.5 s, doubling up to 30 s). As a trigger, an entry the overlap
policy skips is acknowledged too (skipping is its outcome). Params: a ``params`` field
holding a JSON object, else the entry's fields; or ``params=``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from plait.events._triggers import Event, Params, make_params

if TYPE_CHECKING:
    from plait.events._serve import Server, Submission
    from plait.events._stream import Item

__all__ = ["RedisStream"]

_log = logging.getLogger("plait.events")


def _entries(answer: Any) -> list[tuple[str, dict[str, Any]]]:
    """The entries of an ``XREADGROUP`` answer of one stream (RESP2 list or RESP3 dict)."""
    if not answer:
        return []
    if isinstance(answer, dict):
        answer = list(answer.items())
    batch: Any = answer[0][1]
    if batch and isinstance(batch[0], list) and batch[0] and isinstance(batch[0][0], list):
        batch = batch[0]  # RESP3 nests one level deeper
    return [(str(entry_id), dict(fields or {})) for entry_id, fields in batch]


def _next_cursor(cursor: str, entries: list[tuple[str, dict[str, Any]]]) -> str:
    """Where the next ``XREADGROUP`` reads after ``entries`` were read at ``cursor``: this
    consumer's pending entries page by page (after the last one read), then ``">"`` (new
    entries) once a page of them comes back empty.

    >>> _next_cursor("0", [("1-0", {}), ("2-0", {})]), _next_cursor("2-0", [])
    ('2-0', '>')
    """
    if cursor == ">" or not entries:
        return ">"
    return entries[-1][0]


def _unreachable(name: str, exc: BaseException, delay: float) -> float:
    """Log that Redis cannot be reached; the next wait (doubling, 0.5 s to 30 s)."""
    delay = min(30.0, max(0.5, delay * 2))
    _log.warning("%s: Redis unreachable (%s); trying again in %.1f s", name, exc, delay)
    return delay


def _fields_params(fields: Mapping[str, Any]) -> dict[str, Any]:
    raw = fields.get("params")
    if isinstance(raw, str) and len(fields) == 1:
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            return parsed
    return dict(fields)


class RedisStream:
    """Entries of a Redis stream, read by a consumer group.

    Args:
        url: ``redis://host:port/db`` (``rediss://`` for TLS).
        stream: The stream's key.
        group: The consumer group (created if missing).
        consumer: This consumer's name; keep it stable across restarts, so pending
            entries of a killed process are re-read.
        params: Run params (trigger): a mapping, or a callable given the entry's fields.
        block: Seconds one read waits for new entries.
        name: The trigger's or source's name (default ``redis <stream>``).
    """

    kind = "redis"

    def __init__(
        self,
        url: str,
        stream: str,
        group: str = "plait",
        *,
        consumer: str = "plait",
        params: Params = None,
        block: float = 1.0,
        count: int = 100,
        name: str | None = None,
    ) -> None:
        self.url = url
        self.stream = stream
        self.group = group
        self.consumer = consumer
        self.params = params
        self.block = block
        self.count = count
        self.name = name or f"redis {stream}"

    def __repr__(self) -> str:
        return f"RedisStream({self.stream!r}, group={self.group!r})"

    # -- as a stream source (sync) ---------------------------------------------------
    def _client(self) -> Any:
        import redis

        return redis.Redis.from_url(self.url, decode_responses=True)

    def _ensure_group(self, client: Any) -> None:
        import redis

        try:
            client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def items(self, checkpoint: Any, stop: threading.Event) -> Iterator[Item]:
        """Pending entries of this consumer first, then new ones, until ``stop``."""
        from redis.exceptions import ConnectionError as Unreachable
        from redis.exceptions import TimeoutError as TimedOut

        from plait.events._stream import Item

        client = self._client()
        self._committer = self._client()
        grouped, delay = False, 0.0
        try:
            cursor = "0"  # our pending entries (a previous process died before XACK)
            while not stop.is_set():
                block = None if cursor == "0" else int(self.block * 1000)
                try:
                    if not grouped:
                        self._ensure_group(client)
                        grouped = True
                    answer = client.xreadgroup(
                        self.group,
                        self.consumer,
                        {self.stream: cursor},
                        count=self.count,
                        block=block,
                    )
                    delay = 0.0
                except (Unreachable, TimedOut) as exc:
                    delay = _unreachable(self.name, exc, delay)
                    stop.wait(delay)
                    continue
                entries = _entries(answer)
                cursor = _next_cursor(cursor, entries)
                for entry_id, fields in entries:
                    yield Item(entry_id, fields, entry_id)
        finally:
            client.close()

    def commit(self, items: Sequence[Item]) -> Any:
        """``XACK`` the items; nothing to keep in the store."""
        client = getattr(self, "_committer", None) or self._client()
        client.xack(self.stream, self.group, *[item.id for item in items])
        return None

    # -- as a trigger (async) -------------------------------------------------------
    async def run(self, server: Server) -> None:
        """Submit one event per entry; acknowledge each once its run is recorded."""
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(self.url, decode_responses=True)
        acks: set[asyncio.Task[None]] = set()

        async def close() -> None:  # after the server's last run: acks still to send
            if acks:
                await asyncio.gather(*acks, return_exceptions=True)
            await client.aclose()

        server.after_stop(close)
        grouped, delay = False, 0.0
        cursor = "0"  # our pending entries first (a previous process died before XACK)
        while True:
            block = None if cursor == "0" else int(self.block * 1000)
            try:
                if not grouped:
                    await self._ensure_group_async(client)
                    grouped = True
                answer = await client.xreadgroup(
                    self.group, self.consumer, {self.stream: cursor}, count=self.count, block=block
                )
                delay = 0.0
            except (aioredis.ConnectionError, aioredis.TimeoutError) as exc:
                delay = _unreachable(self.name, exc, delay)
                await asyncio.sleep(delay)
                continue
            entries = _entries(answer)
            cursor = _next_cursor(cursor, entries)
            for entry_id, fields in entries:
                self._submit(server, entry_id, fields, client, acks)

    async def _ensure_group_async(self, client: Any) -> None:
        import redis.asyncio as aioredis

        try:
            await client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except aioredis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def _submit(
        self, server: Server, entry_id: str, fields: dict[str, Any], client: Any, acks: set[Any]
    ) -> None:
        params = make_params(self.params, fields, _fields_params(fields))
        submitted = server.submit(Event(self.kind, self.name, entry_id, params, fields))
        task = asyncio.ensure_future(self._ack_when_done(client, submitted))
        acks.add(task)
        task.add_done_callback(acks.discard)

    async def _ack_when_done(self, client: Any, submitted: Submission) -> None:
        status = await submitted.wait()
        if status == "cancelled":
            return  # stopped before it was recorded as done: re-read on restart
        try:
            await client.xack(self.stream, self.group, submitted.event.event_id)
        except Exception:
            _log.exception("%s: could not acknowledge %s", self.name, submitted.event.event_id)
