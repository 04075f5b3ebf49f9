"""``[tool.plait]`` in the nearest ``pyproject.toml``: a project's defaults.

Keys: ``store``, ``history``, ``env``, ``conf``, ``executor``, ``project``,
``worker_setup``, ``secret_keys``. Relative paths (``store``, ``conf``) are relative to
the ``pyproject.toml`` that sets them. An unknown key is an error with a "did you mean", so
a misspelled setting is never silently ignored.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plait.config._merge import ConfigError
from plait.errors import suggest

__all__ = ["ProjectSettings", "project_settings"]

_STRINGS = ("store", "history", "env", "conf", "executor", "project", "worker_setup")
_KNOWN = (*_STRINGS, "secret_keys")


@dataclass(frozen=True, slots=True)
class ProjectSettings:
    """The ``[tool.plait]`` table (all None when there is none).

    Attributes:
        path: The ``pyproject.toml`` read, or None.
        store, history, env, executor, project, worker_setup: As written.
        conf: The conf directory, made absolute against ``path``'s folder.
        secret_keys: Dotted config keys whose values are masked.
    """

    path: Path | None = None
    store: str | None = None
    history: str | None = None
    env: str | None = None
    conf: str | None = None
    executor: str | None = None
    project: str | None = None
    worker_setup: str | None = None
    secret_keys: tuple[str, ...] = ()

    @property
    def root(self) -> Path:
        """The project's folder: where ``pyproject.toml`` is, else the current directory."""
        return self.path.parent if self.path is not None else Path.cwd()


def project_settings(start: str | Path | None = None) -> ProjectSettings:
    """``[tool.plait]`` of the nearest ``pyproject.toml`` from ``start`` (default: cwd) up.

    The first ``pyproject.toml`` found is the project's, whether or not it has the table.

    Raises:
        ConfigError: For an unreadable file, an unknown key or a value of the wrong type.
    """
    directory = Path(start) if start is not None else Path.cwd()
    for folder in (directory, *directory.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            return _read(candidate)
    return ProjectSettings()


def _read(path: Path) -> ProjectSettings:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    table: Any = data.get("tool", {}).get("plait", {})
    if not isinstance(table, dict):
        raise ConfigError(f"[tool.plait] in {path} must be a table")
    problems = []
    for key in table:
        if key not in _KNOWN:
            problems.append(f"unknown key {key!r}{suggest(key, _KNOWN)}")
    for key in _STRINGS:
        if key in table and not isinstance(table[key], str):
            problems.append(f"{key} must be a string, got {table[key]!r}")
    secret = table.get("secret_keys", [])
    if not isinstance(secret, list) or not all(isinstance(k, str) for k in secret):
        problems.append(f"secret_keys must be a list of dotted keys, got {secret!r}")
    if problems:
        raise ConfigError(
            f"[tool.plait] in {path}: "
            + "; ".join(problems)
            + f" (known keys: {', '.join(_KNOWN)})"
        )
    conf = table.get("conf")
    return ProjectSettings(
        path=path,
        store=table.get("store"),
        history=table.get("history"),
        env=table.get("env"),
        conf=str(path.parent / conf) if conf is not None else None,
        executor=table.get("executor"),
        project=table.get("project"),
        worker_setup=table.get("worker_setup"),
        secret_keys=tuple(secret),
    )
