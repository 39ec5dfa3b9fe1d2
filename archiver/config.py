"""The one typed configuration of a run: YAML file, environment and flags merged and validated once.

Precedence: command line > environment > config file > defaults.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import socket
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import extras, yamltext
from .errors import ConfigError
from .urls import BucketUrl as BucketUrl  # where it always was, for its importers
from .urls import CatalogUrl as CatalogUrl
from .urls import check_catalog

DEFAULT_BASE_URL = "https://api.useapi.net/v1"
ENV_TOKEN = "USEAPI_TOKEN"
ENV_BASE_URL = "USEAPI_BASE_URL"
NO_TOKEN = f"no API token: set {ENV_TOKEN} or the config key 'token'"
MIN_PART_SIZE = 5 * 1024**2  # S3's smallest part (all but the last)
MAX_PART_SIZE = 5 * 1024**3
BUCKET_ARCHIVE = "{}: a bucket archive"  # what needs the [s3] extra, in its message
# The probe engines (archiver/probe/): ffprobe, the default and reference; libav, in-process.
PROBE_ENGINES = ("ffprobe", "libav")


@dataclass(frozen=True, kw_only=True)
class Config:
    """Every setting the archiver reads; the YAML keys have the same names."""

    token: str | None = field(default=None, repr=False)
    # A file holding the token (e.g. a secrets mount), read when no token is given otherwise.
    token_file: Path | None = None
    base_url: str = DEFAULT_BASE_URL
    # A folder, or an S3 bucket and prefix (s3://bucket/prefix).
    output_dir: Path | BucketUrl = Path("runway-archive")
    # HTTP requests in flight at once, API calls and downloads together. The default is the
    # two lanes' caps summed, so an API call never takes a download's place: on a link paced per
    # connection, 16 with 4 API calls in flight left ~14 downloads running (1.07x curl's wall).
    concurrency: int = 20
    api_concurrency: int = 4
    download_concurrency: int = 16
    # Which engine probes video and audio (images are checked in-process either way).
    probe: str = "ffprobe"
    # 0 means one ffprobe per core.
    probe_concurrency: int = 0
    # libav's worker processes; 0 means one per core.
    probe_workers: int = 0
    duration_tolerance: float = 0.1
    frame_rate_tolerance: float = 0.01
    connect_timeout: float = 15.0
    read_timeout: float = 60.0
    # One API answer, headers and body, must arrive within this, however it trickles.
    api_timeout: float = 60.0
    probe_timeout: float = 60.0
    ffprobe: str = "ffprobe"
    retry_attempts: int = 5
    retry_initial_delay: float = 1.0
    retry_max_delay: float = 30.0
    retry_total_seconds: float = 300.0
    url_refreshes: int = 2
    # A task failing the same way every run is tried after 1, 2, 4 ... runs, and at least
    # once per this many seconds; retry_errors (--retry-errors) tries every one now.
    retry_backoff: float = 86400.0
    retry_errors: bool = False
    max_file_bytes: int = 8 * 1024**3
    # Input assets named in a task's options (--no-inputs), at most this many per task,
    # each at most this large: a hostile task cannot make the archiver fetch without end.
    inputs: bool = True
    max_inputs: int = 32
    max_input_bytes: int = 2 * 1024**3
    progress: bool = True
    refresh: bool = False
    # --wait: seconds between polls of an unfinished task, growing from the first to the cap;
    # wait_time_scale multiplies them and the --wait duration (tests and demos run it fast).
    poll_interval: float = 10.0
    poll_max_interval: float = 60.0
    wait_time_scale: float = 1.0
    # Refresh the offline gallery (index.html at the archive root) after a run that changed it.
    gallery: bool = True
    # None: beside the archive in its folder; for a bucket, under the XDG state folder.
    catalog_path: Path | None = None
    # A PostgreSQL catalog (--catalog URL), shared by every run on every host; None: SQLite.
    catalog: CatalogUrl | None = None
    # How long a claim on a task lasts unless renewed (a third of it at most between renewals);
    # a host that dies loses its tasks to the next claim of another after this.
    lease_seconds: float = 120.0
    # This host's name in claims and run records (a shared catalog's `status` shows it);
    # None: the machine's hostname (`host`).
    host_name: str | None = None
    s3_endpoint_url: str | None = None  # None: AWS itself
    s3_part_size: int = 8 * 1024**2
    s3_parts_in_flight: int = 4  # memory held by uploads: s3_part_size x this
    # A Prometheus text file written at the end of every run (node_exporter's textfile
    # collector reads *.prom files from its folder); None: no metrics (--metrics).
    metrics_file: Path | None = None

    @property
    def host(self) -> str:
        """This host's name: `host_name`, else the machine's hostname."""
        return self.host_name or socket.gethostname() or "localhost"

    @property
    def probes(self) -> int:
        return self.probe_concurrency or (os.cpu_count() or 1)

    @property
    def libav_workers(self) -> int:
        return self.probe_workers or (os.cpu_count() or 1)


# key -> the largest value that makes sense: beyond it a value is a typo, not a wish.
_POSITIVE_INTS = {
    "concurrency": 1024,
    "api_concurrency": 1024,
    "download_concurrency": 1024,
    "retry_attempts": 100,
    "s3_parts_in_flight": 64,
}
_NONNEGATIVE_INTS = {
    "probe_concurrency": 256,
    "probe_workers": 256,
    "url_refreshes": 100,
    "max_file_bytes": 2**50,
    "max_inputs": 10_000,
    "max_input_bytes": 2**50,
}
_DAY = 86400.0
_FLOATS = {
    "duration_tolerance": _DAY,
    "frame_rate_tolerance": 1.0,
    "connect_timeout": _DAY,
    "read_timeout": _DAY,
    "api_timeout": _DAY,
    "probe_timeout": _DAY,
    "retry_initial_delay": _DAY,
    "retry_max_delay": _DAY,
    "retry_total_seconds": 7 * _DAY,
    "retry_backoff": 365 * _DAY,
}
# Above 0: a poll interval (or a time scale) of zero would ask the API without pause.
_POSITIVE_FLOATS = {
    "poll_interval": _DAY,
    "poll_max_interval": _DAY,
    "wait_time_scale": 1000.0,
    "lease_seconds": _DAY,
}
_BOOLS = {"progress", "refresh", "retry_errors", "inputs", "gallery"}
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
    if "token" not in checked and "token_file" in checked:
        where = f"token_file {checked['token_file']}"
        checked["token"] = _check("token", _read_token(checked["token_file"]), where)
    if isinstance(out := checked.get("output_dir"), BucketUrl):
        extras.require("s3", wanted=BUCKET_ARCHIVE.format(out))  # before any request
    if isinstance(catalog := checked.get("catalog"), CatalogUrl):
        extras.require("postgres", wanted=f"{catalog}: a PostgreSQL catalog")
    return Config(**checked), warnings


def _read_token(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"token_file {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"token_file {path}: not UTF-8 text") from exc


def _read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"config file {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path}: not UTF-8 text") from exc
    try:
        data = yamltext.load(text)
    except yamltext.BrokenYaml as exc:
        raise ConfigError(f"config file {path}: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"config file {path}: expected a mapping of keys, got {type(data).__name__}"
        )
    for key in data:
        if key not in KEYS:
            raise ConfigError(f"config file {path}: unknown key {str(key)!r}{_nearest(key)}")
    return data


def _nearest(key: object) -> str:
    close = difflib.get_close_matches(str(key), sorted(KEYS), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _spell(value: object) -> str:
    """A value as YAML writes it (`true`, not `True`), cut to a readable length."""
    if isinstance(value, Path):
        value = str(value)
    try:
        shown = yaml.safe_dump(value, default_flow_style=True, width=1000, allow_unicode=True)
    except (yaml.YAMLError, RecursionError):
        shown = repr(value)
    shown = shown.strip().removesuffix("...").strip()
    return shown if len(shown) <= 60 else shown[:57] + "..."


def _check(key: str, value: Any, where: str) -> Any:
    """Validate one value; the message names the key and the file it came from."""
    if key not in KEYS:
        raise ConfigError(f"unknown config key {key!r} ({where}){_nearest(key)}")
    if key == "catalog":
        return check_catalog(value, where)  # its password never shown, whatever is wrong
    if key == "token":
        return _token(value, where)  # never shown, whatever is wrong with it
    try:
        return _CHECKS[key](value)
    except _Expected as exc:
        raise ConfigError(
            f"config key {key!r} ({where}): expected {exc}, got {_spell(value)}"
        ) from None


class _Expected(ValueError):
    """A value of the wrong type or range; the text says what was expected instead."""


Check = Callable[[Any], Any]  # a value as read -> the value the Config holds, or _Expected


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _whole(low: int, high: int, expected: str | None = None) -> Check:
    def check(value: Any) -> Any:
        if not _is_int(value) or not low <= value <= high:
            raise _Expected(expected or f"a whole number from {low} to {high}")
        return value

    return check


def _number(high: float, *, above_zero: bool) -> Check:
    def check(value: Any) -> float:
        number = float(value) if _is_int(value) and abs(value) < 2**53 else value
        if above_zero:
            if not isinstance(number, float) or not 0 < number <= high:
                raise _Expected(f"a number above 0, at most {high:g}")
        elif not isinstance(number, float) or not 0 <= number <= high:
            raise _Expected(f"a number from 0 to {high:g}")
        return number

    return check


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Expected("true or false")
    return value


def _choice(choices: tuple[str, ...]) -> Check:
    def check(value: Any) -> str:
        if not isinstance(value, str) or value not in choices:
            raise _Expected(" or ".join(choices))
        return value

    return check


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or _has_control(value):
        raise _Expected("a non-empty string of printable characters")
    return value


def _url(value: Any) -> str:
    if not _text(value).startswith(("http://", "https://")):
        raise _Expected("an http(s) URL")
    return str(value)


def _path(value: Any) -> Path:
    if not isinstance(value, (str, Path)) or not str(value) or _has_control(str(value)):
        raise _Expected("a path")
    return Path(value).expanduser()


def _output(value: Any) -> Path | BucketUrl:
    """A folder, or an s3:// URL (as the command line passes it, or parsed already)."""
    if isinstance(value, BucketUrl):
        return value
    if isinstance(value, str) and value.startswith("s3://") and not _has_control(value):
        try:
            return BucketUrl.parse(value)
        except ValueError as exc:
            raise _Expected(f"s3://bucket/prefix ({exc})") from exc
    return _path(value)


_CHECKS: dict[str, Check] = {
    **{key: _whole(1, high) for key, high in _POSITIVE_INTS.items()},
    **{key: _whole(0, high) for key, high in _NONNEGATIVE_INTS.items()},
    **{key: _number(high, above_zero=False) for key, high in _FLOATS.items()},
    **{key: _number(high, above_zero=True) for key, high in _POSITIVE_FLOATS.items()},
    **dict.fromkeys(_BOOLS, _flag),
    "probe": _choice(PROBE_ENGINES),
    "ffprobe": _text,
    "base_url": _url,
    "s3_endpoint_url": _url,
    "s3_part_size": _whole(
        MIN_PART_SIZE,
        MAX_PART_SIZE,
        f"a byte count from {MIN_PART_SIZE} (5 MiB) to {MAX_PART_SIZE} (5 GiB)",
    ),
    "output_dir": _output,
    "token_file": _path,
    "catalog_path": _path,
    "metrics_file": _path,
    "host_name": _text,
}
assert _CHECKS.keys() | {"token", "catalog"} == KEYS, "every config key has its check"


def _token(value: Any, where: str) -> str:
    """Stripped of the whitespace and line end a file or `echo` leaves; never sent if odd."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(
            f"config key 'token' ({where}): expected a non-empty string, got <hidden>"
        )
    token = value.strip()
    if not all("\x21" <= c <= "\x7e" for c in token):
        raise ConfigError(
            f"the token ({where}) holds a space, control or non-ASCII character; not sending it"
        )
    return token


def _has_control(text: str) -> bool:
    """Control characters and lone surrogates: nothing a path, URL or name should hold."""
    return any(c < " " or "\x7f" <= c <= "\x9f" or "\ud800" <= c <= "\udfff" for c in text)


def _readable_by_others(path: Path) -> bool:
    try:
        return bool(path.stat().st_mode & (stat.S_IRGRP | stat.S_IROTH))
    except OSError:
        return False
