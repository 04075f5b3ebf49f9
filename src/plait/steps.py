"""Steps: plain functions with named inputs and outputs.

A :class:`Step` wraps a function. Each of its parameters is fed by a *data name* (by
default the parameter's own name; ``inputs=`` maps it elsewhere), and each of its
*outputs* is a data name other steps can consume. A ``Step`` is still the plain function
outside a ``with Pipeline()`` block; inside one, calling it adds a node and returns
:class:`Handle` objects (see :mod:`plait.pipeline`).

Everything the user passes is normalised here once, into frozen values, so the graph
and the runner never re-parse flexible arguments; the execution options are parsed and
checked by :mod:`plait._step_options`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, overload

from plait._step_options import DEFAULT_OPTIONS, StepOptions, make_options, names_of
from plait._step_parts import (
    FROM_FUNCTION,
    MISSING,
    NO_ENTRIES,
    DocText,
    ModuleText,
    Signature,
    signature_of,
)
from plait.errors import StepDefinitionError, suggest

__all__ = ["MISSING", "Handle", "Step", "StepOptions", "step"]


class Step:
    """A function wired into a pipeline by the names of its inputs and outputs.

    Args:
        func: The function (sync or ``async def``).
        inputs: A list maps the first parameters positionally to data names; a dict maps
            parameter names to data names. Parameters left unmapped are fed by their own
            names. With a ``**kwargs`` parameter, dict keys that are not parameter names
            become keyword arguments.
        outputs: The data names this step produces. ``None``: one output named like the
            step. A string or a one-element list: the return value is that output. Several
            names: the function returns a tuple (in that order) or a dict keyed by name.
            ``[]``: a sink with no output.
        name: The step's name (default: the function's ``__name__``).
        after: Steps (or step names) that must finish first, without passing data.
        **options: Execution options, see :func:`step`.
    """

    __slots__ = (
        "__dict__",
        "_explicit_outputs",
        "_feeds",
        "after",
        "bound",
        "extra_inputs",
        "func",
        "name",
        "options",
        "outputs",
        "signature",
        "single_output",
    )

    func: Callable[..., Any]
    name: str
    _feeds: tuple[str, ...]  # the data name feeding each of ``signature.params``, in order
    extra_inputs: Mapping[str, str]
    bound: Mapping[str, Any]
    outputs: tuple[str, ...]
    single_output: bool
    after: tuple[str, ...]
    options: StepOptions
    signature: Signature
    _explicit_outputs: bool

    def __init__(
        self,
        func: Callable[..., Any],
        inputs: Sequence[str] | Mapping[str, str] | None = None,
        outputs: str | Sequence[str] | None = None,
        *,
        name: str | None = None,
        after: Iterable[str | Step] | str | Step = (),
        **options: Any,
    ) -> None:
        if isinstance(func, Step):
            func = func.func
        if not callable(func):
            raise StepDefinitionError(f"a step wraps a function, got {func!r}")
        step_name = name if name is not None else getattr(func, "__name__", None)
        if not step_name or step_name == "<lambda>":
            raise StepDefinitionError(
                f"cannot name the step for {func!r}: pass name='...' (lambdas have no name)"
            )
        self.func = func
        self.name = step_name
        signature = self.signature = signature_of(func)
        self.bound = self.extra_inputs = NO_ENTRIES
        params = signature.params
        # the usual cases inline (a 100,000-step pipeline defines 100,000 steps): no
        # inputs=, or a list of data names for the first parameters
        if inputs is None:
            self._feeds = params  # each parameter fed by its own name: shared, not copied
        elif type(inputs) is list and len(inputs) == 1 and len(params) == 1:
            data = inputs[0]
            if type(data) is not str or not data:
                _check_data_name(step_name, params[0], data)
            self._feeds = (data,)
        else:
            self._feeds, self.extra_inputs = self._wire(inputs)
        if outputs is None:
            self.outputs, self.single_output, self._explicit_outputs = (step_name,), True, False
        elif type(outputs) is list and len(outputs) == 1 and type(outputs[0]) is str and outputs[0]:
            self.outputs, self.single_output, self._explicit_outputs = (outputs[0],), True, True
        else:
            self._explicit_outputs = True
            self.outputs, self.single_output = self._output_names(outputs)
        self.after = _after_names(after, step_name) if after else ()
        self.options = (
            make_options(step_name, params, self.outputs, options)
            if options
            else DEFAULT_OPTIONS[bool(self.outputs)]  # one shared, already checked instance
        )
        # what functools.update_wrapper would set comes from the function on demand:
        # __module__ and __doc__ through _FunctionText, the rest through __getattr__

    if not TYPE_CHECKING:  # hidden from mypy, which would accept any attribute otherwise

        def __getattr__(self, name: str) -> Any:
            # only reached for names not found otherwise: the function's, as a wrapper shows
            if name in FROM_FUNCTION:
                if name == "__wrapped__":
                    return self.func
                return getattr(self.func, name)
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    # -- construction helpers -------------------------------------------------
    def _wire(
        self, inputs: Sequence[str] | Mapping[str, str] | None
    ) -> tuple[tuple[str, ...], Mapping[str, str]]:
        """The data name feeding each parameter (in order), and the ``**kwargs`` entries."""
        params = self.signature.params
        if inputs is None:
            return params, NO_ENTRIES
        if isinstance(inputs, str):
            inputs = [inputs]
        if type(inputs) is not list and isinstance(inputs, Mapping):
            return self._wire_by_name(inputs)
        names = inputs if type(inputs) is list else list(inputs)
        count = len(names)
        if count > len(params):
            raise StepDefinitionError(
                f"step {self.name!r}: inputs= lists {count} names but "
                f"{self.func.__name__} takes only {len(params)} named parameters "
                f"{list(params)}; pass a dict to map by parameter name"
            )
        for param, data in zip(params, names):  # noqa: B905 - lengths checked above
            if type(data) is not str or not data:
                _check_data_name(self.name, param, data)
        # the rest are fed by their own names
        return (*names, *params[count:]) if count < len(params) else tuple(names), NO_ENTRIES

    def _wire_by_name(self, inputs: Mapping[str, str]) -> tuple[tuple[str, ...], Mapping[str, str]]:
        sig = self.signature
        wiring = {param: param for param in sig.params}
        extra: dict[str, str] = {}
        for param, data in inputs.items():
            _check_data_name(self.name, param, data)
            if param in wiring:
                wiring[param] = data
            elif sig.var_keyword is not None:
                extra[param] = data
            else:
                raise StepDefinitionError(
                    f"step {self.name!r}: inputs= maps {param!r}, which is not a parameter "
                    f"of {self.func.__name__}{suggest(param, sig.params)}; "
                    f"parameters are {list(sig.params)}"
                )
        return tuple(wiring.values()), extra or NO_ENTRIES

    def _output_names(self, outputs: str | Sequence[str] | None) -> tuple[tuple[str, ...], bool]:
        if outputs is None:
            return (self.name,), True
        names = names_of(outputs, "outputs", self.name)
        if len(set(names)) != len(names):
            raise StepDefinitionError(f"step {self.name!r}: outputs repeat a name: {names}")
        return names, len(names) == 1

    # -- public API -----------------------------------------------------------
    @property
    def is_async(self) -> bool:
        """True for an ``async def`` step."""
        return self.signature.is_async

    @property
    def inputs(self) -> dict[str, str]:
        """Parameter -> the data name feeding it, for every named parameter (bound ones
        included), in the function's order: a new dict on each read (the step keeps one
        tuple of data names, not a dict per step)."""
        return dict(zip(self.signature.params, self._feeds, strict=True))

    @inputs.setter
    def inputs(self, wiring: Mapping[str, str]) -> None:
        params = self.signature.params
        if len(wiring) != len(params) or any(param not in wiring for param in params):
            raise StepDefinitionError(
                f"step {self.name!r}: the wiring {dict(wiring)!r} must map every parameter "
                f"of {getattr(self.func, '__name__', self.func)!r}: {list(params)}"
            )
        self._feeds = tuple([wiring[param] for param in params])

    @property
    def data_inputs(self) -> Mapping[str, str]:
        """Every data name this step consumes, keyed by the parameter that receives it.

        Parameters bound to constants are left out. A new dict on each read when nothing
        is bound and there is no ``**kwargs`` entry (most steps: they keep a tuple, not a
        dict); else computed once and kept (steps do not change after construction:
        ``with_options`` and friends return copies), to be read, not changed.
        """
        bound, extra = self.bound, self.extra_inputs
        if not bound and not extra:
            return dict(zip(self.signature.params, self._feeds, strict=True))
        cached: dict[str, str] | None = self.__dict__.get("_data_inputs")
        if cached is None:
            cached = {
                p: d
                for p, d in zip(self.signature.params, self._feeds, strict=True)
                if p not in bound
            }
            cached.update({k: d for k, d in extra.items() if k not in bound})
            self.__dict__["_data_inputs"] = cached
        return cached

    def _data_pairs(self) -> Iterable[tuple[str, str]]:
        """Internal: ``data_inputs.items()`` without building a dict when nothing is bound."""
        if not self.bound and not self.extra_inputs:
            return zip(self.signature.params, self._feeds, strict=True)
        return self.data_inputs.items()

    def _bind(self, param: str, value: Any) -> None:
        """Internal: bind ``param`` to a constant (used while building a copy)."""
        self.bound = {**self.bound, param: value}
        self.__dict__.pop("_data_inputs", None)

    def with_options(self, **changes: Any) -> Step:
        """Return a copy with other options (``name``, ``retries``, ``inputs`` ...).

        A step whose output was its default name follows a new ``name``.
        """
        clone = self._copy()
        if "name" in changes:
            new_name = changes.pop("name")
            if not isinstance(new_name, str) or not new_name:
                raise StepDefinitionError(f"name must be a non-empty string, got {new_name!r}")
            clone.name = new_name
            if not self._explicit_outputs:
                clone.outputs = (new_name,)
        if "inputs" in changes:
            clone._feeds, clone.extra_inputs = clone._wire(changes.pop("inputs"))
        if "outputs" in changes:
            outputs = changes.pop("outputs")
            clone._explicit_outputs = outputs is not None
            clone.outputs, clone.single_output = clone._output_names(outputs)
        if "after" in changes:
            clone.after = _after_names(changes.pop("after"), clone.name)
        if changes:
            merged = {
                name: getattr(self.options, name) for name in StepOptions.__dataclass_fields__
            }
            if not self.options.cache and "cache" not in changes and self.outputs:
                merged.pop("cache")
            merged.update(changes)
            clone.options = make_options(clone.name, clone.signature.params, clone.outputs, merged)
        return clone

    def _copy(self) -> Step:
        clone = object.__new__(Step)
        for slot in Step.__slots__:
            if slot != "__dict__" and hasattr(self, slot):
                object.__setattr__(clone, slot, getattr(self, slot))
        clone.__dict__.update(self.__dict__)
        clone.__dict__.pop("_data_inputs", None)
        clone.__dict__.pop("_plait_asset_plan", None)  # plait.assets: by outputs, re-read
        return clone

    def _rewired(
        self,
        *,
        name: str,
        inputs: Mapping[str, str],
        extra_inputs: Mapping[str, str],
        outputs: tuple[str, ...],
        after: tuple[str, ...],
        bound: Mapping[str, Any],
    ) -> Step:
        """A copy with internal wiring replaced (used by handles and sub-pipelines)."""
        clone = self._copy()
        clone.name = name
        clone.inputs = inputs
        clone.extra_inputs = dict(extra_inputs) if extra_inputs else NO_ENTRIES
        clone.outputs = outputs
        clone.after = after
        clone.bound = dict(bound) if bound else NO_ENTRIES
        clone._explicit_outputs = True
        return clone

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from plait.pipeline import active_builder

        builder = active_builder()
        if builder is not None:
            return builder.add_call(self, args, kwargs)
        return self.func(*args, **kwargs)

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        return functools.partial(self.__call__, instance)

    def __repr__(self) -> str:
        ins = ", ".join(
            p if d == p else f"{p}={d}"
            for p, d in (
                *zip(self.signature.params, self._feeds, strict=True),
                *self.extra_inputs.items(),
            )
        )
        return f"Step({self.name!r}, inputs=[{ins}], outputs={list(self.outputs)})"

    def __reduce__(self) -> tuple[Any, ...]:
        state = {slot: getattr(self, slot) for slot in Step.__slots__ if slot != "__dict__"}
        return (_rebuild_step, (state,))


Step.__module__ = ModuleText(Step.__module__)
Step.__doc__ = DocText(Step.__doc__)


def _rebuild_step(state: dict[str, Any]) -> Step:
    clone = object.__new__(Step)
    wiring = state.pop("inputs", None)  # a step pickled by a plait that kept a dict
    for key, value in state.items():
        object.__setattr__(clone, key, value)
    if wiring is not None:
        clone.inputs = wiring
    return clone


def _check_data_name(step_name: str, param: str, data: object) -> None:
    if not isinstance(data, str) or not data:
        raise StepDefinitionError(
            f"step {step_name!r}: inputs= maps {param!r} to {data!r}; data names are "
            "non-empty strings"
        )


def _after_names(after: Iterable[str | Step] | str | Step, step_name: str) -> tuple[str, ...]:
    if isinstance(after, str | Step):
        after = [after]
    names: list[str] = []
    for item in after:
        if isinstance(item, Step):
            names.append(item.name)
        elif isinstance(item, str) and item:
            names.append(item)
        else:
            raise StepDefinitionError(
                f"step {step_name!r}: after= takes steps or step names, got {item!r}"
            )
    return tuple(names)


@overload
def step(func: Callable[..., Any], /) -> Step: ...


@overload
def step(
    func: None = None,
    /,
    *,
    name: str | None = ...,
    inputs: Sequence[str] | Mapping[str, str] | None = ...,
    outputs: str | Sequence[str] | None = ...,
    after: Iterable[str | Step] | str | Step = ...,
    **options: Any,
) -> Callable[[Callable[..., Any]], Step]: ...


def step(
    func: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    inputs: Sequence[str] | Mapping[str, str] | None = None,
    outputs: str | Sequence[str] | None = None,
    after: Iterable[str | Step] | str | Step = (),
    **options: Any,
) -> Step | Callable[[Callable[..., Any]], Step]:
    """Turn a function into a :class:`Step`, with or without arguments.

    Options (all keyword): ``cache`` (default True, False for sinks), ``version`` (a label
    that invalidates the cache when changed), ``expire``, ``retries`` (extra attempts),
    ``backoff`` (seconds before the first retry, doubling), ``retry_on`` (exception
    classes to retry), ``timeout`` (seconds per attempt), ``on_failure`` (a fallback
    ``f(exc, **inputs)`` whose value is used after the last attempt), ``when`` (a predicate
    over the step's inputs; false skips the step), ``on_upstream`` (``"skip"``,
    ``"receive"`` or ``"fail"``), ``optional`` (a failure neither fails the run nor
    raises), ``map`` (the parameter to map over), ``concurrency``, ``min_success_ratio``,
    ``dynamic`` (the step returns a Pipeline to run), ``input_files``, ``profile``,
    ``tags`` (a label or labels that pick steps: ``Pipeline.select(tags=...)``,
    ``plait run --tags``).

    Example:
        >>> @step
        ... def double(x):
        ...     return 2 * x
        >>> double(4)
        8
    """

    def wrap(function: Callable[..., Any]) -> Step:
        return Step(function, inputs, outputs, name=name, after=after, **options)

    if func is not None:
        return wrap(func)
    return wrap


@dataclass(frozen=True, slots=True, eq=False)
class Handle:
    """A value (or a step) inside a ``with Pipeline()`` block.

    Pass a handle to another step call to wire it; ``a >> b`` makes ``b`` run after ``a``.
    """

    builder: Any = field(repr=False)
    step_name: str | None  # the producing step, None for a param
    data: str | None  # the data name, None for a step without outputs

    def __rshift__(self, other: Handle | Sequence[Handle]) -> Handle | Sequence[Handle]:
        targets = [other] if isinstance(other, Handle) else list(other)
        for target in targets:
            self.builder.add_order(self, target)
        return other

    def __rrshift__(self, other: Sequence[Handle]) -> Handle:
        for source in other:
            self.builder.add_order(source, self)
        return self

    def __repr__(self) -> str:
        return f"Handle({self.data or self.step_name!r})"


def rename_options(step_obj: Step, **changes: Any) -> Step:
    """Internal: replace fields of a step's options without re-validating."""
    clone = step_obj._copy()
    clone.options = replace(step_obj.options, **changes)
    return clone
