"""The file formats: pandas tables (CSV, Parquet, Feather, Excel) and plain data (JSON,
YAML, Text, Pickle).

Design note
-----------
Each format is two small methods over an open binary file, ``read`` and ``write``; paths,
versions, filesystems and atomic writes are :class:`~plait.io._base.FileDataset`'s. The
library a format needs (pandas, pyarrow, openpyxl, pyyaml) is imported when the dataset is
first read or written, never at ``import plait.io``; a missing one raises
:class:`~plait.io._base.DatasetError` with the ``pip install`` that fixes it.
Defaults follow Kedro's: tables are written without the pandas index.
"""

from __future__ import annotations

import io
from typing import IO, Any, ClassVar

from plait.io._base import DatasetError, FileDataset

__all__ = ["CSV", "JSON", "YAML", "Excel", "Feather", "Parquet", "Pickle", "Text"]


def _pandas() -> Any:
    try:
        import pandas
    except ImportError as exc:  # pragma: no cover - pandas is in the io extra
        raise DatasetError("this dataset needs pandas: pip install 'plait[io]'") from exc
    return pandas


class CSV(FileDataset):
    """A pandas DataFrame in a CSV file (``pandas.read_csv`` / ``DataFrame.to_csv``)."""

    default_save_args: ClassVar[dict[str, Any]] = {"index": False}

    def read(self, handle: IO[bytes]) -> Any:
        return _pandas().read_csv(handle, **self.load_args)

    def write(self, data: Any, handle: IO[bytes]) -> None:
        options = dict(self.save_args)
        encoding = options.pop("encoding", "utf-8")
        handle.write(data.to_csv(None, **options).encode(encoding))


class Parquet(FileDataset):
    """A pandas DataFrame in a Parquet file (pyarrow)."""

    default_save_args: ClassVar[dict[str, Any]] = {"index": False}

    def read(self, handle: IO[bytes]) -> Any:
        return _pandas().read_parquet(handle, **self.load_args)

    def write(self, data: Any, handle: IO[bytes]) -> None:
        data.to_parquet(handle, **self.save_args)


class Feather(FileDataset):
    """A pandas DataFrame in a Feather (Arrow IPC) file (pyarrow)."""

    def read(self, handle: IO[bytes]) -> Any:
        return _pandas().read_feather(handle, **self.load_args)

    def write(self, data: Any, handle: IO[bytes]) -> None:
        data.to_feather(handle, **self.save_args)


class Excel(FileDataset):
    """A pandas DataFrame in an ``.xlsx`` sheet (openpyxl)."""

    default_save_args: ClassVar[dict[str, Any]] = {"index": False}

    def read(self, handle: IO[bytes]) -> Any:
        data = io.BytesIO(handle.read())  # openpyxl seeks; a remote file may not
        return _pandas().read_excel(data, engine="openpyxl", **self.load_args)

    def write(self, data: Any, handle: IO[bytes]) -> None:
        data.to_excel(handle, engine="openpyxl", **self.save_args)


class JSON(FileDataset):
    """Plain data (dicts, lists, numbers, strings) in a JSON file."""

    default_save_args: ClassVar[dict[str, Any]] = {"indent": 2}

    def read(self, handle: IO[bytes]) -> Any:
        import json

        return json.load(handle, **self.load_args)

    def write(self, data: Any, handle: IO[bytes]) -> None:
        import json

        handle.write(json.dumps(data, **self.save_args).encode())


class YAML(FileDataset):
    """Plain data in a YAML file (pyyaml, safe loading)."""

    default_save_args: ClassVar[dict[str, Any]] = {"sort_keys": False}

    def read(self, handle: IO[bytes]) -> Any:
        return _yaml().safe_load(handle, **self.load_args)

    def write(self, data: Any, handle: IO[bytes]) -> None:
        handle.write(_yaml().safe_dump(data, **self.save_args).encode())


def _yaml() -> Any:
    try:
        import yaml
    except ImportError as exc:  # pragma: no cover - pyyaml is in the io extra
        raise DatasetError("this dataset needs pyyaml: pip install 'plait[io]'") from exc
    return yaml


class Text(FileDataset):
    """A string in a text file (``load_args``/``save_args``: ``encoding``, default utf-8)."""

    def read(self, handle: IO[bytes]) -> str:
        return handle.read().decode(self.load_args.get("encoding", "utf-8"))

    def write(self, data: Any, handle: IO[bytes]) -> None:
        handle.write(str(data).encode(self.save_args.get("encoding", "utf-8")))


class Pickle(FileDataset):
    """Any Python object, pickled (``save_args``: ``protocol``). Load only files you trust:
    unpickling runs code."""

    def read(self, handle: IO[bytes]) -> Any:
        import pickle

        return pickle.load(handle, **self.load_args)

    def write(self, data: Any, handle: IO[bytes]) -> None:
        import pickle

        pickle.dump(data, handle, **self.save_args)
