"""plait.config: conf/base + conf/<env>, interpolation, overrides, [tool.plait], secrets."""

from __future__ import annotations

import pickle
from dataclasses import dataclass

import pytest

from plait import Pipeline, Store, step
from plait.config import (
    ConfigError,
    Secret,
    load_config,
    load_credentials,
    parse_set,
    project_settings,
)


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PLAIT_ENV", raising=False)
    write(
        tmp_path / "conf/base/parameters.yml",
        "model_options:\n  test_size: 0.2\n  seed: 1\n  label: size-${model_options.test_size}\n"
        "home: ${oc.env:PLAIT_TEST_HOME,/nowhere}\n",
    )
    write(tmp_path / "conf/base/tables.yml", "tables: {raw: companies}\n")
    write(tmp_path / "conf/local/parameters.yml", "model_options:\n  seed: 7\n")
    write(tmp_path / "conf/prod/parameters.yml", "model_options:\n  test_size: 0.3\n")
    write(tmp_path / "conf/base/credentials.yml", "db: {user: app, password: hunter2}\n")
    return tmp_path


def test_base_and_the_default_env_are_merged_deeply(project):
    config = load_config()
    assert config["model_options"] == {"test_size": 0.2, "seed": 7, "label": "size-0.2"}
    assert config["tables"] == {"raw": "companies"}
    assert "db" not in config  # credentials are never part of the config


def test_an_env_overrides_base_and_interpolation_sees_it(project):
    config = load_config(env="prod")
    assert config["model_options"] == {"test_size": 0.3, "seed": 1, "label": "size-0.3"}


def test_the_env_comes_from_plait_env_then_pyproject(project, monkeypatch):
    monkeypatch.setenv("PLAIT_ENV", "prod")
    assert load_config()["model_options"]["test_size"] == 0.3
    monkeypatch.delenv("PLAIT_ENV")
    write(project / "pyproject.toml", '[tool.plait]\nenv = "prod"\n')
    assert load_config()["model_options"]["test_size"] == 0.3
    assert load_config(env="local")["model_options"]["test_size"] == 0.2


def test_environment_variables_are_interpolated(project, monkeypatch):
    assert load_config()["home"] == "/nowhere"
    monkeypatch.setenv("PLAIT_TEST_HOME", "/home/me")
    assert load_config()["home"] == "/home/me"


def test_an_unknown_env_is_an_error_with_suggestions(project):
    with pytest.raises(
        ConfigError,
        match=r"no env 'prd' in conf \(did you mean 'prod'\?\): its "
        r"envs are local, prod",
    ):
        load_config(env="prd")


def test_a_missing_conf_folder_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match=r"no conf folder '.*nothing'"):
        load_config(tmp_path / "nothing")


def test_a_key_set_by_two_files_of_one_env_is_an_error(project):
    write(project / "conf/base/more.yml", "tables: {raw: other}\n")
    with pytest.raises(ConfigError, match=r"'tables' is set by both .*more.yml and .*tables.yml"):
        load_config()


def test_a_failed_interpolation_names_the_key(project):
    write(project / "conf/base/broken.yml", "broken: ${model_options.nope}\n")
    with pytest.raises(ConfigError, match=r"interpolation failed: .*nope"):
        load_config()


def test_credentials_are_secrets_shown_masked(project):
    credentials = load_credentials()
    password = credentials["db"]["password"]
    assert isinstance(password, Secret)
    assert password.value == "hunter2"
    assert "hunter2" not in repr(credentials)
    assert str(password) == "***"
    # pickled as where it comes from, never as its value
    data = pickle.dumps(password)
    assert b"hunter2" not in data
    assert pickle.loads(data).value == "hunter2"


def test_secret_keys_are_masked_in_the_history(project):
    write(project / "pyproject.toml", '[tool.plait]\nsecret_keys = ["tables.raw"]\n')
    config = load_config()
    assert isinstance(config["tables"]["raw"], Secret)

    @step(inputs={"table": "config.tables.raw"})
    def read(table: Secret) -> str:
        return table.value.upper()

    store = Store(project / ".plait")
    result = Pipeline([read], config=config).run(store=store)
    assert result["read"] == "COMPANIES"
    record = store.history.run(result.run_id)
    assert b"companies" not in (project / ".plait/history.db").read_bytes()
    assert "companies" not in repr(record.config)


def test_pyproject_settings_and_unknown_keys(tmp_path):
    write(
        tmp_path / "pyproject.toml",
        '[tool.plait]\nstore = "st"\nenv = "prod"\nconf = "settings"\nexecutor = "threads"\n',
    )
    settings = project_settings(tmp_path / "sub")
    assert (settings.store, settings.env, settings.executor) == ("st", "prod", "threads")
    assert settings.conf == str(tmp_path / "settings")
    write(tmp_path / "pyproject.toml", '[tool.plait]\nenvv = "prod"\n')
    with pytest.raises(ConfigError, match=r"unknown key 'envv' \(did you mean 'env'\?\)"):
        project_settings(tmp_path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a.b=0.3", ("a.b", 0.3)),
        ("n=3", ("n", 3)),
        ("flag=true", ("flag", True)),
        ("x=null", ("x", None)),
        ("xs=[1, 2]", ("xs", [1, 2])),
        ("name=some text", ("name", "some text")),
        ("name=", ("name", "")),
        ("quoted='3'", ("quoted", "3")),
    ],
)
def test_set_values_are_typed_by_yaml_scalar_rules(text, expected):
    assert parse_set(text) == expected


def test_a_set_without_equals_is_an_error():
    with pytest.raises(ConfigError, match=r"--set 'a.b' is not KEY=VALUE"):
        parse_set("a.b")


# -- run(config=...) and run(config_overrides=...) -------------------------------------------
@step(inputs={"size": "config.model_options.test_size", "seed": "config.model_options.seed"})
def split(size: float, seed: int) -> tuple[float, int]:
    return size, seed


CONFIG = {"model_options": {"test_size": 0.2, "seed": 1}, "unit": "kg"}


def test_config_overrides_are_a_deep_merge():
    p = Pipeline([split], config=CONFIG)
    assert p.run(config_overrides={"model_options.test_size": 0.3})["split"] == (0.3, 1)
    assert p.config == CONFIG  # the pipeline's own config is not changed


def test_run_config_merges_into_the_pipeline_config():
    p = Pipeline([split], config=CONFIG)
    assert p.run(config={"model_options": {"seed": 5}})["split"] == (0.2, 5)


def test_run_config_and_overrides_together():
    p = Pipeline([split], config=CONFIG)
    result = p.run(
        config={"model_options": {"seed": 5}}, config_overrides={"model_options.test_size": 0.4}
    )
    assert result["split"] == (0.4, 5)


@dataclass(frozen=True)
class Options:
    test_size: float
    seed: int


@dataclass(frozen=True)
class Settings:
    model_options: Options


def test_overrides_reach_into_a_dataclass_config():
    p = Pipeline([split], config=Settings(Options(0.2, 1)))
    assert p.run(config_overrides={"model_options.seed": 9})["split"] == (0.2, 9)
    with pytest.raises(
        ConfigError,
        match=r"config_overrides sets 'sed', which the config Options "
        r"has not \(did you mean 'seed'\?\)",
    ):
        p.run(config_overrides={"model_options.sed": 9})


def test_a_non_mapping_run_config_replaces():
    p = Pipeline([split], config=CONFIG)
    assert p.run(config=Settings(Options(0.5, 2)))["split"] == (0.5, 2)
