"""Assets: a step's value marked as a dataset, a model or metrics, for the catalog.

A step returns ``Model(clf, name="price-model")`` (or returns ``clf`` and is annotated
``-> Model``): plait records the value in the catalog with its kind, name, metadata and
tags, and hands the *plain value* on. The wrapper never reaches the cache, the store or a
consumer, so an asset's version is the data version of its plain value: wrapping a value
changes neither its version nor any cache key, and its metadata is not part of either
(two runs that produce equal data produce one version, whatever metadata they attach).

Design. Unwrapping happens where the step runs (:func:`unwrap_outputs`, called by
:mod:`plait.run.task` right after the return value is split into outputs), so the
value persisted and hashed is the plain one on every executor. What was unwrapped
travels back with the step's metrics (:class:`AssetMetrics`, a
:class:`~plait.run.context.Metrics` that also carries :class:`AssetInfo` tuples) and is
written to the catalog by the run's recorder on the driver. ``Metrics`` values are also
added to the step's metrics, as ``current().log_metric`` would.

A consumer annotated with an asset type (``def evaluate(model: Model)``) receives the
value wrapped again (:func:`wrap_inputs`): ``Model(value, name=<input name>)`` with the
automatic metadata; any other consumer receives the plain value.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from plait.errors import PlaitError

__all__ = [
    "KINDS",
    "Asset",
    "AssetError",
    "AssetInfo",
    "Dataset",
    "Metrics",
    "Model",
    "asset_type",
    "unwrap_outputs",
    "wrap_inputs",
]

T = TypeVar("T")

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-/]{0,199}")


class AssetError(PlaitError, ValueError):
    """An asset built with a bad name, metadata or tags."""


class Asset(Generic[T]):
    """A value that plait records in the catalog (base of Dataset, Model, Metrics).

    Args:
        value: The plain value; consumers receive it unwrapped.
        name: The catalog name (default: the step's output name). Letters, digits and
            ``_ . - /``.
        metadata: Extra JSON-friendly facts to record; they add to (and override) the
            automatic metadata, and are not part of the value's data version.
        tags: Labels to find the asset by (``store.catalog.find(tags=[...])``).

    Raises:
        AssetError: For a bad name, metadata that is not a mapping with string keys, tags
            that are not strings, or an asset wrapped in another.
    """

    kind: ClassVar[str] = "asset"
    __plait_asset__: ClassVar[bool] = True  # typecheck: unwrapped, so any consumer type fits
    __slots__ = ("metadata", "name", "tags", "value")

    def __init__(
        self,
        value: T,
        name: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        tags: Iterable[str] = (),
    ) -> None:
        if isinstance(value, Asset):
            raise AssetError(
                f"{type(self).__name__}() got a {type(value).__name__} asset: wrap the plain "
                "value once"
            )
        if name is not None and (not isinstance(name, str) or not _NAME.fullmatch(name)):
            raise AssetError(
                f"asset name {name!r} is not valid: use letters, digits and '_ . - /' "
                "(at most 200 characters, not starting with a punctuation mark)"
            )
        if metadata is not None and (
            not isinstance(metadata, Mapping) or not all(isinstance(k, str) for k in metadata)
        ):
            raise AssetError(f"asset metadata must be a mapping with string keys, not {metadata!r}")
        if isinstance(tags, str):
            tags = (tags,)
        tag_tuple = tuple(tags)
        bad = [t for t in tag_tuple if not isinstance(t, str) or not t]
        if bad:
            raise AssetError(f"asset tags must be non-empty strings; got {bad!r}")
        self.value = value
        self.name = name
        self.metadata: dict[str, Any] = dict(metadata or {})
        self.tags = tag_tuple
        self._check()

    def _check(self) -> None:
        """Kind-specific checks of the value (none for the base)."""

    def __repr__(self) -> str:
        name = "" if self.name is None else f", name={self.name!r}"
        return f"{type(self).__name__}({type(self.value).__name__}{name})"

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self) or not isinstance(other, Asset):
            return NotImplemented
        return bool(
            self.name == other.name
            and self.tags == other.tags
            and self.metadata == other.metadata
            and self.value is other.value  # by identity: arrays and frames have no plain ==
        )

    __hash__ = None  # type: ignore[assignment]

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.value, self.name, self.metadata, self.tags))


class Dataset(Asset[T]):
    """A data set produced by a step (a frame, an array, a table...).

    Not to be confused with the *file datasets* of :mod:`plait.io` (``CSV``,
    ``Parquet``...), which load and save values: this marks a value for the catalog.
    Automatic metadata: shape, columns and dtypes of frames and arrays, length of others.
    """

    kind = "dataset"


class Model(Asset[T]):
    """A trained model. Automatic metadata: its class and, when it has ``get_params()``
    (scikit-learn style), its hyperparameters."""

    kind = "model"


class Metrics(Asset[Mapping[str, Any]]):
    """Evaluation metrics: a mapping of metric name to value. The values become the
    step's metrics (as ``current().log_metric`` would) and the asset's metadata."""

    kind = "metrics"

    def _check(self) -> None:
        if not isinstance(self.value, Mapping) or not all(isinstance(k, str) for k in self.value):
            raise AssetError(
                f"Metrics() takes a mapping of metric name to value, not "
                f"{type(self.value).__name__}: Metrics({{'r2': 0.91}})"
            )


KINDS = {cls.kind: cls for cls in (Asset, Dataset, Model, Metrics)}


@dataclass(frozen=True, slots=True)
class AssetInfo:
    """What the catalog records about one asset a step produced (its version is added on
    the driver, from the output's data version)."""

    output: str
    kind: str
    name: str
    metadata: dict[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ()


def asset_type(annotation: Any) -> type[Asset[Any]] | None:
    """The asset class an annotation names (``Model``, ``Model[X]``), else None."""
    origin = typing.get_origin(annotation) or annotation
    if isinstance(origin, type) and issubclass(origin, Asset):
        return origin
    return None


def _declared(item: Any) -> tuple[type[Asset[Any]] | None, ...]:
    """The asset class each output is annotated with (None for a plain one)."""
    annotation = item.signature.annotations.get("return")
    if annotation is None:
        return ()
    if item.single_output:
        return (asset_type(annotation),)
    if typing.get_origin(annotation) is tuple:
        args = typing.get_args(annotation)
        if len(args) == len(item.outputs):
            return tuple(asset_type(a) for a in args)
    return ()


_Plan = tuple[tuple[type[Asset[Any]] | None, ...], dict[str, type[Asset[Any]]]]
_PLAN_KEY = "_plait_asset_plan"  # where a step keeps its plan (its own __dict__)


def _plan(item: Any) -> _Plan:
    """The step's asset outputs and asset-typed parameters, read once per step object and
    kept on it (every task of a step pays an attribute lookup, not an annotation walk;
    a bounded table shared by all steps was cleared over and over by a big pipeline).
    A step's copies (``Step._copy``) drop it, as they may change the outputs."""
    kept = getattr(item, "__dict__", None)
    plan: _Plan | None = None if kept is None else kept.get(_PLAN_KEY)
    if plan is not None:
        return plan
    annotations = item.signature.annotations
    params = {
        name: kind
        for name, annotation in annotations.items()
        if name != "return" and (kind := asset_type(annotation)) is not None
    }
    plan = (_declared(item) if annotations else (), params)
    if kept is not None:
        kept[_PLAN_KEY] = plan
    return plan


def unwrap_outputs(
    item: Any, values: tuple[Any, ...], metrics: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The step's output values with every asset replaced by its plain value, and its
    metrics with the assets attached.

    Outputs annotated with an asset type are recorded as that kind even when returned
    plain. The metrics returned are ``metrics`` itself when there is no asset, else an
    :class:`~plait.assets._metrics.AssetMetrics` copy carrying the :class:`AssetInfo`
    records, with the values of any ``Metrics`` asset added.
    """
    declared = _plan(item)[0]
    if not any(declared):  # the common case, kept cheap: a loop, no generator
        for value in values:
            if isinstance(value, Asset):
                break
        else:
            return values, metrics
    from plait.assets._metadata import automatic

    plain: list[Any] = []
    found: list[AssetInfo] = []
    for index, (output, value) in enumerate(zip(item.outputs, values, strict=False)):
        kind = declared[index] if index < len(declared) else None
        asset: Asset[Any] | None = value if isinstance(value, Asset) else None
        if asset is None and kind is not None:
            asset = kind(value)
        if asset is None:
            plain.append(value)
            continue
        meta = automatic(asset.kind, asset.value)
        meta.update(asset.metadata)
        found.append(AssetInfo(output, asset.kind, asset.name or output, meta, asset.tags))
        if isinstance(asset, Metrics):
            metrics.update(asset.value)
        plain.append(asset.value)
    plain.extend(values[len(plain) :])
    if found:
        from plait.assets._metrics import with_assets

        metrics = with_assets(metrics, found)
    return tuple(plain), metrics


def wrap_inputs(item: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` with the inputs of parameters annotated with an asset type wrapped in
    it (``kwargs`` itself when there are none)."""
    kinds = _plan(item)[1]
    if not kinds:
        return kwargs
    from plait.assets._metadata import automatic

    wrapped = dict(kwargs)
    for param, kind in kinds.items():
        if param not in kwargs or isinstance(kwargs[param], Asset):
            continue
        value = kwargs[param]
        name = item.data_inputs.get(param, param)
        asset = kind(value, name=name if _NAME.fullmatch(name) else None)
        asset.metadata.update(automatic(asset.kind, value))
        wrapped[param] = asset
    return wrapped
