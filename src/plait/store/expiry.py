"""Expiry policies: when a cache entry stops being reusable.

``expire.never()`` (the default), ``expire.ttl(...)``, ``expire.session()``,
``expire.on_complete()``, ``expire.at_midnight()``, ``expire.at(dt)`` and
``expire.refresh(min_ttl, max_ttl)``. A policy answers one question, :meth:`fresh`, from the
entry's creation time and whether it was written by this run or this process.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

from plait._step_options import to_seconds

__all__ = ["Expiry", "expire"]


@runtime_checkable
class Expiry(Protocol):
    """Decides whether a cache entry may still be reused."""

    def fresh(self, created: float, now: float, *, same_run: bool, same_session: bool) -> bool:
        """True when an entry written at ``created`` (epoch seconds) is reusable at ``now``."""
        ...


@dataclass(frozen=True, slots=True)
class Never:
    """Entries never expire."""

    def fresh(self, created: float, now: float, *, same_run: bool, same_session: bool) -> bool:
        """Always fresh."""
        return True


@dataclass(frozen=True, slots=True)
class TTL:
    """Entries expire ``seconds`` after they were written."""

    seconds: float

    def fresh(self, created: float, now: float, *, same_run: bool, same_session: bool) -> bool:
        """Fresh while younger than the TTL."""
        return now - created < self.seconds


@dataclass(frozen=True, slots=True)
class Session:
    """Entries are reused only by the Python process that wrote them."""

    def fresh(self, created: float, now: float, *, same_run: bool, same_session: bool) -> bool:
        """Fresh in the writing process."""
        return same_session


@dataclass(frozen=True, slots=True)
class OnComplete:
    """Entries are reused only within the run that wrote them (checkpoints for resume)."""

    def fresh(self, created: float, now: float, *, same_run: bool, same_session: bool) -> bool:
        """Fresh in the writing run."""
        return same_run


@dataclass(frozen=True, slots=True)
class AtMidnight:
    """Entries expire at the first local midnight after they were written."""

    def fresh(self, created: float, now: float, *, same_run: bool, same_session: bool) -> bool:
        """Fresh until the next midnight (local time)."""
        written = datetime.fromtimestamp(created)
        midnight = datetime.combine(written.date() + timedelta(days=1), datetime.min.time())
        return now < midnight.timestamp()


@dataclass(frozen=True, slots=True)
class At:
    """Entries expire at a fixed moment."""

    moment: float

    def fresh(self, created: float, now: float, *, same_run: bool, same_session: bool) -> bool:
        """Fresh before the moment."""
        return now < self.moment


@dataclass(frozen=True, slots=True)
class Refresh:
    """Probabilistic refresh: fresh below ``min_ttl``; between the two TTLs refreshed with a
    probability rising linearly from 0 to 1; always refreshed past ``max_ttl``."""

    min_ttl: float
    max_ttl: float

    def fresh(self, created: float, now: float, *, same_run: bool, same_session: bool) -> bool:
        """Fresh with probability ``1 - (age - min) / (max - min)`` between the TTLs."""
        age = now - created
        if age < self.min_ttl:
            return True
        if age >= self.max_ttl:
            return False
        probability = (age - self.min_ttl) / (self.max_ttl - self.min_ttl)
        return random.random() >= probability


class expire:
    """Constructors of expiry policies (``@step(expire=expire.ttl(hours=6))``)."""

    @staticmethod
    def never() -> Expiry:
        """Entries never expire (the default)."""
        return Never()

    @staticmethod
    def ttl(
        duration: float | timedelta | None = None,
        *,
        days: float = 0,
        hours: float = 0,
        minutes: float = 0,
        seconds: float = 0,
    ) -> Expiry:
        """Entries expire after a duration: ``ttl(60)``, ``ttl(timedelta(...))``,
        ``ttl(hours=6)``."""
        total = to_seconds(duration, "expire.ttl") or 0.0
        total += timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds).total_seconds()
        if total <= 0:
            raise ValueError(f"expire.ttl needs a positive duration, got {total!r} seconds")
        return TTL(total)

    @staticmethod
    def session() -> Expiry:
        """Reuse only within the Python process that wrote the entry."""
        return Session()

    @staticmethod
    def on_complete() -> Expiry:
        """Reuse only within the run that wrote the entry (resume of that run)."""
        return OnComplete()

    @staticmethod
    def at_midnight() -> Expiry:
        """Entries expire at the next local midnight."""
        return AtMidnight()

    @staticmethod
    def at(moment: datetime) -> Expiry:
        """Entries expire at ``moment`` (a naive datetime is local time)."""
        return At(moment.timestamp())

    @staticmethod
    def refresh(min_ttl: float | timedelta, max_ttl: float | timedelta) -> Expiry:
        """Fresh below ``min_ttl``, refreshed with rising probability up to ``max_ttl``."""
        low = to_seconds(min_ttl, "expire.refresh min_ttl") or 0.0
        high = to_seconds(max_ttl, "expire.refresh max_ttl") or 0.0
        if not 0 <= low < high:
            raise ValueError(f"expire.refresh needs 0 <= min_ttl < max_ttl, got {low}, {high}")
        return Refresh(low, high)
