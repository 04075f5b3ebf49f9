"""Data versions never collide on values that behave differently (issue 11, item 1).

Each test is a finding reproduced on the hashing of before: two different values that got
the same data version, or a value whose hashing raised. ``data_version`` must tell the
values apart, and hash every value below without a ``RecursionError``.
"""

from __future__ import annotations

import collections
import datetime as dt
import warnings
import zoneinfo

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from plait.errors import PlaitError, UnhashableValueError
from plait.store.hashing import data_version
from store_cases import forget_modules, load_module

LONDON = zoneinfo.ZoneInfo("Europe/London")


def _frame_with_columns_name(name):
    frame = pd.DataFrame({"a": [1, 2]})
    frame.columns.name = name
    return frame


def _frame_with_index_names(*names):
    index = pd.MultiIndex.from_tuples([("a", 1), ("b", 2)], names=list(names))
    return pd.DataFrame({"v": [1, 2]}, index=index)


def _arrow_categorical(values):
    return pa.Table.from_pandas(pd.DataFrame({"c": pd.Categorical(values)}))


def _matrix(rows):
    with warnings.catch_warnings():  # np.matrix is pending deprecation, still in use
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        return np.matrix(rows)


_RECORDS = np.zeros(2, dtype=[("a", "<i8"), ("b", "<f8")])

DIFFERENT = {
    "arrow-dictionary": (_arrow_categorical(["a", "b"]), _arrow_categorical(["x", "y"])),
    "arrow-dictionary-array": (
        pa.array(["a", "b"]).dictionary_encode(),
        pa.array(["x", "y"]).dictionary_encode(),
    ),
    "masked-array-mask": (
        np.ma.array([1, 2, 3], mask=[False, True, False]),
        np.ma.array([1, 2, 3], mask=[False, False, False]),
    ),
    "masked-array-vs-ndarray": (np.ma.array([1, 2, 3]), np.array([1, 2, 3])),
    "matrix-vs-ndarray": (_matrix([[1, 2]]), np.array([[1, 2]])),
    "recarray-vs-structured": (_RECORDS.view(np.recarray), _RECORDS),
    "object-none-vs-nan": (
        pd.Series([None, "a"], dtype=object),
        pd.Series([np.nan, "a"], dtype=object),
    ),
    "object-none-vs-na": (
        pd.Series([None, "a"], dtype=object),
        pd.Series([pd.NA, "a"], dtype=object),
    ),
    "object-nan-vs-na": (
        pd.Series([np.nan, "a"], dtype=object),
        pd.Series([pd.NA, "a"], dtype=object),
    ),
    "columns-name": (_frame_with_columns_name(None), _frame_with_columns_name("field")),
    "columns-name-value": (_frame_with_columns_name("x"), _frame_with_columns_name("y")),
    "multiindex-level-names": (
        _frame_with_index_names("k", "n"),
        _frame_with_index_names("k", "m"),
    ),
    "multiindex-columns-names": (
        pd.DataFrame([[1]], columns=pd.MultiIndex.from_tuples([("a", "b")], names=["x", "y"])),
        pd.DataFrame([[1]], columns=pd.MultiIndex.from_tuples([("a", "b")], names=["x", "z"])),
    ),
    "index-name-object": (
        pd.Series([1], index=pd.Index([0], name=1)),
        pd.Series([1], index=pd.Index([0], name="1")),
    ),
    "series-name-type": (pd.Series([1], name=1), pd.Series([1], name="1")),
    "ordered-dict-order": (
        collections.OrderedDict(a=1, b=2),
        collections.OrderedDict(b=2, a=1),
    ),
    "ordered-dict-vs-dict": (collections.OrderedDict(a=1), {"a": 1}),
    "defaultdict-factory": (collections.defaultdict(int), collections.defaultdict(list)),
    "defaultdict-vs-dict": (collections.defaultdict(int, a=1), {"a": 1}),
    "datetime-tzinfo": (
        dt.datetime(2024, 1, 2, 12, tzinfo=dt.UTC),
        dt.datetime(2024, 1, 2, 12, tzinfo=LONDON),  # +00:00 in winter, like UTC
    ),
    "datetime-fold": (
        dt.datetime(2024, 10, 27, 1, 30, fold=0, tzinfo=LONDON),
        dt.datetime(2024, 10, 27, 1, 30, fold=1, tzinfo=LONDON),
    ),
    "naive-datetime-fold": (
        dt.datetime(2024, 10, 27, 1, 30, fold=0),
        dt.datetime(2024, 10, 27, 1, 30, fold=1),
    ),
    "time-tzinfo": (dt.time(12, tzinfo=dt.UTC), dt.time(12, tzinfo=LONDON)),
    "time-fold": (dt.time(1, 30, fold=0), dt.time(1, 30, fold=1)),
    "timezone-name": (
        dt.datetime(2024, 1, 2, tzinfo=dt.timezone(dt.timedelta(hours=1), "CET")),
        dt.datetime(2024, 1, 2, tzinfo=dt.timezone(dt.timedelta(hours=1))),
    ),
    "set-subclass-vs-set": (type("Tags", (set,), {})({1}), {1}),
    "masked-array-fill-value": (
        np.ma.array([1, 2], mask=[True, False], fill_value=0),
        np.ma.array([1, 2], mask=[True, False], fill_value=1),
    ),
    "nullable-int-na-vs-zero": (
        pd.Series([1, pd.NA], dtype="Int64"),
        pd.Series([1, 0], dtype="Int64"),
    ),
    "tz-column-utc-vs-london": (
        pd.Series(pd.to_datetime(["2024-01-02"]).tz_localize("UTC")),
        pd.Series(pd.to_datetime(["2024-01-02"]).tz_localize("Europe/London")),
    ),
    "arrow-pandas-range-index": (
        pa.Table.from_pandas(pd.DataFrame({"a": [1, 2]})),
        pa.Table.from_pandas(pd.DataFrame({"a": [1, 2]}, index=pd.RangeIndex(5, 7))),
    ),
    "datetime-index-freq": (
        pd.Series([1, 2], index=pd.date_range("2024-01-01", periods=2)),
        pd.Series([1, 2], index=pd.DatetimeIndex(["2024-01-01", "2024-01-02"])),
    ),
    "numpy-stringdtype": (
        np.array(["a", "b"], dtype=np.dtypes.StringDType()),
        np.array(["a", "c"], dtype=np.dtypes.StringDType()),
    ),
}


@pytest.mark.parametrize(("left", "right"), list(DIFFERENT.values()), ids=list(DIFFERENT))
def test_values_that_behave_differently_have_different_versions(left, right):
    assert data_version(left) != data_version(right)
    assert data_version(left) == data_version(left)


def test_a_new_function_never_takes_the_version_of_a_dead_one():
    # hashed by repr, a function's version was its memory address: a lambda created after
    # another was freed reuses the address, so a changed function hashed like the old one
    first = data_version(lambda: 1)
    second = data_version(lambda: 2)
    third = data_version(lambda x: x)
    assert len({first, second, third}) == 3


def test_functions_hash_their_closure_and_defaults_by_value():
    def make(offset, scale=1):
        def shift(x, factor=scale):
            return x * factor + offset

        return shift

    assert data_version(make(1)) == data_version(make(1))
    assert data_version(make(1)) != data_version(make(2))
    assert data_version(make(1, scale=1)) != data_version(make(1, scale=3))


def test_an_importable_function_is_hashed_by_its_code_not_its_name(tmp_path):
    # one file, edited: the function keeps its module and name (sources of other sizes, so
    # no stale .pyc is reused within the same second)
    def load(factor):
        module = load_module(tmp_path, "hashing_rates", f"def rate(x):\n    return x * {factor}\n")
        return module.rate

    first, second, again = load(2), load(30), load(2)
    forget_modules("hashing_rates")
    assert data_version(first) != data_version(second)
    assert data_version(first) == data_version(again)


def test_a_function_in_a_step_param_is_hashed_by_value():
    assert data_version({"key": lambda x: x}) != data_version({"key": lambda x: -x})
    assert data_version([len]) != data_version([abs])


# -- values that used to crash ---------------------------------------------------------------


@pytest.mark.parametrize(
    "shape", [(0,), (0, 3), (3, 0), (2, 0, 4)], ids=["0", "0x3", "3x0", "2x0x4"]
)
def test_zero_size_numpy_arrays_hash_by_dtype_and_shape(shape):
    versions = {data_version(np.zeros(shape)), data_version(np.zeros(shape, dtype="<i4"))}
    assert len(versions) == 2
    others = {(0,), (0, 3), (3, 0), (2, 0, 4)} - {shape}
    assert data_version(np.zeros(shape)) not in {data_version(np.zeros(s)) for s in others}


LISTS = pa.list_(pa.int64())


@pytest.mark.parametrize(
    ("left", "same", "right"),
    [
        (
            pa.table({"l": [[1, 2], [3]]}),
            pa.table({"l": pa.array([[0], [1, 2], [3]], LISTS).slice(1)}),
            pa.table({"l": [[1], [2, 3]]}),
        ),
        (
            pa.table({"s": [{"a": 1, "b": "x"}, {"a": 2, "b": None}]}),
            pa.table({"s": [{"a": 1, "b": "x"}, {"a": 2, "b": None}]}),
            pa.table({"s": [{"a": 1, "b": "x"}, None]}),
        ),
        (
            pa.table({"m": pa.array([[("k", 1)]], pa.map_(pa.string(), pa.int64()))}),
            pa.table({"m": pa.array([[("k", 1)]], pa.map_(pa.string(), pa.int64()))}),
            pa.table({"m": pa.array([[("k", 2)]], pa.map_(pa.string(), pa.int64()))}),
        ),
        (
            pd.DataFrame({"l": pd.Series([[1], [2, 3]], dtype=pd.ArrowDtype(LISTS))}),
            pd.DataFrame({"l": pd.Series([[1], [2, 3]], dtype=pd.ArrowDtype(LISTS))}),
            pd.DataFrame({"l": pd.Series([[1, 2], [3]], dtype=pd.ArrowDtype(LISTS))}),
        ),
        (
            pd.Series([{"a": 1}, {"a": 2}], dtype=pd.ArrowDtype(pa.struct([("a", pa.int64())]))),
            pd.Series([{"a": 1}, {"a": 2}], dtype=pd.ArrowDtype(pa.struct([("a", pa.int64())]))),
            pd.Series([{"a": 1}, {"a": 3}], dtype=pd.ArrowDtype(pa.struct([("a", pa.int64())]))),
        ),
        (pa.array([None, None]), pa.array([None, None]), pa.array([None])),
        (pa.array([True, None]), pa.array([True, None]), pa.array([False, None])),
    ],
    ids=["arrow-list", "arrow-struct", "arrow-map", "pandas-list", "pandas-struct", "null", "bool"],
)
def test_nested_arrow_columns_hash_by_content(left, same, right):
    assert data_version(left) == data_version(same)
    assert data_version(left) != data_version(right)


def test_a_self_containing_list_hashes():
    cycle = []
    cycle.append(cycle)
    other = []
    other.append(other)
    assert data_version(cycle) == data_version(other)
    assert data_version(cycle) != data_version([[]])
    assert data_version(cycle) != data_version([cycle, 1])


def test_self_containing_dicts_and_objects_hash():
    class Node:
        def __init__(self, name):
            self.name = name
            self.children = []
            self.parent = None

    def tree(leaf):
        root = Node("root")
        child = Node(leaf)
        child.parent = root
        root.children.append(child)
        return root

    assert data_version(tree("a")) == data_version(tree("a"))
    assert data_version(tree("a")) != data_version(tree("b"))
    loop = {"name": "x"}
    loop["self"] = loop
    assert data_version(loop) != data_version({"name": "x", "self": {}})


def test_a_matplotlib_figure_hashes():
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots()
    axes.plot([1, 2, 3])
    try:
        assert len(data_version(figure)) == 32
    finally:
        pyplot.close(figure)


@pytest.mark.parametrize("kind", [list, tuple, dict], ids=["list", "tuple", "dict"])
def test_deeply_nested_values_hash_without_recursion_error(kind):
    def nest(depth, leaf):
        value = leaf
        for _ in range(depth):
            value = {"k": value} if kind is dict else kind([value])
        return value

    assert data_version(nest(5000, 1)) == data_version(nest(5000, 1))
    assert data_version(nest(5000, 1)) != data_version(nest(5000, 2))
    assert data_version(nest(5000, 1)) != data_version(nest(4999, 1))


# -- no canonical hash and no pickle: a clear error ------------------------------------------


def test_a_value_that_cannot_be_hashed_or_pickled_raises_unhashable_value_error():
    import threading

    lock = threading.Lock()
    with pytest.raises(UnhashableValueError, match=r"cannot hash .*lock.*register_hasher") as info:
        data_version({"handle": [lock]})
    assert info.value.value_type is type(lock)
    assert isinstance(info.value.__cause__, Exception)
    assert isinstance(info.value, PlaitError)
    assert isinstance(info.value, TypeError)


class Endless:
    """Each pickle recipe holds a new Endless: an object graph that never ends."""

    def __reduce__(self):
        return (Endless, (), {"next": Endless()})


def test_an_object_graph_without_end_raises_instead_of_exhausting_memory():
    # Past OBJECT_BUDGET generic objects the value is pickled whole; pickle gives up on
    # the endless recursion, and the walk without a budget stops at MAX_DEPTH: no data
    # version, and no memory exhausted.
    with pytest.raises(UnhashableValueError, match="nested deeper than 100000 levels"):
        data_version(Endless())


class Node:
    def __init__(self, children):
        self.children = children


def test_a_graph_that_shares_its_parts_hashes_in_one_pass():
    # Each level refers twice to the one below: 2**60 paths, 61 objects. Walking every
    # path would never end (a matplotlib Figure is such a graph).
    node = Node([])
    for _ in range(60):
        node = Node([node, node])
    assert len(data_version(node)) == 32
    other = Node([])
    for _ in range(60):
        other = Node([other, other])
    assert data_version(other) == data_version(node)


def test_budget_fallback_never_confuses_different_values():
    def chain(leaf):
        node = Node([leaf])
        for _ in range(2_000):
            node = Node([node])
        return node

    assert data_version(chain(1)) != data_version(chain(2))
    assert data_version(chain(1)) == data_version(chain(1))


def test_a_generator_cannot_be_hashed():
    with pytest.raises(UnhashableValueError, match="generator"):
        data_version(i for i in range(3))
