"""Assets and the catalog: values marked as datasets, models or metrics, recorded with
their versions, metadata and lineage.

``from plait import Asset, Dataset, Model, Metrics`` (the types, :mod:`plait.assets._types`);
``store.catalog`` (:class:`~plait.assets._catalog.Catalog`). See ``docs/assets.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from plait.assets._types import Asset, AssetError, AssetInfo, Dataset, Metrics, Model

if TYPE_CHECKING:
    from plait.assets._catalog import AssetNotFound, AssetVersion, Catalog

__all__ = [
    "Asset",
    "AssetError",
    "AssetInfo",
    "AssetNotFound",
    "AssetVersion",
    "Catalog",
    "Dataset",
    "Metrics",
    "Model",
]


def __getattr__(name: str) -> Any:
    if name in ("AssetNotFound", "AssetVersion", "Catalog"):
        from plait.assets import _catalog

        return getattr(_catalog, name)
    raise AttributeError(f"module 'plait.assets' has no attribute {name!r}")
