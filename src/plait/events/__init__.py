"""Running pipelines when something happens: schedules, triggers and streams.

- Triggers for :func:`serve`: :class:`Cron`, :class:`Every`, :class:`Webhook`,
  :class:`FileWatch`, :class:`RedisStream`;
- sources for :func:`stream`: :class:`Iterable`, :class:`FileTail`, :class:`RedisStream`;
- every triggered or streamed run records ``RunRecord.trigger`` =
  ``{"kind", "name", "event_id"}``.

The optional libraries (croniter, starlette, uvicorn, watchfiles, redis: the ``events``
extra) are imported only by the trigger that needs them. See ``docs/events.md``.
"""

from plait.events._cron import Cron
from plait.events._files import FileTail, FileWatch
from plait.events._redis import RedisStream
from plait.events._serve import Server, Submission, serve
from plait.events._stream import Item, Iterable, Source, StreamStats, stream
from plait.events._triggers import Clock, Event, Every, ManualClock, SystemClock, Trigger
from plait.events._webhook import Webhook, signature

__all__ = [
    "Clock",
    "Cron",
    "Event",
    "Every",
    "FileTail",
    "FileWatch",
    "Item",
    "Iterable",
    "ManualClock",
    "RedisStream",
    "Server",
    "Source",
    "StreamStats",
    "Submission",
    "SystemClock",
    "Trigger",
    "Webhook",
    "serve",
    "signature",
    "stream",
]
