"""Configuration: ``conf/base`` + ``conf/<env>``, interpolation, overrides, ``[tool.plait]``.

>>> from plait.config import deep_merge, nest
>>> deep_merge({"model": {"seed": 1, "size": 0.2}}, nest({"model.size": 0.3}))
{'model': {'seed': 1, 'size': 0.3}}

Nothing here imports an optional dependency at import time: PyYAML and OmegaConf are
imported by the calls that read YAML or interpolate (``pip install 'plait[config]'``).
"""

from __future__ import annotations

from plait.config._loader import (
    Secret,
    load_config,
    load_credentials,
    read_config_file,
    resolve,
    resolve_env,
)
from plait.config._merge import ConfigError, deep_merge, effective_config, nest, parse_set
from plait.config._project import ProjectSettings, project_settings

__all__ = [
    "ConfigError",
    "ProjectSettings",
    "Secret",
    "deep_merge",
    "effective_config",
    "load_config",
    "load_credentials",
    "nest",
    "parse_set",
    "project_settings",
    "read_config_file",
    "resolve",
    "resolve_env",
]
