"""Step options: the frozen :class:`StepOptions`, and the parsing and checking of the
keyword options :func:`plait.step` takes.

The options are normalised once, when a step is defined (durations to seconds, names to
tuples, ``retry_on`` to a tuple of classes), and checked all at once: one
:class:`~plait.errors.StepDefinitionError` lists every problem. A step with only default
options shares one instance, already checked, which keeps defining a 100,000-step
pipeline quick.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, cast

from plait.errors import StepDefinitionError, suggest

if TYPE_CHECKING:
    from datetime import timedelta

__all__ = [
    "DEFAULT_OPTIONS",
    "OnUpstream",
    "StepOptions",
    "check_options",
    "make_options",
    "names_of",
    "to_seconds",
]

OnUpstream = Literal["skip", "receive", "fail"]
_ON_UPSTREAM = ("skip", "receive", "fail")


def to_seconds(value: float | timedelta | None, what: str) -> float | None:
    """Normalise a duration given as seconds or a timedelta."""
    if value is None:
        return None
    from datetime import timedelta  # here: most steps have no duration option

    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise StepDefinitionError(f"{what} must be seconds or a timedelta, got {value!r}")
    return float(value)


@dataclass(frozen=True, slots=True)
class StepOptions:
    """Execution options of a step; see :func:`plait.step` for their meaning."""

    cache: bool = True
    version: str | None = None
    expire: Any = None
    retries: int = 0
    backoff: float = 1.0
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    timeout: float | None = None
    on_failure: Callable[..., Any] | None = None
    when: Callable[..., Any] | None = None
    on_upstream: OnUpstream = "skip"
    optional: bool = False
    map: str | None = None
    concurrency: int | None = None
    min_success_ratio: float = 1.0
    dynamic: bool = False
    input_files: tuple[str, ...] = ()
    profile: bool = False
    tags: tuple[str, ...] = ()


def names_of(value: str | Sequence[str] | None, what: str, step_name: str) -> tuple[str, ...]:
    """One name or several as a tuple of non-empty strings (``None``: none)."""
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    names = tuple(value)
    for name in names:
        if not isinstance(name, str) or not name:
            raise StepDefinitionError(
                f"step {step_name!r}: {what} must be non-empty strings, got {name!r}"
            )
    return names


# by "has outputs": a sink is not cached by default
DEFAULT_OPTIONS = {True: StepOptions(cache=True), False: StepOptions(cache=False)}


def make_options(
    name: str, params: tuple[str, ...], outputs: tuple[str, ...], options: Mapping[str, Any]
) -> StepOptions:
    """The checked options of step ``name`` from the keyword ``options`` given to it.

    ``params`` are the function's parameters (``map=`` names one); ``outputs`` decide the
    default of ``cache`` (a sink is not cached).
    """
    if not options:  # the common case: one shared, already checked instance
        return DEFAULT_OPTIONS[bool(outputs)]
    unknown = set(options) - set(StepOptions.__dataclass_fields__)
    if unknown:
        bad = sorted(unknown)[0]
        raise StepDefinitionError(
            f"step {name!r}: unknown option {bad!r}{suggest(bad, StepOptions.__dataclass_fields__)}"
        )
    values = dict(options)
    if values.get("cache") is None:
        values["cache"] = bool(outputs)  # sinks are side effects: not cached by default
    if values.get("backoff") is None:
        values.pop("backoff", None)
    retry_on = values.get("retry_on", (Exception,))
    if isinstance(retry_on, type):
        retry_on = (retry_on,)
    values["retry_on"] = tuple(retry_on)
    for key in ("input_files", "tags"):
        if key in values:
            values[key] = names_of(values[key], key, name)
    if "timeout" in values:
        values["timeout"] = to_seconds(values["timeout"], f"step {name!r}: timeout")
    if "backoff" in values:
        values["backoff"] = to_seconds(values["backoff"], f"step {name!r}: backoff")
    if values.get("version") is not None:
        values["version"] = str(values["version"])
    opts = StepOptions(**values)
    check_options(name, params, opts)
    return opts


def check_options(name: str, params: tuple[str, ...], opts: StepOptions) -> None:
    """Raise one :class:`~plait.errors.StepDefinitionError` listing every bad option."""
    problems = []
    if not isinstance(opts.retries, int) or isinstance(opts.retries, bool) or opts.retries < 0:
        problems.append(f"retries must be a whole number >= 0, got {opts.retries!r}")
    if opts.timeout is not None and opts.timeout <= 0:
        problems.append(f"timeout must be positive seconds, got {opts.timeout!r}")
    if opts.on_upstream not in _ON_UPSTREAM:
        problems.append(
            f"on_upstream must be one of {list(_ON_UPSTREAM)}, got {opts.on_upstream!r}"
            f"{suggest(str(opts.on_upstream), _ON_UPSTREAM)}"
        )
    if opts.map is not None and opts.map not in params:
        problems.append(
            f"map={opts.map!r} is not a parameter of the function"
            f"{suggest(opts.map, params)}; parameters are {list(params)}"
        )
    if not 0.0 <= opts.min_success_ratio <= 1.0:
        problems.append(f"min_success_ratio must be in [0, 1], got {opts.min_success_ratio!r}")
    if opts.concurrency is not None and opts.concurrency < 1:
        problems.append(f"concurrency must be >= 1, got {opts.concurrency!r}")
    for key in ("when", "on_failure"):
        value = getattr(opts, key)
        if value is not None and not callable(value):
            problems.append(f"{key}= must be callable, got {value!r}")
    for exc_type in cast(tuple[Any, ...], opts.retry_on):
        if not (isinstance(exc_type, type) and issubclass(exc_type, BaseException)):
            problems.append(f"retry_on takes exception classes, got {exc_type!r}")
    if problems:
        raise StepDefinitionError(f"step {name!r}: " + "; ".join(problems))
