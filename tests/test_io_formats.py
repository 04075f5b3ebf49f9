"""Every dataset format round-trips its data, with load and save arguments, on a real
local disk, in ``memory://`` and (CSV) on S3 through a local moto server."""

from __future__ import annotations

import os

import pandas as pd
import pytest

from plait.io import (
    CSV,
    JSON,
    YAML,
    Dataset,
    DatasetError,
    Excel,
    Feather,
    Parquet,
    Pickle,
    Text,
    dataset_from_config,
    load_catalog,
)

FRAME = pd.DataFrame({"id": [1, 2, 3], "name": ["a", "b", "c"], "price": [1.5, 2.0, None]})


@pytest.mark.parametrize(
    ("cls", "suffix"),
    [(CSV, "csv"), (Parquet, "parquet"), (Feather, "feather"), (Excel, "xlsx")],
)
def test_a_table_round_trips(tmp_path, cls, suffix):
    dataset = cls(tmp_path / f"sub/table.{suffix}")
    assert not dataset.exists()
    dataset.save(FRAME)
    assert dataset.exists()
    pd.testing.assert_frame_equal(dataset.load(), FRAME)


def test_csv_load_and_save_args(tmp_path):
    path = tmp_path / "t.csv"
    CSV(path, save_args={"sep": ";"}).save(FRAME)
    assert path.read_text().splitlines()[0] == "id;name;price"
    loaded = CSV(path, load_args={"sep": ";", "usecols": ["id", "name"]}).load()
    assert list(loaded.columns) == ["id", "name"]


def test_parquet_load_args_pick_columns(tmp_path):
    dataset = Parquet(tmp_path / "t.parquet", load_args={"columns": ["price"]})
    dataset.save(FRAME)
    assert list(dataset.load().columns) == ["price"]


def test_feather_and_excel_args(tmp_path):
    feather = Feather(tmp_path / "t.feather", load_args={"columns": ["name"]})
    feather.save(FRAME)
    assert list(feather.load().columns) == ["name"]
    excel = Excel(
        tmp_path / "t.xlsx", save_args={"sheet_name": "prices"}, load_args={"sheet_name": "prices"}
    )
    excel.save(FRAME)
    pd.testing.assert_frame_equal(excel.load(), FRAME)


def test_plain_data_formats_round_trip(tmp_path):
    data = {"rate": 0.2, "names": ["a", "b"], "nested": {"x": None}}
    json_set = JSON(tmp_path / "d.json", save_args={"indent": None, "sort_keys": True})
    json_set.save(data)
    assert (tmp_path / "d.json").read_text() == (
        '{"names": ["a", "b"], "nested": {"x": null}, "rate": 0.2}'
    )
    assert json_set.load() == data
    yaml_set = YAML(tmp_path / "d.yml")
    yaml_set.save(data)
    assert yaml_set.load() == data
    latin = {"encoding": "latin-1"}
    text = Text(tmp_path / "t.txt", save_args=latin, load_args=latin)
    text.save("café")
    assert (tmp_path / "t.txt").read_bytes() == "café".encode("latin-1")
    assert text.load() == "café"
    pickled = Pickle(tmp_path / "o.pkl", save_args={"protocol": 4})
    pickled.save({"frame": FRAME, "t": (1, 2)})
    loaded = pickled.load()
    assert loaded["t"] == (1, 2)
    pd.testing.assert_frame_equal(loaded["frame"], FRAME)


def test_memory_filesystem(tmp_path):
    dataset = JSON("memory://plait-test/io/d.json")
    dataset.save([1, 2])
    assert dataset.load() == [1, 2]
    assert dataset.load_path() == "memory://plait-test/io/d.json"


def test_a_versioned_dataset_keeps_every_save_and_loads_the_latest(tmp_path):
    dataset = JSON(tmp_path / "model.json", versioned=True)
    with pytest.raises(DatasetError, match="no version saved under"):
        dataset.load()
    first = dataset.save({"v": 1}, version="0000000000010000aaaa")
    second = dataset.save({"v": 2}, version="0000000000020000bbbb")
    assert first == str(tmp_path / "model.json" / "0000000000010000aaaa" / "model.json")
    assert dataset.versions() == ["0000000000010000aaaa", "0000000000020000bbbb"]
    assert dataset.load() == {"v": 2}
    assert dataset.load_path() == second
    third = dataset.save({"v": 3})  # outside a run: a new time-sortable version
    assert dataset.load_path() == third
    assert dataset.load() == {"v": 3}


def test_a_missing_file_says_which(tmp_path):
    with pytest.raises(DatasetError, match=r"CSV\('.*nope\.csv'\): '.*nope\.csv' does not exist"):
        CSV(tmp_path / "nope.csv").load()


def test_saving_leaves_no_temporary_file(tmp_path):
    CSV(tmp_path / "t.csv").save(FRAME)
    assert os.listdir(tmp_path) == ["t.csv"]


def test_plait_datasets_follow_the_protocol(tmp_path):
    assert isinstance(CSV(tmp_path / "t.csv"), Dataset)


# -- from plain data ------------------------------------------------------------------


def test_dataset_from_config_builds_each_type(tmp_path):
    built = dataset_from_config(
        "companies",
        {"type": "CSV", "path": str(tmp_path / "c.csv"), "load_args": {"sep": ";"}},
    )
    assert built == CSV(tmp_path / "c.csv", load_args={"sep": ";"})
    kedro_spelling = dataset_from_config(
        "m", {"type": "pandas.ParquetDataset", "filepath": "m.parquet"}
    )
    assert kedro_spelling == Parquet("m.parquet")


def test_dataset_from_config_messages():
    with pytest.raises(DatasetError, match=r"'c': unknown type 'CVS' \(did you mean 'CSV'\?\)"):
        dataset_from_config("c", {"type": "CVS", "path": "x"})
    with pytest.raises(DatasetError, match=r"dataset 'c': no 'type'"):
        dataset_from_config("c", {"path": "x"})
    with pytest.raises(
        DatasetError,
        match=r"'c': CSV does not take 'load_arg'; 'load_arg' \(did you mean 'load_args'\?\)",
    ):
        dataset_from_config("c", {"type": "CSV", "path": "x", "load_arg": {}})


def test_an_import_needs_an_explicit_permission():
    entry = {"type": "collections:OrderedDict"}
    with pytest.raises(
        DatasetError,
        match=r"type 'collections:OrderedDict' would import module 'collections', which is "
        r"not allowed; allow it with allow_imports=\('collections\.',\)",
    ):
        dataset_from_config("x", entry)
    with pytest.raises(DatasetError, match="not allowed"):
        dataset_from_config("x", entry, allow_imports=("collectionsx.",))
    assert type(dataset_from_config("x", entry, allow_imports=("collections",))).__name__ == (
        "OrderedDict"
    )


def test_load_catalog_reads_yaml(tmp_path):
    catalog = tmp_path / "catalog.yml"
    catalog.write_text(
        "_csv: &csv\n  type: CSV\n  load_args: {sep: ','}\n"
        "companies:\n  <<: *csv\n  path: data/companies.csv\n"
        "report:\n  type: Text\n  path: data/report.md\n"
    )
    datasets = load_catalog(catalog)
    assert list(datasets) == ["companies", "report"]
    assert datasets["companies"] == CSV("data/companies.csv", load_args={"sep": ","})
    rooted = load_catalog(catalog, root=tmp_path / "project")
    assert rooted["report"] == Text(str(tmp_path / "project" / "data" / "report.md"))
    catalog.write_text("a:\n  type: Nope\nb:\n  type: CSV\n")
    both = r"dataset 'a': unknown type 'Nope'.*; dataset 'b': CSV\(\.\.\.\) failed"
    with pytest.raises(DatasetError, match=both):
        load_catalog(catalog)


# -- S3 on a local moto server ------------------------------------------------------


@pytest.fixture
def bucket(s3_bucket):
    return s3_bucket


def s3_options(endpoint):
    return {
        "key": "testing",
        "secret": "testing",
        "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"},
        "skip_instance_cache": True,
    }


def test_csv_on_s3(endpoint, bucket):
    client, name = bucket
    dataset = CSV(f"s3://{name}/raw/t.csv", storage_options=s3_options(endpoint), versioned=True)
    written = dataset.save(FRAME, version="0000000000010000aaaa")
    assert written == f"s3://{name}/raw/t.csv/0000000000010000aaaa/t.csv"
    body = client.get_object(Bucket=name, Key="raw/t.csv/0000000000010000aaaa/t.csv")["Body"]
    assert body.read().decode().startswith("id,name,price")
    pd.testing.assert_frame_equal(dataset.load(), FRAME)
    assert dataset.exists()
