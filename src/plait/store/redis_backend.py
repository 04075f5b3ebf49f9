"""A byte store on Redis or ValKey: ``Store("redis://host:6379/0")``.

Design note
-----------
Each path of the store is one Redis string under a key prefix (``plait:`` by default):
``plait:objects/ab/<version>.<serializer>`` for an artifact, ``plait:cache/cd/<key>.json``
for a cache entry (the store's :class:`~plait.store.index.FileIndex`), so everything the
store does on a bucket (lookups, ``clear``, ``gc``, signing with a store secret) works
here unchanged.

- **Atomic writes.** ``SET`` publishes a value whole: a reader sees all of it or nothing.
- **Size limit.** Redis holds values in memory, so a value above ``max_value_bytes``
  (32 MiB by default) goes to a *companion* fsspec store when one is given
  (``overflow="s3://bucket/plait"``, or a local directory), with a small pointer left in
  Redis; without one it is refused with a message naming both fixes. A refused artifact
  is not cached (the run goes on with the value in memory and logs why).
- **TTL.** With ``ttl`` (seconds), every key is written with ``SET … EX ttl``; reading a
  key or finding it already present (the store skips writing an artifact it has)
  refreshes its TTL, so what runs keep using stays and the rest is reclaimed by Redis.
  Entries expire like artifacts; a step's own ``expire=`` policy applies on top, as on
  every store. A companion store's files do not expire.

Options are given in the URL's query (``redis://host:6379/0?ttl=86400&prefix=team``), so
they travel with a pickled store to workers, or as ``storage_options`` (which do not).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from plait.errors import UsageError

__all__ = ["DEFAULT_MAX_VALUE_BYTES", "RedisBackend", "ValueTooLarge"]

DEFAULT_MAX_VALUE_BYTES = 32 * 1024 * 1024
_POINTER = b"\x00plait-overflow\x00"  # the Redis value of a path kept in the companion
_OPTIONS = ("ttl", "prefix", "max_value_bytes", "overflow")
_SCHEMES = ("redis", "rediss", "valkey", "valkeys")


class ValueTooLarge(ValueError):
    """A value above the Redis store's size limit, with no companion store to take it."""


def _client(url: str) -> Any:
    try:
        import redis
    except ImportError as exc:
        raise UsageError(
            f"a Redis store needs the 'redis' package ({exc}); install it with "
            "pip install 'plait[redis]'"
        ) from exc
    scheme, _, rest = url.partition("://")
    if scheme.startswith("valkey"):  # ValKey speaks the Redis protocol
        url = scheme.replace("valkey", "redis") + "://" + rest
    return redis.Redis.from_url(url)


def _split_options(url: str) -> tuple[str, dict[str, str]]:
    """The URL without plait's own query options, and those options."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    ours = {k: v for k, v in query if k in _OPTIONS}
    theirs = [(k, v) for k, v in query if k not in _OPTIONS]
    return urlunsplit(parts._replace(query=urlencode(theirs))), ours


class RedisBackend:
    """Byte strings at relative paths, in one Redis (or ValKey) database.

    Args:
        url: ``redis://[user:password@]host:port/db`` (``rediss://`` for TLS, ``valkey://``
            and ``unix://`` too), with plait's options optionally in its query.
        ttl: Seconds every key lives after it was last written or read (None: forever).
        prefix: The key prefix (default ``"plait"``), so several stores share a database.
        max_value_bytes: The largest value kept in Redis itself.
        overflow: A path or fsspec URL of the companion store for larger values.
        overflow_options: fsspec storage options of the companion store.

    Raises:
        UsageError: For an option that is not a number where one is expected, or when
            the ``redis`` package is missing.
    """

    def __init__(
        self,
        url: str,
        *,
        ttl: float | str | None = None,
        prefix: str | None = None,
        max_value_bytes: int | str | None = None,
        overflow: str | None = None,
        overflow_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.url = url
        address, query = _split_options(url)
        self.ttl = _number(url, "ttl", ttl if ttl is not None else query.get("ttl"))
        self.prefix = (prefix or query.get("prefix") or "plait").rstrip(":") + ":"
        limit = _number(url, "max_value_bytes", max_value_bytes or query.get("max_value_bytes"))
        self.max_value_bytes = int(limit) if limit is not None else DEFAULT_MAX_VALUE_BYTES
        self.overflow_url = overflow or query.get("overflow") or None
        self._overflow_options = dict(overflow_options or {})
        self._overflow: Any = None
        self._address = address
        self.redis = _client(address)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_unpickled, (self.url,))

    def __repr__(self) -> str:
        return f"RedisBackend({self.url!r})"

    def _key(self, path: str) -> str:
        return self.prefix + path

    @property
    def overflow(self) -> Any:
        """The companion store's backend (None without one)."""
        if self._overflow is None and self.overflow_url:
            from plait.store.backends import open_backend

            self._overflow = open_backend(self.overflow_url, **self._overflow_options)
        return self._overflow

    # -- the backend protocol ------------------------------------------------------------
    def read(self, path: str) -> bytes:
        """The bytes at ``path`` (from the companion store for a large value)."""
        key = self._key(path)
        if self.ttl is None:
            data = self.redis.get(key)
        else:
            data = self.redis.getex(key, px=int(self.ttl * 1000))
        if data is None:
            raise FileNotFoundError(path)
        if data == _POINTER:
            return bytes(self.overflow.read(path)) if self.overflow else b""
        return bytes(data)

    def write(self, path: str, data: bytes, *, durable: bool = False) -> None:
        """Publish ``data`` at ``path`` in one ``SET`` (after the companion's copy, for a
        large value).

        Raises:
            ValueTooLarge: When ``data`` is above the limit and there is no companion.
        """
        if len(data) > self.max_value_bytes:
            if self.overflow is None:
                raise ValueTooLarge(
                    f"{path}: {len(data):,} bytes is more than the Redis store's limit of "
                    f"{self.max_value_bytes:,} bytes; give it a companion store for large "
                    "values (redis://…?overflow=s3://bucket/prefix, or a shared directory) "
                    "or raise max_value_bytes"
                )
            self.overflow.write(path, data, durable=durable)
            data = _POINTER
        expiry = None if self.ttl is None else int(self.ttl * 1000)
        self.redis.set(self._key(path), data, px=expiry)

    def exists(self, path: str) -> bool:
        """True when ``path`` holds bytes (its TTL refreshed: it is about to be used)."""
        key = self._key(path)
        if self.ttl is None:
            return bool(self.redis.exists(key))
        return bool(self.redis.pexpire(key, int(self.ttl * 1000)))

    def delete(self, path: str) -> None:
        """Remove ``path`` (and its companion copy) if present."""
        key = self._key(path)
        if self.overflow is not None and self.redis.get(key) == _POINTER:
            with contextlib.suppress(FileNotFoundError):
                self.overflow.delete(path)
        self.redis.delete(key)

    def list(self, prefix: str) -> Iterator[str]:
        """Every path under the folder ``prefix`` (a ``SCAN``: no blocking ``KEYS``)."""
        folder = prefix.strip("/")
        pattern = _glob_escape(self._key(f"{folder}/" if folder else "")) + "*"
        start = len(self.prefix)
        for key in self.redis.scan_iter(match=pattern, count=1000):
            yield key.decode()[start:] if isinstance(key, bytes) else str(key)[start:]


_UNPICKLED: dict[str, RedisBackend] = {}  # URL -> backend, one per process (a worker
_UNPICKLED_LOCK = threading.Lock()  # unpickles one per task: keep its connection pool)


def _unpickled(url: str) -> RedisBackend:
    with _UNPICKLED_LOCK:
        found = _UNPICKLED.get(url)
        if found is None:
            found = _UNPICKLED[url] = RedisBackend(url)
        return found


def _glob_escape(text: str) -> str:
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)


def _number(url: str, name: str, value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = -1.0
    if number <= 0:
        raise UsageError(f"Redis store {url!r}: {name} must be a positive number, got {value!r}")
    return number


def is_redis_url(url: str) -> bool:
    """True for a URL this backend serves."""
    return url.partition("://")[0] in _SCHEMES and "://" in url
