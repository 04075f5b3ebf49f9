"""Emitters: hooks that publish run and step events (with each step's data versions, the
lineage) to a JSON Lines file, a webhook or Redis.

Design. A hook method only builds a small JSON-ready dict and puts it, without
waiting, on a bounded queue; one background thread per emitter takes events off and
sends them. So a slow or dead endpoint never slows or breaks a run: when the queue is
full the event is dropped, counted (``dropped``) and logged (once per 100 drops on the
``plait.emitters`` logger). A send that fails (after ``WebhookEmitter``'s retries) is
counted in ``failed`` and logged. ``close(timeout)`` sends what is queued, then stops.

Events: ``{"event": "run_start", "run_id", "pipeline", "params", "time"}``,
``{"event": "step_start", "run_id", "step", "time"}``, ``{"event": "step_end",
"run_id", "step", "status", "cached", "duration", "attempts", "cache_key",
"data_versions", "error", "time"}``, ``{"event": "run_end", "run_id", "pipeline",
"status", "duration", "time"}``. Values that JSON cannot hold are sent as text.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import queue
import random
import threading
import time
from typing import IO, Any

__all__ = ["Emitter", "JsonLines", "RedisEmitter", "WebhookEmitter"]

_log = logging.getLogger("plait.emitters")
_STOP = object()


def _encode(event: dict[str, Any]) -> bytes:
    return json.dumps(event, default=str, separators=(",", ":")).encode()


class Emitter:
    """The shared machinery: a bounded queue drained by a background thread.

    Subclasses implement ``send(event)`` (called on the background thread).

    Args:
        queue_size: Events waiting at most; more are dropped and counted.
        steps: Also emit step events (False: runs only).
    """

    def __init__(self, *, queue_size: int = 10_000, steps: bool = True) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(queue_size)
        self.steps = steps
        self.sent = 0
        self.failed = 0
        self.dropped = 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._deadline: float | None = None  # set by close(timeout): retries stop there

    # -- hook methods (the run's thread: never block) ---------------------------------
    def on_run_start(self, run: Any) -> None:
        """Queue a ``run_start`` event."""
        self.emit(
            {
                "event": "run_start",
                "run_id": run.run_id,
                "pipeline": run.pipeline,
                "params": dict(run.params),
            }
        )

    def on_step_start(self, step: Any, run: Any) -> None:
        """Queue a ``step_start`` event."""
        if self.steps:
            self.emit({"event": "step_start", "run_id": run.run_id, "step": step.name})

    def on_step_end(self, step_result: Any, run: Any) -> None:
        """Queue a ``step_end`` event with the step's data versions."""
        if not self.steps:
            return
        error = step_result.error
        self.emit(
            {
                "event": "step_end",
                "run_id": run.run_id,
                "step": step_result.name,
                "status": step_result.status,
                "cached": step_result.cached,
                "duration": step_result.duration,
                "attempts": step_result.attempts,
                "cache_key": step_result.cache_key,
                "data_versions": dict(step_result.data_versions),
                "error": None if error is None else f"{error.type}: {error.message}",
            }
        )

    def on_run_end(self, result: Any) -> None:
        """Queue a ``run_end`` event."""
        self.emit(
            {
                "event": "run_end",
                "run_id": result.run_id,
                "pipeline": result.pipeline,
                "status": result.status,
                "duration": result.duration,
            }
        )

    # -- the queue -------------------------------------------------------------------
    def emit(self, event: dict[str, Any]) -> None:
        """Queue ``event`` for sending (dropped, and counted, if the queue is full)."""
        if self._closed:
            return
        event.setdefault("time", time.time())
        self._ensure_thread()
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            with self._lock:
                self.dropped += 1
                dropped = self.dropped
            if dropped % 100 == 1:
                _log.warning(
                    "%r: queue full, %d event(s) dropped so far (endpoint slow or down?)",
                    self,
                    dropped,
                )

    def _ensure_thread(self) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._drain, name=f"plait-{type(self).__name__}", daemon=True
                    )
                    self._thread.start()

    def _drain(self) -> None:
        while True:
            event = self._queue.get()
            if event is _STOP:
                return
            try:
                self.send(event)
                self.sent += 1
            except Exception as exc:
                self.failed += 1
                _log.warning("%r: could not send a %s event: %s", self, event.get("event"), exc)

    def send(self, event: dict[str, Any]) -> None:
        """Send one event (the background thread calls it)."""
        raise NotImplementedError

    @property
    def pending(self) -> int:
        """Events queued, not sent yet."""
        return self._queue.qsize()

    def close(self, timeout: float | None = 5.0) -> None:
        """Send what is queued (waiting up to ``timeout`` seconds), then stop the thread."""
        self._closed = True
        if self._thread is None:
            return
        deadline = None if timeout is None else time.monotonic() + timeout
        self._deadline = deadline
        while True:
            try:
                self._queue.put(_STOP, timeout=0.05)
                break
            except queue.Full:
                if deadline is not None and time.monotonic() > deadline:
                    break
        self._thread.join(timeout)
        self._release()

    def _release(self) -> None:
        """Free what ``send`` holds (files, connections)."""

    def __enter__(self) -> Emitter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class JsonLines(Emitter):
    """Events as JSON Lines, appended to a file (or written to an open text stream).

    Args:
        path_or_stream: A file path (opened for appending) or a writable text stream.
        queue_size: See :class:`Emitter`.
        steps: See :class:`Emitter`.
    """

    def __init__(
        self, path_or_stream: str | IO[str], *, queue_size: int = 10_000, steps: bool = True
    ) -> None:
        super().__init__(queue_size=queue_size, steps=steps)
        self._owned = isinstance(path_or_stream, str)
        self._target = path_or_stream
        self._stream: IO[str] | None = None if self._owned else path_or_stream  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"JsonLines({self._target!r})"

    def send(self, event: dict[str, Any]) -> None:
        """Write one line and flush."""
        if self._stream is None:
            self._stream = open(str(self._target), "a", encoding="utf-8")  # noqa: SIM115
        self._stream.write(_encode(event).decode() + "\n")
        self._stream.flush()

    def _release(self) -> None:
        if self._owned and self._stream is not None:
            self._stream.close()


class WebhookEmitter(Emitter):
    """Events POSTed as JSON to ``url``, signed, retried with exponential backoff.

    With a ``secret``, each request carries ``X-Plait-Signature: sha256=<hex HMAC-SHA256
    of the body>`` (what :class:`plait.events.Webhook` checks).

    Args:
        url: Where events are POSTed.
        secret: The shared secret to sign with (None: unsigned).
        retries: Extra attempts after a failed send (connection error or 5xx).
        backoff: Seconds before the first retry; doubled each time, with jitter.
        timeout: Seconds one request may take.
        headers: Extra HTTP headers.
        queue_size: See :class:`Emitter`.
        steps: See :class:`Emitter`.
    """

    def __init__(
        self,
        url: str,
        *,
        secret: str | None = None,
        retries: int = 3,
        backoff: float = 0.5,
        timeout: float = 5.0,
        headers: dict[str, str] | None = None,
        queue_size: int = 10_000,
        steps: bool = True,
    ) -> None:
        super().__init__(queue_size=queue_size, steps=steps)
        self.url = url
        self.secret = secret
        self.retries = retries
        self.backoff = backoff
        self.timeout = timeout
        self.headers = dict(headers or {})

    def __repr__(self) -> str:
        return f"WebhookEmitter({self.url!r})"

    def send(self, event: dict[str, Any]) -> None:
        """POST one event, retrying; raise after the last attempt."""
        import urllib.error
        import urllib.request

        body = _encode(event)
        headers = {"Content-Type": "application/json", **self.headers}
        if self.secret:
            digest = hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
            headers["X-Plait-Signature"] = f"sha256={digest}"
        for attempt in range(self.retries + 1):
            request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                    answer.read()
                return
            except urllib.error.HTTPError as exc:
                if exc.code < 500 or attempt == self.retries:
                    raise
            except OSError:
                if attempt == self.retries:
                    raise
            delay = self.backoff * 2**attempt * random.uniform(0.5, 1.0)
            if self._deadline is not None and time.monotonic() + delay > self._deadline:
                raise ConnectionError(f"{self.url}: no retry, close()'s timeout is near")
            time.sleep(delay)


class RedisEmitter(Emitter):
    """Events added to a Redis stream (``XADD``, capped) or published on a channel.

    Args:
        url: ``redis://host:port/db``.
        stream: The stream key (each event one entry with a ``event`` JSON field).
        channel: Publish on this channel instead (``PUBLISH``).
        maxlen: The stream's approximate length cap.
        queue_size: See :class:`Emitter`.
        steps: See :class:`Emitter`.
    """

    def __init__(
        self,
        url: str,
        stream: str | None = "plait:events",
        *,
        channel: str | None = None,
        maxlen: int = 100_000,
        queue_size: int = 10_000,
        steps: bool = True,
    ) -> None:
        super().__init__(queue_size=queue_size, steps=steps)
        self.url = url
        self.stream = None if channel else stream
        self.channel = channel
        self.maxlen = maxlen
        self._client: Any = None

    def __repr__(self) -> str:
        return f"RedisEmitter({self.stream or self.channel!r})"

    def send(self, event: dict[str, Any]) -> None:
        """XADD or PUBLISH one event."""
        if self._client is None:
            import redis

            self._client = redis.Redis.from_url(
                self.url, socket_timeout=5, socket_connect_timeout=5
            )
        data = _encode(event)
        if self.channel:
            self._client.publish(self.channel, data)
        else:
            self._client.xadd(self.stream, {"event": data}, maxlen=self.maxlen, approximate=True)

    def _release(self) -> None:
        if self._client is not None:
            self._client.close()
