"""Property tests of data versions: *equal hash ⇔ same value*, across value families.

"Same value" is stricter than ``==``, because values that compare equal may still behave
differently: ``1 == True == 1.0`` but they print, divide and serialise differently, so the
data version tags the exact type. :func:`same` is the oracle: same exact type, and

- floats (and complex) bit for bit by ``float.hex`` (``0.0`` and ``-0.0`` differ, every
  NaN is the same NaN), other scalars by ``==``;
- lists and tuples item by item; dicts and sets as unordered collections (keys are strings,
  set elements ints and strings, where ``==`` is exact); ``OrderedDict`` in order;
  ``defaultdict`` with the same ``default_factory``;
- datetimes by wall time, ``fold`` and the tzinfo itself (a zone name, or a fixed offset
  with its name; ``timezone(timedelta(0))`` *is* ``UTC``);
- numpy arrays by exact type, dtype, shape and bytes (masked arrays: data, mask, fill
  value); pandas objects by type, names, index, dtypes and their values item by item.

Then :func:`data_version` must give two values the same version exactly when they are the
same value — no collision, and no spurious difference.
"""

from __future__ import annotations

import collections
import copy
import datetime as dt
import math
import zoneinfo

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as npst

from plait.store.hashing import data_version

LONDON = zoneinfo.ZoneInfo("Europe/London")
ZONES = [None, dt.UTC, dt.timezone(dt.timedelta(0)), dt.timezone(dt.timedelta(hours=1)), LONDON]
NAN = float("nan")


# -- the oracle -----------------------------------------------------------------------------


def same(a, b) -> bool:
    """True when ``a`` and ``b`` are the same value (see the module docstring)."""
    if type(a) is not type(b):
        return False
    if a is b:
        return True
    if isinstance(a, float):
        return a.hex() == b.hex()
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, collections.OrderedDict):
        return same(list(a.items()), list(b.items()))
    if isinstance(a, dict):
        if isinstance(a, collections.defaultdict) and a.default_factory is not b.default_factory:
            return False
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, dt.datetime):
        return (
            a.replace(tzinfo=None) == b.replace(tzinfo=None)
            and a.fold == b.fold
            and _zone_key(a.tzinfo) == _zone_key(b.tzinfo)
        )
    if isinstance(a, np.ma.MaskedArray):
        return (
            same(a.data, b.data)
            and same(np.ma.getmaskarray(a), np.ma.getmaskarray(b))
            and same(a.fill_value.item(), b.fill_value.item())
        )
    if isinstance(a, np.ndarray):
        return a.dtype.str == b.dtype.str and a.shape == b.shape and a.tobytes() == b.tobytes()
    if isinstance(a, pd.Series):
        return same(a.name, b.name) and _same_index(a.index, b.index) and _same_values(a, b)
    if isinstance(a, pd.DataFrame):
        return (
            _same_index(a.columns, b.columns)
            and _same_index(a.index, b.index)
            and all(_same_values(a.iloc[:, i], b.iloc[:, i]) for i in range(a.shape[1]))
        )
    return bool(a == b)


def _zone_key(zone):
    if isinstance(zone, dt.timezone):
        return ("fixed", zone.utcoffset(None), zone.tzname(None))
    return ("zone", getattr(zone, "key", None))


def _same_index(a, b) -> bool:
    return (
        type(a) is type(b)
        and same(list(a.names), list(b.names))
        and str(a.dtype) == str(b.dtype)
        and same(a.tolist(), b.tolist())
    )


def _same_values(a, b) -> bool:
    return str(a.dtype) == str(b.dtype) and same(a.tolist(), b.tolist())


# -- strategies -----------------------------------------------------------------------------

# small alphabets, so that independent draws are often the same value
FLOATS = st.sampled_from([0.0, -0.0, 1.0, 1.5, NAN, math.inf])
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-1, 2),
    FLOATS,
    st.text(alphabet="ab", max_size=2),
    st.binary(max_size=1),
)
KEYS = st.text(alphabet="ab", max_size=2)
SET_ITEMS = st.integers(0, 2) | st.text(alphabet="ab", max_size=1)

DATETIMES = st.builds(
    dt.datetime,
    st.just(2024),
    st.sampled_from([1, 10]),  # winter (London is +00:00, like UTC) and late October
    st.just(27),
    st.sampled_from([1, 12]),  # 01:xx on 2024-10-27 happens twice in London
    st.just(30),
    tzinfo=st.sampled_from(ZONES),
    fold=st.integers(0, 1),
)

ARRAYS = npst.arrays(
    dtype=st.sampled_from([np.dtype("<i4"), np.dtype("<i8"), np.dtype("<f8"), np.dtype("?")]),
    shape=npst.array_shapes(min_dims=1, max_dims=2, min_side=0, max_side=2),
    elements=st.integers(0, 1),
)


@st.composite
def masked_arrays(draw):
    data = draw(ARRAYS)
    mask = draw(npst.arrays(np.dtype("?"), data.shape, elements=st.booleans()))
    return np.ma.array(data, mask=mask)


COLUMN_KINDS = {
    "int64": st.integers(0, 1),
    "float64": st.sampled_from([0.0, 1.0, NAN]),
    "Int64": st.sampled_from([0, 1, pd.NA]),
    "str": st.sampled_from(["a", "b", None]),
    "object": st.sampled_from([None, NAN, pd.NA, "a", 1, 1.0, True]),
}
NAMES = st.sampled_from([None, "n", 1, "1"])


@st.composite
def columns(draw, length):
    kind = draw(st.sampled_from(sorted(COLUMN_KINDS)))
    values = draw(st.lists(COLUMN_KINDS[kind], min_size=length, max_size=length))
    return pd.array(values, dtype=kind) if kind != "object" else np.array(values, dtype=object)


@st.composite
def indexes(draw, length):
    if draw(st.booleans()):
        return pd.RangeIndex(length, name=draw(NAMES))
    return pd.Index(draw(st.lists(st.integers(0, 1), min_size=length, max_size=length)))


@st.composite
def series(draw):
    length = draw(st.integers(0, 2))
    index = draw(indexes(length))
    index.name = draw(NAMES)
    return pd.Series(draw(columns(length)), index=index, name=draw(NAMES))


@st.composite
def frames(draw):
    length = draw(st.integers(0, 2))
    labels = draw(st.lists(st.sampled_from(["a", "b", 1]), max_size=2, unique=True))
    frame = pd.DataFrame(
        {label: draw(columns(length)) for label in labels}, index=draw(indexes(length))
    )
    frame.columns.name = draw(NAMES)
    frame.index.name = draw(NAMES)
    return frame


def containers(children):
    return st.one_of(
        st.lists(children, max_size=3),
        st.lists(children, max_size=3).map(tuple),
        st.dictionaries(KEYS, children, max_size=2),
        st.lists(st.tuples(KEYS, children), max_size=3).map(collections.OrderedDict),
        st.builds(
            collections.defaultdict,
            st.sampled_from([None, int, list]),
            st.dictionaries(KEYS, children, max_size=2),
        ),
        st.sets(SET_ITEMS, max_size=3),
        st.frozensets(SET_ITEMS, max_size=3),
    )


FAMILIES = [SCALARS, DATETIMES, ARRAYS, masked_arrays(), series(), frames()]
LEAVES = st.one_of(FAMILIES)
VALUES = st.recursive(LEAVES, containers, max_leaves=6)
PAIRS = st.one_of(
    VALUES.map(lambda value: (value, copy.deepcopy(value))),
    # two independent draws of one family: often the same value, often nearly
    st.one_of([st.tuples(family, family) for family in FAMILIES]),
    st.one_of([st.tuples(family, family) for family in (containers(SCALARS), VALUES)]),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(PAIRS)
def test_equal_data_version_if_and_only_if_same_value(pair):
    left, right = pair
    assert (data_version(left) == data_version(right)) == same(left, right)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(VALUES)
def test_data_version_is_a_function_of_the_value(value):
    assert data_version(value) == data_version(copy.deepcopy(value))


# -- pinned encodings of the value families of issue 11 --------------------------------------
# A change to any of these invalidates every user's cache: it must be deliberate.


def _pinned_values():
    frame = pd.DataFrame({"a": [1, 2], "o": pd.Series(["x", None], dtype=object)})
    frame.columns.name = "fields"
    cycle = [1]
    cycle.append(cycle)
    return {
        "ordered_dict": collections.OrderedDict([("b", 1), ("a", 2)]),
        "defaultdict_list": collections.defaultdict(list, {"k": [1]}),
        "datetime_london_fold": dt.datetime(2024, 10, 27, 1, 30, fold=1, tzinfo=LONDON),
        "time_utc": dt.time(12, 30, tzinfo=dt.UTC),
        "masked_array": np.ma.array(np.array([1, 2, 3], "<i8"), mask=[False, True, False]),
        "zero_size": np.zeros((0, 3), "<f8"),
        "recarray": np.zeros(2, dtype=[("a", "<i8")]).view(np.recarray),
        "frame_named_columns": frame,
        "cycle": cycle,
        "nested_deep": _nest(100),
    }


def _nest(depth):
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


PINNED = {
    "ordered_dict": "2566d73a2d46dea212e2fddb8c4282b1",
    "defaultdict_list": "a9ea2a12cea085d3831ce498e43f21da",
    "datetime_london_fold": "2e618af3ebe2f0aa373f4d5e7a08244f",
    "time_utc": "21fdb2bd53064d4e09beefc6ad871b0c",
    "masked_array": "2a5bd86827123e319e83603292c01916",
    "zero_size": "8ef3b1ff21ced915d48ff8b44b0e46f5",
    "recarray": "21e913e9b25ef96642740277cb91664a",
    "frame_named_columns": "cd4841fadccdd26c57a47f55cdf16491",  # issue 16: string end offsets
    "cycle": "85e14cfa0feabc346bb71025cb8fb86a",
    "nested_deep": "c16ae16e9c9b0c75239dd8303ee2ca37",
}


@pytest.mark.parametrize("name", list(PINNED))
def test_pinned_hashes_of_new_families(name):
    assert data_version(_pinned_values()[name]) == PINNED[name]


def test_pinned_hashes_of_new_families_are_distinct():
    assert len(set(PINNED.values())) == len(PINNED)
