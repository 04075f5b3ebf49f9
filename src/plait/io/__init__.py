"""Datasets: files that pipelines read as sources and write as sinks.

``Pipeline(steps, datasets={"companies": CSV("data/01_raw/companies.csv")})``: a dataset
named like an input that no step produces is a *source* (loaded when a step needs it,
once per run; its data version is its file's content hash), and one named like a step's
output is a *sink* (saved after the step). Any object with ``load()`` and ``save(data)``
is a dataset (Kedro's protocol); plait's own formats are :class:`CSV`, :class:`Parquet`,
:class:`Feather`, :class:`Excel`, :class:`JSON`, :class:`YAML`, :class:`Text` and
:class:`Pickle`, over any fsspec path. See ``docs/datasets.md``.

This package sits above the graph and the store; importing it imports no data library.
"""

from __future__ import annotations

from plait.io._base import Dataset, DatasetError, FileDataset, dataset_path
from plait.io._catalog import DATASET_TYPES, dataset_from_config, load_catalog
from plait.io._formats import CSV, JSON, YAML, Excel, Feather, Parquet, Pickle, Text
from plait.io._records import run_datasets

__all__ = [
    "CSV",
    "DATASET_TYPES",
    "JSON",
    "YAML",
    "Dataset",
    "DatasetError",
    "Excel",
    "Feather",
    "FileDataset",
    "Parquet",
    "Pickle",
    "Text",
    "dataset_from_config",
    "dataset_path",
    "load_catalog",
    "run_datasets",
]
