"""Assets: Dataset, Model, Metrics returned by steps; plain values for consumers; the
catalog in the history (every backend): find, load, lineage, aliases, gc."""

from __future__ import annotations

import pandas as pd
import pytest

import executor_cases
from plait import Asset, Dataset, Metrics, Model, Pipeline, Store, step
from plait.assets import AssetError
from plait.errors import PlaitError
from store_cases import store_files

executor = executor_cases.executor
process_pool = executor_cases.process_pool


class Forest:
    """A model with scikit-learn's get_params()."""

    __hash__ = None  # type: ignore[assignment]

    def __init__(self, trees: int = 10, depth: int | None = None) -> None:
        self.trees, self.depth = trees, depth

    def get_params(self, deep: bool = True) -> dict[str, object]:
        return {"trees": self.trees, "depth": self.depth}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Forest) and vars(other) == vars(self)


@step
def frame(rows: int) -> Dataset:
    return pd.DataFrame({"size": list(range(rows)), "price": [2.0 * i for i in range(rows)]})


@step
def train(frame: pd.DataFrame, trees: int = 10) -> Model:
    return Model(Forest(trees), name="price-model", tags=("sklearn-like",))


@step
def score(train: Forest, frame: pd.DataFrame) -> Metrics:
    return Metrics({"r2": 0.5 + train.trees / 100, "rows": len(frame)})


def _pipeline(**kw):
    return Pipeline([frame, train, score], name="pricing", **kw)


# -- values ------------------------------------------------------------------------------
def test_consumers_receive_plain_values_and_metrics_become_step_metrics():
    result = _pipeline().run(params={"rows": 4})
    assert isinstance(result["frame"], pd.DataFrame)
    assert result["train"] == Forest(10)
    assert result["score"] == {"r2": 0.6, "rows": 4}
    assert result.steps["score"].metrics == {"r2": 0.6, "rows": 4}


def test_a_consumer_annotated_with_the_asset_type_receives_the_asset():
    seen = {}

    @step
    def inspect_model(train: Model) -> int:
        seen["asset"] = train
        return train.value.trees

    Pipeline([frame, train, inspect_model]).run(params={"rows": 2})
    asset = seen["asset"]
    assert isinstance(asset, Model)
    assert asset.value == Forest(10)
    assert asset.name == "train"
    assert asset.metadata["params"] == {"trees": 10, "depth": None}


def test_an_asset_annotation_never_trips_type_validation():
    @step
    def fit(x: int) -> Model[Forest]:
        return Forest(x)

    @step
    def use(fit: Forest) -> int:
        return fit.trees

    assert Pipeline([fit, use]).run(params={"x": 3})["use"] == 3


def test_the_data_version_is_the_plain_values(tmp_path):
    @step(name="v")
    def wrapped(n: int):
        return Dataset([n, n + 1], name="numbers", metadata={"source": "test"})

    @step(name="v")
    def plain(n: int):
        return [n, n + 1]

    with Store(tmp_path / "a") as a, Store(tmp_path / "b") as b:
        one = Pipeline([wrapped]).run(params={"n": 1}, store=a).steps["v"].data_versions
        two = Pipeline([plain]).run(params={"n": 1}, store=b).steps["v"].data_versions
        assert one == two


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Model(1, name="bad name!"), "asset name 'bad name!' is not valid"),
        (lambda: Model(1, metadata=[1]), "metadata must be a mapping"),
        (lambda: Model(1, tags=("", "x")), "tags must be non-empty strings"),
        (lambda: Model(Dataset(1)), "wrap the plain value once"),
        (lambda: Metrics([0.5]), r"Metrics\(\) takes a mapping"),
    ],
)
def test_bad_assets_are_refused_with_the_fix(build, message):
    with pytest.raises(AssetError, match=message):
        build()


def test_asset_kinds():
    assert (Asset.kind, Dataset.kind, Model.kind, Metrics.kind) == (
        "asset",
        "dataset",
        "model",
        "metrics",
    )
    assert repr(Model(Forest(), name="m")) == "Model(Forest, name='m')"


# -- the catalog -------------------------------------------------------------------------
@pytest.fixture
def store(open_store):
    return open_store()


def test_the_catalog_records_kind_name_version_metadata_run_step(store):
    result = _pipeline(version="1.0").run(params={"rows": 3}, store=store)
    found = {v.name: v for v in store.catalog.find()}
    assert set(found) == {"frame", "price-model", "score"}
    model = found["price-model"]
    assert (model.kind, model.step, model.output, model.run_id) == (
        "model",
        "train",
        "train",
        result.run_id,
    )
    assert model.version == result.steps["train"].data_versions["train"]
    assert model.metadata["class"].endswith("Forest")
    assert model.metadata["params"] == {"trees": 10, "depth": None}
    assert model.tags == ("sklearn-like",)
    assert model.pipeline == "pricing"
    data = found["frame"]
    assert data.kind == "dataset"
    assert data.metadata["shape"] == [3, 2]
    assert data.metadata["columns"] == ["size", "price"]
    assert data.metadata["dtypes"] == {"size": "int64", "price": "float64"}
    assert found["score"].metadata["values"] == {"r2": 0.6, "rows": 3}


def test_find_filters_and_lists_newest_first(store):
    first = _pipeline().run(params={"rows": 3}, store=store)
    second = _pipeline().run(params={"rows": 3, "trees": 20}, store=store)
    models = store.catalog.find(kind="model")
    assert [m.run_id for m in models] == [second.run_id, first.run_id]
    assert [m.run_id for m in store.catalog.find(name="price-model", tags=["sklearn-like"])] == [
        second.run_id,
        first.run_id,
    ]
    assert store.catalog.find(tags=["nope"]) == []
    assert store.catalog.find(pipeline="other") == []
    assert len(store.catalog.find(kind="dataset")) == 1  # equal data: one version
    with pytest.raises(PlaitError, match=r"no asset kind 'modle'.*did you mean 'model'"):
        store.catalog.find(kind="modle")


def test_load_by_latest_data_version_run_id_and_alias(store):
    first = _pipeline().run(params={"rows": 3}, store=store)
    second = _pipeline().run(params={"rows": 3, "trees": 20}, store=store)
    catalog = store.catalog
    assert catalog.load("price-model") == Forest(20)
    old = catalog.find(name="price-model")[-1]
    assert catalog.load("price-model", old.version) == Forest(10)
    assert catalog.load("price-model", old.version[:10]) == Forest(10)
    assert catalog.load("price-model", first.run_id) == Forest(10)
    assert catalog.load("price-model", second.run_id[:-2]) == Forest(20)
    catalog.tag("price-model", first.run_id, "production")
    assert catalog.load("price-model", "production") == Forest(10)
    assert catalog.get("price-model", "production").aliases == ("production",)
    catalog.tag("price-model", "latest", "production")  # moved
    assert catalog.load("price-model", "production") == Forest(20)
    with pytest.raises(KeyError, match="has no version 'staging'"):
        catalog.load("price-model", "staging")
    with pytest.raises(KeyError, match=r"no asset 'price-modle'.*did you mean 'price-model'"):
        catalog.load("price-modle")


def test_load_verifies_the_stored_bytes(store, tmp_path):
    from plait.store.entries import CorruptArtifact

    _pipeline().run(params={"rows": 3}, store=store)
    version = store.catalog.get("price-model").version
    [path] = [p for p in store_files(tmp_path / "store") if p.name.startswith(f"{version}.")]
    path.write_bytes(path.read_bytes()[:-3] + b"xyz")
    with pytest.raises(CorruptArtifact):
        store.catalog.load("price-model")


def test_lineage_of_an_asset_version(store):
    _pipeline().run(params={"rows": 3}, store=store)
    steps = [record.name for record in store.catalog.lineage("score")]
    assert steps[0] == "score"
    assert set(steps) == {"score", "train", "frame"}


def test_gc_never_drops_an_aliased_version(store):
    first = _pipeline().run(params={"rows": 3}, store=store)
    _pipeline().run(params={"rows": 3, "trees": 20}, store=store)
    _pipeline().run(params={"rows": 3, "trees": 30}, store=store)
    store.catalog.tag("price-model", first.run_id, "production")
    removed = store.gc(keep_last=1)
    assert removed["runs"] == 1  # the middle run; the first produced a tagged version
    assert store.catalog.load("price-model", "production") == Forest(10)
    assert store.catalog.load("price-model") == Forest(30)
    store.catalog.untag("price-model", "production")
    assert store.gc(keep_last=1)["runs"] == 1
    with pytest.raises(KeyError, match="has no version"):  # its run and its value are gone
        store.catalog.load("price-model", first.run_id)
    assert len(store.catalog.find(name="price-model")) == 1


def test_assets_come_back_from_every_executor(tmp_path, executor):
    with Store(tmp_path / "s") as store:
        _pipeline().run(params={"rows": 3}, store=store, executor=executor)
        assert {v.name for v in store.catalog.find()} == {"frame", "price-model", "score"}
        assert store.catalog.load("price-model") == Forest(10)


def test_a_cache_hit_records_no_new_version(store):
    first = _pipeline().run(params={"rows": 3}, store=store)
    again = _pipeline().run(params={"rows": 3}, store=store)
    assert all(s.cached for s in again.steps.values())
    [only] = store.catalog.find(name="price-model")
    assert only.run_id == first.run_id
    assert store.catalog.get("price-model", again.run_id) == only  # the version it reused


# -- the migration from schema 5 ---------------------------------------------------------
def _downgrade_to_5(store):
    """Make the store's history what the release with schema 5 wrote (no catalog)."""
    db = store.history.db
    for index in ("assets_by_time", "assets_by_name", "assets_by_run", "asset_aliases_by_name"):
        db.execute(f"DROP INDEX IF EXISTS {index}")
    db.execute("DROP TABLE asset_aliases")
    db.execute("DROP TABLE assets")
    db.execute("UPDATE meta SET value = '5' WHERE key = 'schema_version'")
    store.history.close()


def test_a_schema_5_database_migrates_and_gets_a_catalog(open_store):
    from plait.history.db import SCHEMA_VERSION

    assert SCHEMA_VERSION >= 6
    store = open_store()
    old = _pipeline(version="0.9").run(params={"rows": 2}, store=store).run_id
    _downgrade_to_5(store)
    again = open_store()
    record = again.history.run(old)
    assert record.version == "0.9"
    assert record.params["rows"] == 2
    assert again.catalog.find() == []  # nothing was catalogued before the catalog
    rows = again.history.db.execute("SELECT value FROM meta WHERE key = 'schema_version'")
    assert rows == [(str(SCHEMA_VERSION),)]
    new = _pipeline().run(params={"rows": 5}, store=again)
    assert [v.run_id for v in again.catalog.find(kind="model")] == [new.run_id]
    again.catalog.tag("price-model", "latest", "production")
    assert again.catalog.load("price-model", "production") == Forest(10)


def test_recovering_a_history_keeps_its_catalog(tmp_path):
    from plait.history.recover import recover

    with Store(tmp_path / "s") as store:
        first = _pipeline().run(params={"rows": 3}, store=store)
        store.catalog.tag("price-model", first.run_id, "production")
    done = recover(tmp_path / "s" / "history.db")
    assert done.copied["assets"] == 3
    assert done.copied["asset_aliases"] == 1
    assert done.lost["assets"] == 0
    with Store(tmp_path / "s") as store:
        assert store.catalog.load("price-model", "production") == Forest(10)


def test_several_outputs_annotated_as_assets_and_map_elements():
    import numpy as np

    @step(outputs=["weights", "report"])
    def fit(n: int) -> tuple[Model, Metrics]:
        return np.ones(n), {"loss": 0.25}

    @step(map="items")
    def per_item(items: list[int]):
        return Dataset([items] * 2)

    @step
    def check(weights, report, per_item) -> tuple:
        return type(weights), type(report), per_item

    result = Pipeline([fit, per_item, check]).run(params={"n": 3, "items": [1, 2]})
    assert result["check"] == (np.ndarray, dict, [[1, 1], [2, 2]])
    assert result.steps["fit"].metrics == {"loss": 0.25}


def test_metadata_of_arrays_and_frames():
    import numpy as np
    import pyarrow as pa

    from plait.assets._metadata import automatic

    array = automatic("dataset", np.zeros((2, 3), dtype="float32"))
    assert (array["shape"], array["dtype"]) == ([2, 3], "float32")
    series = automatic("dataset", pd.Series([1, 2], name="a"))
    assert (series["shape"], series["dtype"]) == ([2], "int64")
    frame = automatic("dataset", pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}))
    assert (frame["shape"], frame["n_columns"], frame["columns"]) == ([2, 2], 2, ["a", "b"])
    arrow = automatic("dataset", pa.table({"a": [1.0]}))
    assert (arrow["shape"], arrow["columns"], arrow["dtypes"]) == ([1, 1], ["a"], {"a": "double"})
    assert automatic("dataset", [1, 2, 3])["length"] == 3
    assert automatic("metrics", {"r2": float("nan")})["values"] == {"r2": "nan"}
