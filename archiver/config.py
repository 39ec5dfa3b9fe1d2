"""The one typed configuration of a run: YAML file, environment and flags merged and validated once.

Precedence: command line > environment > config file > defaults.
"""

from __future__ import annotations

import dataclasses
import math
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

DEFAULT_BASE_URL = "https://api.useapi.net/v1"
ENV_TOKEN = "USEAPI_TOKEN"
ENV_BASE_URL = "USEAPI_BASE_URL"


@dataclass(frozen=True, kw_only=True)
class Config:
    """Every setting the archiver reads; the YAML keys have the same names."""

    token: str | None = field(default=None, repr=False)
    base_url: str = DEFAULT_BASE_URL
    output_dir: Path = Path("runway-archive")
    # HTTP requests in flight at once, API calls and downloads together.
    concurrency: int = 16
    api_concurrency: int = 4
    download_concurrency: int = 16
    # 0 means one ffprobe per core.
    probe_concurrency: int = 0
    duration_tolerance: float = 0.1
    frame_rate_tolerance: float = 0.01
    connect_timeout: float = 15.0
    read_timeout: float = 60.0
    probe_timeout: float = 60.0
    retry_attempts: int = 5
    retry_initial_delay: float = 1.0
    retry_max_delay: float = 30.0
    retry_total_seconds: float = 300.0
    url_refreshes: int = 2
    max_file_bytes: int = 8 * 1024**3
    progress: bool = True
    refresh: bool = False

    @property
    def probes(self) -> int:
        return self.probe_concurrency or (os.cpu_count() or 1)


_POSITIVE_INTS = {"concurrency", "api_concurrency", "download_concurrency", "retry_attempts"}
_NONNEGATIVE_INTS = {"probe_concurrency", "url_refreshes", "max_file_bytes"}
_FLOATS = {
    "duration_tolerance",
    "frame_rate_tolerance",
    "connect_timeout",
    "read_timeout",
    "probe_timeout",
    "retry_initial_delay",
    "retry_max_delay",
    "retry_total_seconds",
}
_BOOLS = {"progress", "refresh"}
_STRINGS = {"token", "base_url"}
_PATHS = {"output_dir"}
KEYS = frozenset(f.name for f in dataclasses.fields(Config))


def default_config_path(env: Mapping[str, str]) -> Path:
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "runway-archiver" / "config.yaml"


def load(
    *,
    path: Path | None,
    env: Mapping[str, str],
    overrides: Mapping[str, Any],
) -> tuple[Config, list[str]]:
    """Merge the layers into a Config; return it with warnings worth printing."""
    warnings: list[str] = []
    # key -> (value, where it came from), later layers replacing earlier ones
    values: dict[str, tuple[Any, str]] = {}
    source = path or default_config_path(env)
    if path is not None or source.is_file():
        # A key left empty (`token:`) means the default, as in config.example.yaml.
        from_file = {k: v for k, v in _read_file(source).items() if v is not None}
        values.update({k: (v, str(source)) for k, v in from_file.items()})
        if from_file.get("token") and _readable_by_others(source):
            warnings.append(
                f"warning: {source} holds a token and is readable by other users (chmod 600 it)"
            )
    for key, name in (("token", ENV_TOKEN), ("base_url", ENV_BASE_URL)):
        if env.get(name):
            values[key] = (env[name], f"environment {name}")
    values.update({k: (v, "command line") for k, v in overrides.items() if v is not None})
    checked = {key: _check(key, value, where) for key, (value, where) in values.items()}
    return Config(**checked), warnings


def _read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"config file {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path}: not UTF-8 text") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f", line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"config file {path}{line}: not valid YAML") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"config file {path}: expected a mapping of keys, got {type(data).__name__}"
        )
    for key in data:
        if key not in KEYS:
            raise ConfigError(f"config file {path}: unknown key {key!r}")
    return data


def _check(key: str, value: Any, where: str) -> Any:
    """Validate one value; the message names the key and the file it came from."""

    def bad(expected: str) -> ConfigError:
        shown = "<hidden>" if key == "token" else repr(value)
        return ConfigError(f"config key {key!r} ({where}): expected {expected}, got {shown}")

    if key not in KEYS:
        raise ConfigError(f"unknown config key {key!r} ({where})")
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if key in _POSITIVE_INTS:
        if not is_int or value < 1:
            raise bad("a positive integer")
    elif key in _NONNEGATIVE_INTS:
        if not is_int or value < 0:
            raise bad("a whole number >= 0")
    elif key in _FLOATS:
        if not (is_int or isinstance(value, float)) or not math.isfinite(value) or value < 0:
            raise bad("a finite number >= 0")
        return float(value)
    elif key in _BOOLS:
        if not isinstance(value, bool):
            raise bad("true or false")
    elif key in _STRINGS:
        if not isinstance(value, str) or not value.strip():
            raise bad("a non-empty string")
        if key == "base_url" and not value.startswith(("http://", "https://")):
            raise bad("an http(s) URL")
    elif key in _PATHS:
        if not isinstance(value, (str, Path)) or not str(value):
            raise bad("a path")
        return Path(value).expanduser()
    return value


def _readable_by_others(path: Path) -> bool:
    try:
        return bool(path.stat().st_mode & (stat.S_IRGRP | stat.S_IROTH))
    except OSError:
        return False
