"""Files: ``FileWatch`` (a trigger on new or changed files) and ``FileTail`` (a stream
source following a growing, rotating log file).

Design. ``FileWatch`` watches the fixed folder part of its glob with watchfiles
(recursively when the glob has ``**``), keeps the added or modified files that match,
and lets watchfiles debounce bursts (a file written in several chunks is one event).
``FileTail`` reads complete lines from a byte position; at the end of the file it polls:
a file at the path with another inode (rotated) or shorter than the position (truncated)
is read from its start, after the rest of the old file. Its checkpoint is
``{"inode", "position"}`` just after the last line handed out and processed; on restart
the same inode resumes there, another one (rotated while down) from its start.
"""

from __future__ import annotations

import fnmatch
import glob as globbing
import os
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from plait.errors import UsageError
from plait.events._triggers import Event, Params, make_params, seconds_of

if TYPE_CHECKING:
    from plait.events._serve import Server
    from plait.events._stream import Item

__all__ = ["FileTail", "FileWatch"]


def _root_of(pattern: str) -> str:
    """The folder before the first glob character of ``pattern``."""
    parts = pattern.replace(os.sep, "/").split("/")
    fixed: list[str] = []
    for part in parts[:-1]:
        if globbing.has_magic(part):
            break
        fixed.append(part)
    return "/".join(fixed) or "."


class FileWatch:
    """A run per new or changed file matching ``pattern``.

    Args:
        pattern: A glob (``"data/*.csv"``, ``"inbox/**/*.json"``), relative to the
            working directory or absolute.
        param: A param to pass the file's path as (default: none).
        params: Other run params: a mapping, or a callable given ``{"path", "change"}``.
        debounce: Seconds changes are gathered before they count (one event per file).
        name: The trigger's name in run records (default ``watch <pattern>``).
    """

    kind = "watch"

    def __init__(
        self,
        pattern: str,
        *,
        param: str | None = None,
        params: Params = None,
        debounce: float = 0.5,
        name: str | None = None,
    ) -> None:
        self.pattern = os.path.abspath(pattern)
        self.root = _root_of(self.pattern)
        self.param = param
        self.params = params
        self.debounce = seconds_of(debounce, "FileWatch(debounce)")
        self.name = name or f"watch {pattern}"
        self.listening = True

    def __repr__(self) -> str:
        return f"FileWatch({self.pattern!r})"

    def matches(self, path: str) -> bool:
        """Whether ``path`` matches the pattern."""
        return fnmatch.fnmatchcase(os.path.abspath(path), self.pattern)

    async def run(self, server: Server) -> None:
        """Submit one event per changed file until cancelled."""
        import anyio
        from watchfiles import Change, awatch

        if not os.path.isdir(self.root):
            raise UsageError(
                f"FileWatch({self.pattern!r}): the folder {self.root!r} does not exist; "
                "create it first"
            )
        stop = anyio.Event()
        changes = awatch(
            self.root,
            watch_filter=lambda change, path: change != Change.deleted and self.matches(path),
            debounce=int(self.debounce * 1000),
            step=50,
            recursive="**" in self.pattern,
            stop_event=stop,
            yield_on_timeout=True,
            rust_timeout=200,
        )
        server.trigger_ready(self)
        try:
            async for batch in changes:
                for change, path in sorted(batch, key=lambda item: item[1]):
                    self._submit(server, change.name, path)
        finally:
            stop.set()

    def _submit(self, server: Server, change: str, path: str) -> None:
        try:
            stamp = os.stat(path).st_mtime_ns
        except OSError:
            return  # gone already
        payload = {"path": path, "change": change}
        default = {self.param: path} if self.param else {}
        params = {**default, **make_params(self.params, payload, {})}
        server.submit(Event(self.kind, self.name, f"{path}@{stamp}", params, payload))


class FileTail:
    """A stream source: the lines of a text file as they are appended (``tail -F``).

    Args:
        path: The file (it may not exist yet when ``follow`` is true).
        follow: Keep waiting for new lines (False: stop at the end of the file).
        poll: Seconds between looks at a file that has not grown.
        encoding: The file's text encoding.
        name: The source's name in run records and checkpoints (default the path).
    """

    kind = "filetail"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        follow: bool = True,
        poll: float = 0.2,
        encoding: str = "utf-8",
        name: str | None = None,
    ) -> None:
        self.path = os.path.abspath(os.fspath(path))
        self.follow = follow
        self.poll = seconds_of(poll, "FileTail(poll)")
        self.encoding = encoding
        self.name = name or self.path

    def __repr__(self) -> str:
        return f"FileTail({self.path!r})"

    def _open(self) -> Any:
        try:
            return open(self.path, "rb")
        except FileNotFoundError:
            if not self.follow:
                raise UsageError(f"FileTail: no file {self.path!r}") from None
            return None

    def items(self, checkpoint: Any, stop: threading.Event) -> Iterator[Item]:
        """The complete lines after ``checkpoint``, following rotation, until ``stop``."""
        from plait.events._stream import Item

        handle = None
        while handle is None:
            handle = self._open()
            if handle is None and stop.wait(self.poll):
                return
        inode = os.fstat(handle.fileno()).st_ino
        if isinstance(checkpoint, dict) and checkpoint.get("inode") == inode:
            handle.seek(int(checkpoint.get("position", 0)))
        try:
            while not stop.is_set():
                start = handle.tell()
                line = handle.readline()
                if line.endswith(b"\n"):
                    position = handle.tell()
                    text = line.rstrip(b"\r\n").decode(self.encoding, errors="replace")
                    yield Item(f"{inode}:{start}", text, {"inode": inode, "position": position})
                    continue
                handle.seek(start)  # a partial line: wait for the rest
                replaced = self._replaced(inode, start)
                if replaced is not None:
                    handle.close()
                    handle, inode = replaced, os.fstat(replaced.fileno()).st_ino
                    continue
                if not self.follow or stop.wait(self.poll):
                    return
        finally:
            handle.close()

    def _replaced(self, inode: int, position: int) -> Any:
        """A new file at the path after a rotation or truncation, else None."""
        try:
            now = os.stat(self.path)
        except FileNotFoundError:
            return None
        if now.st_ino != inode or now.st_size < position:
            return self._open()
        return None

    def commit(self, items: Sequence[Item]) -> Any:
        """The checkpoint after ``items``."""
        return items[-1].offset
