"""Credentials for datasets: a catalog entry's ``credentials: NAME`` comes from the conf
folder's ``credentials*.yml`` and is never written to the store or a report."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from plait.config import Secret
from plait.io import CSV, DatasetError, load_catalog

KEY, SECRET = "AKIA-PLAIT-TEST-7731", "very-secret-value-99812"

KEDROISH = textwrap.dedent(
    """
    import json


    class Reading:
        \"\"\"A Kedro-style dataset that takes its credentials as a mapping.\"\"\"

        def __init__(self, filepath, credentials=None):
            self._filepath = filepath
            self.credentials = credentials

        def load(self):
            assert self.credentials["key"] == "AKIA-PLAIT-TEST-7731"
            with open(self._filepath) as handle:
                return json.load(handle)

        def save(self, data):
            with open(self._filepath, "w") as handle:
                json.dump(data, handle)

        def __repr__(self):
            return f"Reading({self._filepath!r})"
    """
)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "conf" / "base").mkdir(parents=True)
    (tmp_path / "conf" / "local").mkdir()
    (tmp_path / "conf" / "base" / "parameters.yml").write_text("unit: people\n")
    (tmp_path / "conf" / "local" / "credentials.yml").write_text(
        f"warehouse:\n  key: {KEY}\n  secret: {SECRET}\n"
    )
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "companies.csv").write_text("employees\n3\n4\n")
    (tmp_path / "data" / "targets.json").write_text('{"goal": 10}')
    (tmp_path / "kedroish.py").write_text(KEDROISH)
    (tmp_path / "catalog.yml").write_text(
        "companies: {type: CSV, path: data/companies.csv, credentials: warehouse}\n"
        "targets: {type: 'kedroish:Reading', filepath: data/targets.json, "
        "credentials: warehouse}\n"
        "headcount: {type: JSON, path: data/headcount.json, credentials: warehouse}\n"
    )
    (tmp_path / "steps.py").write_text(
        "def headcount(companies, targets):\n"
        "    return {'count': int(companies['employees'].sum()), **targets}\n"
    )
    (tmp_path / "pipe.yaml").write_text(
        "name: people\ndatasets: catalog.yml\nimports: [steps, kedroish]\n"
        "steps:\n  - call: steps:headcount\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_a_file_datasets_credentials_are_its_storage_options_kept_secret(project):
    datasets = load_catalog("catalog.yml", allow_imports=("kedroish",))
    companies = datasets["companies"]
    assert isinstance(companies, CSV)
    assert isinstance(companies.storage_options["key"], Secret)
    assert companies.storage_options["key"].value == KEY
    assert KEY not in repr(companies)
    assert KEY not in repr(companies.describe())
    assert companies.load()["employees"].sum() == 7  # the filesystem gets the values
    assert datasets["targets"].credentials == {"key": KEY, "secret": SECRET}


def test_credentials_given_as_a_mapping(project):
    given = {"warehouse": {"key": "k", "secret": "s"}}
    datasets = load_catalog("catalog.yml", allow_imports=("kedroish",), credentials=given)
    assert datasets["targets"].credentials == {"key": "k", "secret": "s"}


def test_unknown_credentials_are_an_error_with_a_suggestion(project):
    (project / "catalog.yml").write_text(
        "companies: {type: CSV, path: data/companies.csv, credentials: warehose}\n"
    )
    with pytest.raises(DatasetError, match=r"credentials 'warehose'.*did you mean 'warehouse'"):
        load_catalog("catalog.yml")


def test_the_secret_is_written_nowhere_by_a_run(project):
    env = {k: v for k, v in os.environ.items() if k not in ("PLAIT_STORE", "PLAIT_SECRET")}

    def plait(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "plait", *args],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    ran = plait("run", "pipe.yaml", "--store", ".plait", "--report", "report.html", "--json")
    assert ran.returncode == 0, ran.stderr
    assert '"goal": 10' in (project / "data" / "headcount.json").read_text()
    run_id = plait("runs", "list", "--store", ".plait").stdout.splitlines()[1].split()[0]
    shown = plait("runs", "show", run_id, "--store", ".plait", "--html", "show.html")
    assert shown.returncode == 0, shown.stderr
    listed = plait("datasets", "list", "pipe.yaml")
    for output in (ran.stdout, ran.stderr, shown.stdout, listed.stdout, listed.stderr):
        assert KEY not in output
        assert SECRET not in output
    written = [*(project / ".plait").rglob("*"), project / "report.html", project / "show.html"]
    for path in written:
        if path.is_file():
            data = path.read_bytes()
            assert KEY.encode() not in data, path
            assert SECRET.encode() not in data, path


def test_a_yaml_pipeline_reads_the_credentials_of_its_env(project):
    from plait import load_pipeline

    (project / "conf" / "prod").mkdir()
    (project / "conf" / "prod" / "credentials.yml").write_text(
        "warehouse: {key: prod-key, secret: prod-secret}\n"
    )
    local = load_pipeline("pipe.yaml")
    prod = load_pipeline("pipe.yaml", env="prod")
    assert local.datasets["companies"].storage_options["key"].value == KEY
    assert prod.datasets["companies"].storage_options["key"].value == "prod-key"
    assert prod.datasets["targets"].credentials["secret"] == "prod-secret"
