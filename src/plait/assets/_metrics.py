"""A step's metrics that also carry the assets it produced, back to the driver.

They ride on the step's metrics (like its logs, see :mod:`plait.run.context`) because the
metrics already travel from every executor's workers to the driver; a plain reader still
sees a ``dict`` of metric values.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from plait.run.context import Metrics as StepMetrics

if TYPE_CHECKING:
    from plait.assets._types import AssetInfo

__all__ = ["AssetMetrics", "assets_of", "with_assets"]


class AssetMetrics(StepMetrics):
    """Step metrics plus the :class:`~plait.assets._types.AssetInfo` of its assets."""

    __slots__ = ("assets",)

    def __init__(self) -> None:
        super().__init__()
        self.assets: tuple[AssetInfo, ...] = ()

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (dict(self), self.logs, self.assets))


def _rebuild(values: dict[str, Any], logs: Any, assets: tuple[AssetInfo, ...]) -> AssetMetrics:
    metrics = AssetMetrics()
    metrics.update(values)
    metrics.logs = logs
    metrics.assets = assets
    return metrics


def with_assets(metrics: dict[str, Any], assets: Sequence[AssetInfo]) -> AssetMetrics:
    """``metrics`` (values and logs) with ``assets`` attached."""
    carried = AssetMetrics()
    carried.update(metrics)
    logs = getattr(metrics, "logs", None)
    if logs is not None:
        carried.logs = logs
    carried.assets = (*getattr(metrics, "assets", ()), *assets)
    return carried


def assets_of(metrics: Any) -> tuple[AssetInfo, ...]:
    """The assets a step's metrics carry (none for plain metrics)."""
    found = getattr(metrics, "assets", ())
    return tuple(found) if isinstance(found, tuple) else ()
