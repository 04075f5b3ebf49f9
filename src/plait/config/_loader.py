"""Reading a project's configuration: ``conf/base`` + ``conf/<env>``, interpolated.

Layout (Kedro's)::

    conf/base/*.yml          shared settings, committed
    conf/local/*.yml         this machine's (the default env), usually not committed
    conf/<env>/*.yml         another environment's, merged over base (--env prod)
    conf/*/credentials*.yml  secrets: never part of the config, see load_credentials

Design note: every file of an env is read, and a top-level key set by two files of the same
env is an error (which one would win is not obvious); an env's files are then deep-merged
over base's. Interpolation (``${model.seed}``, ``${oc.env:HOME}``) is OmegaConf's and runs
once over the merged result, so an env's value is what base's references see. OmegaConf is
imported only when a value holds ``${``; plain configs need no optional dependency.

Secrets: credentials files are read only by :func:`load_credentials`; config keys listed in
``[tool.plait] secret_keys`` become :class:`Secret` values. A ``Secret`` shows as ``***``
(in the history, reports, logs) and pickles as *where it comes from*, not its value: a
worker, a resume or a cache key re-reads it, so the value is never written to the store.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from plait.config._merge import ConfigError, deep_merge
from plait.config._project import project_settings

__all__ = [
    "Secret",
    "load_config",
    "load_credentials",
    "read_config_file",
    "resolve",
    "resolve_env",
]

_SUFFIXES = (".yml", ".yaml", ".json", ".toml")
DEFAULT_ENV = "local"


class Secret:
    """A value kept out of the history and reports: shown as ``***``.

    A step reading a secret key receives the ``Secret``; ``.value`` is the value.
    """

    __slots__ = ("_value", "key", "source")

    def __init__(self, value: Any, key: str, source: tuple[str, str, bool] | None = None) -> None:
        self._value = value
        self.key = key
        self.source = source  # (conf dir, env, credentials?) to read it again

    @property
    def value(self) -> Any:
        """The secret value."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self.key!r}, '***')"

    def __str__(self) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and (self.key, self._value) == (other.key, other._value)

    def __hash__(self) -> int:
        return hash(self.key)

    def __reduce__(self) -> tuple[Any, ...]:
        if self.source is None:
            raise TypeError(f"secret {self.key!r} has no source to read it again from")
        return (_reload, (self.key, *self.source))


def _reload(key: str, conf_dir: str, env: str, credentials: bool) -> Secret:
    values = _cached(conf_dir, env, credentials)
    found: Any = values
    for part in key.split("."):
        found = found[part]
    if not isinstance(found, Secret):
        raise ConfigError(f"{key!r} in {conf_dir} ({env}) is no longer a secret")
    return found


@functools.lru_cache(maxsize=8)
def _cached(conf_dir: str, env: str, credentials: bool) -> dict[str, Any]:
    if credentials:
        return load_credentials(conf_dir, env)
    return load_config(conf_dir, env)


def resolve_env(env: str | None) -> str:
    """The env: ``env``, else ``PLAIT_ENV``, else ``[tool.plait] env``, else ``"local"``."""
    return env or os.environ.get("PLAIT_ENV") or project_settings().env or DEFAULT_ENV


def _conf_dir(conf_dir: str | Path | None) -> Path:
    if conf_dir is not None:
        return Path(conf_dir)
    settings = project_settings()
    return Path(settings.conf) if settings.conf else Path("conf")


def load_config(conf_dir: str | Path | None = None, env: str | None = None) -> dict[str, Any]:
    """The config of ``conf_dir``: ``base/*.yml`` with ``<env>/*.yml`` merged over it.

    Args:
        conf_dir: The conf folder (default: ``[tool.plait] conf``, else ``"conf"``).
        env: The env folder merged over base (default: ``PLAIT_ENV``, ``[tool.plait] env``,
            else ``"local"``; a missing ``local`` folder is fine, another missing env not).

    Returns:
        A plain dict, interpolated; keys in ``[tool.plait] secret_keys`` are Secrets.

    Raises:
        ConfigError: For a missing folder or env, an unreadable file, a key set by two
            files of one env, or an interpolation that fails.
    """
    root, chosen = _root_and_env(conf_dir, env)
    merged: dict[str, Any] = {}
    for folder in ("base", chosen):
        files = [f for f in _files(root / folder) if not f.name.startswith("credentials")]
        merged = deep_merge(merged, _merge_env(files), what=f"conf/{folder}")
    values = resolve(merged, where=str(root))
    secret_keys = project_settings(root).secret_keys
    return _mask(values, secret_keys, (str(root.resolve()), chosen, False))


def load_credentials(conf_dir: str | Path | None = None, env: str | None = None) -> dict[str, Any]:
    """The ``credentials*.yml`` files of base and the env, merged; every value a Secret.

    Raises:
        ConfigError: As :func:`load_config`.
    """
    root, chosen = _root_and_env(conf_dir, env)
    merged: dict[str, Any] = {}
    for folder in ("base", chosen):
        files = [f for f in _files(root / folder) if f.name.startswith("credentials")]
        merged = deep_merge(merged, _merge_env(files), what=f"conf/{folder}")
    values = resolve(merged, where=str(root))
    source = (str(root.resolve()), chosen, True)
    return {str(k): _secret_leaves(v, str(k), source) for k, v in values.items()}


def _root_and_env(conf_dir: str | Path | None, env: str | None) -> tuple[Path, str]:
    root = _conf_dir(conf_dir)
    if not root.is_dir():
        raise ConfigError(
            f"no conf folder {str(root)!r}: make {root}/base/ with YAML files (plait new "
            "NAME makes a project with one), or point to it with [tool.plait] conf"
        )
    chosen = resolve_env(env)
    if chosen != DEFAULT_ENV and not (root / chosen).is_dir():
        envs = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name != "base")
        from plait.errors import suggest

        raise ConfigError(
            f"no env {chosen!r} in {root}{suggest(chosen, envs)}: its envs are "
            f"{', '.join(envs) or 'none'}; make {root / chosen}/ or pick another --env"
        )
    return root, chosen


def _files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix in _SUFFIXES and p.is_file())


def _merge_env(files: Iterable[Path]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    owner: dict[str, Path] = {}
    for path in files:
        values = read_config_file(path)
        for key, value in values.items():
            if key in owner:
                raise ConfigError(
                    f"{key!r} is set by both {owner[key]} and {path}: set it in one file "
                    "of an env (another env's file may override it)"
                )
            owner[key] = path
            merged[key] = value
    return merged


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A ``.yml``/``.yaml``/``.json``/``.toml`` file's top-level mapping (empty file: {}).

    Raises:
        ConfigError: For a missing or unreadable file, a parse error, an unknown
            extension, or a top level that is not a mapping.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {str(path)!r}: {exc.strerror}") from exc
    suffix = path.suffix.lower()
    try:
        if suffix in (".yml", ".yaml"):
            loaded = _yaml().load(text, Loader=_yaml_loader())
        elif suffix == ".json":
            loaded = json.loads(text)
        elif suffix == ".toml":
            import tomllib

            loaded = tomllib.loads(text)
        else:
            raise ConfigError(f"config file {str(path)!r}: use .yml, .yaml, .json or .toml")
    except ConfigError:
        raise
    except Exception as exc:  # each parser has its own error type
        raise ConfigError(f"config file {str(path)!r} is not valid {suffix[1:]}: {exc}") from exc
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(
            f"config file {str(path)!r} holds a {type(loaded).__name__}, not keys and values"
        )
    return loaded


def _yaml() -> Any:
    try:
        import yaml  # type: ignore[import-untyped, unused-ignore]
    except ImportError as exc:
        raise ConfigError("reading YAML config needs PyYAML: pip install 'plait[config]'") from exc
    return yaml


def _yaml_loader() -> Any:
    yaml = _yaml()
    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def resolve(values: Mapping[str, Any], *, where: str = "the config") -> dict[str, Any]:
    """``values`` with ``${...}`` interpolations resolved (OmegaConf); a plain dict.

    Raises:
        ConfigError: When OmegaConf is missing or an interpolation fails.
    """
    if not _has_interpolation(values):
        return dict(values)
    try:
        from omegaconf import OmegaConf
        from omegaconf.errors import OmegaConfBaseException
    except ImportError as exc:
        raise ConfigError(
            f"{where} uses ${{...}} interpolation, which needs OmegaConf: "
            "pip install 'plait[config]'"
        ) from exc
    try:
        resolved = OmegaConf.to_container(OmegaConf.create(dict(values)), resolve=True)
    except OmegaConfBaseException as exc:
        message = " ".join(str(exc).split())
        raise ConfigError(f"{where}: interpolation failed: {message}") from exc
    if not isinstance(resolved, dict):  # pragma: no cover - a mapping stays a mapping
        raise ConfigError(f"{where} is not a mapping")
    return {str(k): v for k, v in resolved.items()}


def _has_interpolation(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "${" in item:
                return True
        elif isinstance(item, Mapping):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return False


def _mask(
    values: dict[str, Any], keys: Iterable[str], source: tuple[str, str, bool]
) -> dict[str, Any]:
    for key in keys:
        parts = key.split(".")
        here: Any = values
        for part in parts[:-1]:
            here = here.get(part) if isinstance(here, dict) else None
        if isinstance(here, dict) and parts[-1] in here:
            here[parts[-1]] = _secret_leaves(here[parts[-1]], key, source)
    return values


def _secret_leaves(value: Any, key: str, source: tuple[str, str, bool]) -> Any:
    if isinstance(value, dict):
        return {
            k: _secret_leaves(v, f"{key}.{k}" if key else str(k), source) for k, v in value.items()
        }
    return Secret(value, key, source)
