"""The metadata plait captures about an asset's value, automatically and cheaply.

Only facts that cost no pass over the data are taken: a frame's shape, columns and
dtypes (pandas, polars, pyarrow), an array's shape and dtype, a container's length, a
model's class and, when it has ``get_params()`` (scikit-learn's convention), its
hyperparameters, and a metrics mapping's values. Every value is made JSON-friendly here
(anything else becomes its ``repr``, cut to 200 characters), so the catalog never
pickles metadata. Nothing here imports pandas, numpy or the like: values are recognised
by their module and attributes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sized
from typing import Any

__all__ = ["MAX_COLUMNS", "automatic", "plain"]

MAX_COLUMNS = 200  # columns listed (with dtypes) for a wide frame; "n_columns" has all
_MAX_REPR = 200


def plain(value: Any, depth: int = 0) -> Any:
    """``value`` as JSON-friendly data (its ``repr`` where it is not).

    >>> plain({"a": (1, 2.5), "b": object}) == {"a": [1, 2.5], "b": "<class 'object'>"}
    True
    """
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if depth < 6 and isinstance(value, Mapping):
        return {str(k): plain(v, depth + 1) for k, v in list(value.items())[:MAX_COLUMNS]}
    if depth < 6 and isinstance(value, list | tuple):
        return [plain(v, depth + 1) for v in value[:MAX_COLUMNS]]
    item = getattr(value, "item", None)  # a numpy scalar
    if callable(item) and type(value).__module__ == "numpy":
        try:
            return plain(item(), depth + 1)
        except Exception:  # not a scalar after all
            pass
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__qualname__}>"
    return text if len(text) <= _MAX_REPR else text[: _MAX_REPR - 1] + "…"


def _type_name(value: Any) -> str:
    kind = type(value)
    return f"{kind.__module__}.{kind.__qualname__}"


def _frame(value: Any) -> dict[str, Any]:
    """Shape, columns and dtypes of a pandas/polars frame or an arrow table."""
    module = type(value).__module__.split(".")[0]
    facts: dict[str, Any] = {}
    shape = getattr(value, "shape", None)
    if isinstance(shape, tuple):
        facts["shape"] = [int(n) for n in shape]
    if module == "pyarrow" and hasattr(value, "schema"):
        names = list(value.schema.names)
        types = [str(t) for t in value.schema.types]
        facts["shape"] = [int(value.num_rows), len(names)]
    elif module in ("pandas", "polars") and hasattr(value, "columns"):
        names = [str(c) for c in value.columns]
        dtypes = value.dtypes
        types = [str(t) for t in (dtypes.tolist() if hasattr(dtypes, "tolist") else dtypes)]
    else:
        dtype = getattr(value, "dtype", None)
        if dtype is not None:
            facts["dtype"] = str(dtype)
        return facts
    facts["n_columns"] = len(names)
    facts["columns"] = names[:MAX_COLUMNS]
    facts["dtypes"] = dict(zip(names[:MAX_COLUMNS], types[:MAX_COLUMNS], strict=False))
    return facts


def _model(value: Any) -> dict[str, Any]:
    facts: dict[str, Any] = {"class": _type_name(value)}
    get_params = getattr(value, "get_params", None)
    if callable(get_params):
        try:
            params = get_params(deep=False)
        except TypeError:
            params = get_params()
        except Exception:
            params = None
        if isinstance(params, Mapping):
            facts["params"] = plain(params)
    return facts


def automatic(kind: str, value: Any) -> dict[str, Any]:
    """The metadata captured for an asset of ``kind`` holding ``value`` (never raises)."""
    try:
        facts: dict[str, Any] = {"type": _type_name(value)}
        module = type(value).__module__.split(".")[0]
        if kind == "model":
            facts.update(_model(value))
        elif kind == "metrics" and isinstance(value, Mapping):
            facts["values"] = plain(value)
        elif module in ("pandas", "polars", "pyarrow", "numpy"):
            facts.update(_frame(value))
        elif isinstance(value, Sized) and not isinstance(value, str | bytes):
            facts["length"] = len(value)
        json.dumps(facts)  # what the catalog will write
        return facts
    except Exception as exc:  # metadata is a courtesy: never fail a step over it
        return {"type": _type_name(value), "metadata_error": f"{type(exc).__name__}: {exc}"}
