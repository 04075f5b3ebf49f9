"""Showing a run's progress: a live display on a terminal, plain lines otherwise.

:class:`ProgressHook` is an ordinary hook. On a terminal (and with ``rich`` installed) it
keeps a live view at the bottom of the screen: how many steps are done, cached, failed,
skipped and running, the elapsed time, the steps running now and the last few that
finished; failures are printed above it as they happen. Elsewhere (CI logs, pipes,
files) it writes one plain line per event, so a log shows what ran and when.

The hook only updates counters as events arrive; the live view is drawn by ``rich`` on its
own timer, so the cost per step stays small however fast the steps are. The library never
adds it by itself: the command line does, and so does ``run(progress=True)``.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, RenderResult
    from rich.live import Live

__all__ = ["ProgressHook"]

_RECENT = 5
_SHOWN_RUNNING = 8
_WORDS = {"ok": "ok", "cached": "cached", "failed": "FAILED", "skipped": "skipped"}
_ICONS = {
    "ok": "[green]✓[/]",
    "cached": "[blue]⚡[/]",
    "failed": "[red]✗[/]",
    "skipped": "[dim]↷[/]",
    "not_run": "[dim]·[/]",
}


def _seconds(value: float) -> str:
    if value < 1:
        return f"{value * 1000:.1f} ms"
    if value < 60:
        return f"{value:.2f} s"
    minutes, rest = divmod(int(value), 60)
    return f"{minutes} min {rest} s"


def _kind(step_result: Any) -> str:
    if step_result.status == "ok":
        return "cached" if step_result.cached else "ok"
    return str(step_result.status)


class ProgressHook:
    """Reports a run's progress as it goes (one run at a time).

    Args:
        stream: Where to write; default ``sys.stderr`` (looked up when the run starts).
        live: True for the live display, False for plain lines; None (default): live when
            the stream is a terminal and ``rich`` is installed.
        total: How many steps the run has, when the caller knows (shown as ``5/8``).
        refresh_per_second: How often the live display is redrawn.
    """

    def __init__(
        self,
        stream: IO[str] | None = None,
        *,
        live: bool | None = None,
        total: int | None = None,
        refresh_per_second: float = 8.0,
    ) -> None:
        self.stream = stream
        self.live = live
        self.total = total
        self.refresh_per_second = refresh_per_second
        self._lock = threading.Lock()
        self._live: Live | None = None
        self._reset("", "")

    def _reset(self, run_id: str, pipeline: str) -> None:
        self.run_id = run_id
        self.pipeline = pipeline
        self.counts = {"ok": 0, "cached": 0, "failed": 0, "skipped": 0}
        self.running: dict[str, float] = {}
        self.recent: deque[tuple[str, str, float]] = deque(maxlen=_RECENT)
        self.started = time.perf_counter()

    # -- hook events ---------------------------------------------------------------
    def on_run_start(self, run: Any) -> None:
        """Start the display for ``run``."""
        stream = self.stream if self.stream is not None else sys.stderr
        with self._lock:
            self._reset(run.run_id, run.pipeline)
        live = self.live
        if live is None:
            live = _is_terminal(stream) and _has_rich()
        if live:
            self._start_live(stream)
        else:
            self._line(stream, f"run {run.run_id} of {run.pipeline!r} started ({run.executor})")

    def on_step_start(self, step: Any, run: Any = None) -> None:
        """A step began executing."""
        with self._lock:
            self.running[step.name] = time.perf_counter()
        if self._live is None:
            self._line(self._stream(), f"{step.name} started")

    def on_step_end(self, step_result: Any, run: Any = None) -> None:
        """A step finished (executed, cached, failed or skipped)."""
        kind = _kind(step_result)
        with self._lock:
            self.running.pop(step_result.name, None)
            if kind in self.counts:
                self.counts[kind] += 1
            self.recent.append((step_result.name, kind, step_result.duration))
        if self._live is not None:
            if kind == "failed":
                self._live.console.print(
                    f"[red]✗ {_escape(step_result.name)} failed:[/] "
                    f"{_escape(str(step_result.error))}",
                    highlight=False,
                )
            return
        self._line(self._stream(), self._describe(step_result, kind))

    def on_run_end(self, result: Any) -> None:
        """Stop the display and say how the run ended."""
        counts: dict[str, int] = {}
        for record in result.steps.values():
            kind = _kind(record)
            counts[kind] = counts.get(kind, 0) + 1
        tally = ", ".join(f"{n} {kind.replace('_', ' ')}" for kind, n in counts.items())
        text = f"run {result.run_id} {result.status} in {_seconds(result.duration)}"
        text += f": {tally}" if tally else ""
        live, self._live = self._live, None
        if live is not None:
            live.stop()
            colour = "green" if result.status == "succeeded" else "red"
            live.console.print(f"[{colour}]{_escape(text)}[/]", highlight=False)
        else:
            self._line(self._stream(), text)

    # -- plain lines -----------------------------------------------------------------
    def _stream(self) -> IO[str]:
        return self.stream if self.stream is not None else sys.stderr

    def _describe(self, record: Any, kind: str) -> str:
        if kind == "ok":
            extra = " (fallback)" if record.fallback else ""
            return f"{record.name} ok in {_seconds(record.duration)}{extra}"
        if kind == "cached":
            return f"{record.name} cached"
        if kind == "failed":
            return f"{record.name} FAILED after {_seconds(record.duration)}: {record.error}"
        return f"{record.name} {_WORDS.get(kind, kind)}: {record.reason}"

    def _line(self, stream: IO[str], text: str) -> None:
        elapsed = time.perf_counter() - self.started
        with self._lock:
            stream.write(f"[{elapsed:7.2f}s] {text}\n")
            stream.flush()

    # -- the live view -----------------------------------------------------------------
    def _start_live(self, stream: IO[str]) -> None:
        from rich.console import Console
        from rich.live import Live

        console = Console(file=stream, force_terminal=True if self.live else None)
        self._live = Live(
            _View(self),
            console=console,
            refresh_per_second=self.refresh_per_second,
            transient=True,
            # prints of the steps go above the view, unless stdout goes elsewhere (a pipe)
            redirect_stdout=stream is sys.stdout or _is_terminal(sys.stdout),
            redirect_stderr=stream is sys.stderr,
        )
        self._live.start()

    def render_lines(self) -> list[str]:
        """The live view's lines, as rich markup (also what tests read)."""
        with self._lock:
            counts = dict(self.counts)
            now = time.perf_counter()
            running = sorted(self.running.items(), key=lambda item: item[1])
            recent = list(self.recent)
        finished = sum(counts.values())
        of = f"/{self.total}" if self.total else ""
        lines = [
            f"[bold]{_escape(self.pipeline)}[/] · run {self.run_id} · "
            f"{_seconds(now - self.started)} · {finished}{of} steps",
        ]
        if self.total:
            lines.append(_bar(finished, self.total))
        lines += [
            f"{_ICONS['ok']} {counts['ok']} done  {_ICONS['cached']} {counts['cached']} cached  "
            f"{_ICONS['failed']} {counts['failed']} failed  "
            f"{_ICONS['skipped']} {counts['skipped']} skipped  "
            f"[yellow]▶[/] {len(running)} running",
        ]
        for name, since in running[:_SHOWN_RUNNING]:
            lines.append(f"  [yellow]▶[/] {_escape(name)}  [dim]{_seconds(now - since)}[/]")
        if len(running) > _SHOWN_RUNNING:
            lines.append(f"  [dim]… and {len(running) - _SHOWN_RUNNING} more running[/]")
        for name, kind, duration in reversed(recent):
            detail = _seconds(duration) if kind in ("ok", "failed") else kind
            lines.append(f"  {_ICONS.get(kind, '·')} {_escape(name)}  [dim]{detail}[/]")
        return lines


class _View:
    """The live view: redrawn by rich's timer from the hook's counters."""

    def __init__(self, hook: ProgressHook) -> None:
        self.hook = hook

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        from rich.text import Text

        for line in self.hook.render_lines():
            yield Text.from_markup(line)


def _bar(done: int, total: int, width: int = 40) -> str:
    """A text progress bar in rich markup."""
    filled = min(width, round(width * done / total)) if total else 0
    return f"[green]{'━' * filled}[/][dim]{'━' * (width - filled)}[/] {done}/{total}"


def _escape(text: str) -> str:
    return text.replace("[", r"\[")


def _is_terminal(stream: IO[str]) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def _has_rich() -> bool:
    import importlib.util

    return importlib.util.find_spec("rich") is not None
