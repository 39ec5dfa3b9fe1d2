"""Configuration: precedence, validation naming the key and the file, the token kept hidden."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from archiver import __version__, cli, config, http
from archiver.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
SECRET = "sk-live-0123456789abcdef"


def write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def load(path: Path | None, env: dict[str, str] | None = None, **overrides: Any) -> config.Config:
    cfg, _ = config.load(path=path, env=env or {}, overrides=overrides)
    return cfg


def config_error(path: Path | None, env: dict[str, str] | None = None, **overrides: Any) -> str:
    with pytest.raises(ConfigError) as info:
        config.load(path=path, env=env or {}, overrides=overrides)
    return str(info.value)


# -- precedence -----------------------------------------------------------------------------


def test_defaults_without_any_source(tmp_path: Path) -> None:
    """No file, no environment, no flags: the dataclass defaults."""
    cfg = load(None, {"XDG_CONFIG_HOME": str(tmp_path)})
    assert cfg == config.Config()
    assert cfg.base_url == "https://api.useapi.net/v1"
    assert cfg.concurrency == 20


async def test_default_cap_holds_every_download_and_api_call_at_once() -> None:
    """With the defaults, all download slots and all API slots are held together: the shared
    cap never makes a download wait for an API call's place, nor the reverse."""
    cfg = config.Config()
    limits = http.Limits.from_config(cfg)
    lanes = [limits.download] * cfg.download_concurrency + [limits.api] * cfg.api_concurrency
    async with contextlib.AsyncExitStack() as held:
        for lane in lanes:
            assert not lane.locked() and not limits.http.locked()
            await held.enter_async_context(limits.slot(lane))
        assert limits.download.locked() and limits.api.locked() and limits.http.locked()


def test_precedence_flags_over_env_over_file_over_defaults(tmp_path: Path) -> None:
    """Each key takes the highest layer that sets it: flag > environment > file > default."""
    path = write(
        tmp_path / "c.yaml",
        f"token: {SECRET}-file\nbase_url: http://file.example/v1\n"
        "concurrency: 3\nread_timeout: 7\noutput_dir: from-file\n",
    )
    cfg = load(
        path,
        {"USEAPI_TOKEN": "env-token", "USEAPI_BASE_URL": "http://env.example/v1"},
        concurrency=9,
        output_dir=None,  # a flag not given does not hide the file's value
    )
    assert cfg.token == "env-token"
    assert cfg.base_url == "http://env.example/v1"
    assert cfg.concurrency == 9
    assert cfg.read_timeout == 7.0
    assert cfg.output_dir == Path("from-file")
    assert cfg.api_concurrency == 4


def test_file_beats_defaults_and_empty_env(tmp_path: Path) -> None:
    """An empty USEAPI_TOKEN does not override the file's token."""
    path = write(tmp_path / "c.yaml", f"token: {SECRET}\nbase_url: http://file.example/v1\n")
    cfg = load(path, {"USEAPI_TOKEN": "", "USEAPI_BASE_URL": ""})
    assert (cfg.token, cfg.base_url) == (SECRET, "http://file.example/v1")


def test_override_beats_env_for_the_same_key(tmp_path: Path) -> None:
    """An override of token or base_url wins over the environment."""
    env = {"XDG_CONFIG_HOME": str(tmp_path), "USEAPI_TOKEN": "env", "USEAPI_BASE_URL": "http://e"}
    cfg = load(None, env, token="flag", base_url="https://flag.example")
    assert (cfg.token, cfg.base_url) == ("flag", "https://flag.example")


def test_default_path_under_xdg_config_home(tmp_path: Path) -> None:
    """Without -c, $XDG_CONFIG_HOME/runway-archiver/config.yaml is read if it exists."""
    folder = tmp_path / "runway-archiver"
    folder.mkdir()
    write(folder / "config.yaml", "api_concurrency: 2\nprogress: false\n")
    cfg = load(None, {"XDG_CONFIG_HOME": str(tmp_path)})
    assert (cfg.api_concurrency, cfg.progress) == (2, False)


def test_empty_file_is_all_defaults(tmp_path: Path) -> None:
    """An empty (or comment-only) config file is valid and changes nothing."""
    assert load(write(tmp_path / "c.yaml", "# nothing yet\n")) == config.Config()


def test_output_dir_expands_the_home_folder(tmp_path: Path) -> None:
    """output_dir '~/runway' becomes a path under the home folder."""
    cfg = load(write(tmp_path / "c.yaml", "output_dir: ~/runway\n"))
    assert cfg.output_dir == Path.home() / "runway"


def test_int_accepted_for_a_float_key(tmp_path: Path) -> None:
    """A whole number for a float key (read_timeout: 5) is stored as a float."""
    cfg = load(write(tmp_path / "c.yaml", "read_timeout: 5\n"))
    assert cfg.read_timeout == 5.0 and type(cfg.read_timeout) is float


# -- errors ---------------------------------------------------------------------------------


def test_unknown_key_names_key_and_file(tmp_path: Path) -> None:
    """A misspelt key is a ConfigError naming the key and the file."""
    path = write(tmp_path / "c.yaml", "concurency: 4\n")
    assert config_error(path) == (
        f"config file {path}: unknown key 'concurency' (did you mean 'concurrency'?)"
    )


def test_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    """-c pointing at a file that does not exist is a ConfigError naming the file."""
    path = tmp_path / "nope.yaml"
    assert config_error(path) == f"config file {path}: No such file or directory"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("concurrency: four", "a whole number from 1 to 1024, got four"),
        ("concurrency: 0", "a whole number from 1 to 1024, got 0"),
        ("concurrency: true", "a whole number from 1 to 1024, got true"),
        ("concurrency: 2.5", "a whole number from 1 to 1024, got 2.5"),
        ("url_refreshes: -1", "a whole number from 0 to 100, got -1"),
        ("read_timeout: slow", "a number from 0 to 86400, got slow"),
        ("read_timeout: -1", "a number from 0 to 86400, got -1"),
        ("duration_tolerance: [0.1]", "a number from 0 to 86400, got [0.1]"),
        ("progress: maybe", "true or false, got maybe"),
        ("refresh: 1", "true or false, got 1"),
        ("base_url: ftp://api.example/v1", "an http(s) URL, got ftp://api.example/v1"),
        ("base_url: api.useapi.net/v1", "an http(s) URL, got api.useapi.net/v1"),
        ("base_url: ''", "a non-empty string of printable characters, got ''"),
        ("output_dir: 5", "a path, got 5"),
        ("inputs: yes please", "true or false, got yes please"),
        ("max_inputs: -1", "a whole number from 0 to 10000, got -1"),
        ("max_input_bytes: 1GB", "a whole number from 0 to 1125899906842624, got 1GB"),
    ],
)
def test_wrong_type_names_key_and_file(tmp_path: Path, line: str, expected: str) -> None:
    """A value of the wrong type or range is a ConfigError naming the key, the file, the value."""
    path = write(tmp_path / "c.yaml", line + "\n")
    key = line.split(":")[0]
    assert config_error(path) == f"config key {key!r} ({path}): expected {expected}"


@pytest.mark.parametrize("key", ["duration_tolerance", "read_timeout"])
def test_nan_for_a_float_key_is_refused(tmp_path: Path, key: str) -> None:
    """`.nan` for a float key is refused (a NaN tolerance would pass every duration)."""
    path = write(tmp_path / "c.yaml", f"{key}: .nan\n")
    assert (
        config_error(path)
        == f"config key {key!r} ({path}): expected a number from 0 to 86400, got .nan"
    )


def test_bad_env_value_names_the_variable(tmp_path: Path) -> None:
    """A bad USEAPI_BASE_URL is blamed on that variable, not on a config file never read."""
    env = {"XDG_CONFIG_HOME": str(tmp_path), "USEAPI_BASE_URL": "ftp://x"}
    message = config_error(None, env)
    assert "USEAPI_BASE_URL" in message
    assert "config.yaml" not in message


def test_invalid_yaml_names_file_and_line(tmp_path: Path) -> None:
    """YAML that does not parse is a ConfigError with the file and the offending line."""
    path = write(tmp_path / "c.yaml", "concurrency: 4\nprogress: true\n  refresh: false\n")
    assert config_error(path) == f"config file {path}: not valid YAML (line 3)"


@pytest.mark.parametrize(("text", "kind"), [("- 1\n- 2\n", "list"), ("just text\n", "str")])
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str, kind: str) -> None:
    """A config file that is a list or a scalar is a ConfigError saying what it was."""
    path = write(tmp_path / "c.yaml", text)
    assert config_error(path) == f"config file {path}: expected a mapping of keys, got {kind}"


def test_non_utf8_file_is_a_config_error(tmp_path: Path) -> None:
    """A config file that is not UTF-8 is a ConfigError, not a UnicodeDecodeError."""
    path = tmp_path / "c.yaml"
    path.write_bytes(b"token: \xff\xfe\n")
    assert config_error(path) == f"config file {path}: not UTF-8 text"


# -- the token ------------------------------------------------------------------------------


def test_token_in_world_readable_file_warns(tmp_path: Path) -> None:
    """A token in a 0644 file gives one warning naming the file."""
    path = write(tmp_path / "c.yaml", f"token: {SECRET}\n", mode=0o644)
    _, warnings = config.load(path=path, env={}, overrides={})
    assert warnings == [
        f"warning: {path} holds a token and is readable by other users (chmod 600 it)"
    ]


@pytest.mark.parametrize(
    ("text", "mode"), [(f"token: {SECRET}\n", 0o600), ("concurrency: 2\n", 0o644)]
)
def test_no_warning_for_private_file_or_no_token(tmp_path: Path, text: str, mode: int) -> None:
    """A 0600 file with a token, or a 0644 file without one, gives no warning."""
    _, warnings = config.load(path=write(tmp_path / "c.yaml", text, mode), env={}, overrides={})
    assert warnings == []


@pytest.mark.parametrize(
    ("text", "ending"),
    [
        (f"token: [{SECRET}]\n", "'token' ({path}): expected a non-empty string, got <hidden>"),
        (
            f"token: {{a: {SECRET}}}\n",
            "'token' ({path}): expected a non-empty string, got <hidden>",
        ),
        (f"token: {SECRET}\nbase_url: ftp://x\n", "an http(s) URL, got ftp://x"),
        (f"token: {SECRET}\nconcurrency: -1\n", "expected a whole number from 1 to 1024, got -1"),
        (f"token: {SECRET}\nunknown: 1\n", "{path}: unknown key 'unknown'"),
    ],
)
def test_token_never_in_a_config_error(tmp_path: Path, text: str, ending: str) -> None:
    """Whatever is wrong with the file, the error message does not contain the token."""
    path = write(tmp_path / "c.yaml", text)
    message = config_error(path)
    assert message.endswith(ending.format(path=path))
    assert SECRET not in message


def test_token_not_in_repr_of_config() -> None:
    """repr() and str() of a Config never show the token."""
    cfg = config.Config(token=SECRET)
    assert SECRET not in repr(cfg)
    assert SECRET not in str(cfg)
    assert cfg.token == SECRET


# -- the example file -----------------------------------------------------------------------


def test_example_documents_exactly_the_keys_with_their_defaults() -> None:
    """config.example.yaml has every key of Config, no other, each with its default value."""
    example = yaml.safe_load((ROOT / "config.example.yaml").read_text(encoding="utf-8"))
    assert set(example) == set(config.KEYS)
    defaults = {f.name: f.default for f in dataclasses.fields(config.Config)}
    for key, value in example.items():
        if key == "output_dir":
            assert Path(value) == defaults[key]
        else:
            assert value == defaults[key], key
            assert type(value) is type(defaults[key]) or isinstance(defaults[key], float), key


def test_example_loads_as_a_config_equal_to_the_defaults() -> None:
    """Loading config.example.yaml as it ships (token: null) gives exactly Config()."""
    assert load(ROOT / "config.example.yaml") == config.Config()


def test_null_value_means_default(tmp_path: Path) -> None:
    """A key written with no value (`refresh:`) leaves the default in place."""
    assert load(write(tmp_path / "c.yaml", "refresh:\ntoken:\n")) == config.Config()


# -- through the command line ---------------------------------------------------------------


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A clean environment: no user config, a token, cwd in tmp_path."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("USEAPI_TOKEN", SECRET)
    monkeypatch.setenv("USEAPI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


TASK = "user:1234-runwayml:me@example.com-task:3f2a9c1e-5b7d-4e8f-9a0b-1c2d3e4f5a6b"


def test_cli_unknown_key_exits_2_with_one_line(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A misspelt config key: exit 2, one stderr line naming the key, nothing created."""
    path = write(cli_env / "c.yaml", "concurency: 4\n")
    code, out, err = run_cli(capsys, "run", "-c", str(path), TASK)
    assert code == 2
    assert err == (
        f"runway-archiver: config file {path}: unknown key 'concurency'"
        " (did you mean 'concurrency'?)\n"
    )
    assert out == ""
    assert not (cli_env / "runway-archive").exists()


def test_cli_without_token_exits_2(
    cli_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """No token in environment or config: exit 2 with a message naming USEAPI_TOKEN."""
    monkeypatch.delenv("USEAPI_TOKEN")
    code, _, err = run_cli(capsys, "run", TASK)
    assert code == 2
    assert err == ("runway-archiver: no API token: set USEAPI_TOKEN or the config key 'token'\n")


def test_cli_concurrency_zero_exits_2(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--concurrency 0 is refused with exit 2 before anything runs."""
    code, _, err = run_cli(capsys, "run", "--concurrency", "0", TASK)
    assert code == 2
    assert err == "runway-archiver: --concurrency: expected a positive integer\n"


def test_cli_without_task_ids_exits_2(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No ids and no task list at all: exit 2 saying how to give some."""
    code, _, err = run_cli(capsys, "run")
    assert code == 2
    assert err == "runway-archiver: no task ids given (arguments, -i FILE, -i - or --all)\n"


def test_cli_empty_task_list_is_zero_tasks(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A task list with no ids in it is a run of 0 tasks: exit 0, not an error."""
    empty = cli_env / "ids.txt"
    empty.write_text("# nothing here\n\n")
    code, out, err = run_cli(capsys, "run", "-i", str(empty))
    assert (code, err) == (0, "")
    assert out.startswith("0 tasks: 0 archived")


def test_cli_unreadable_task_list_exits_2(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An -i file that does not exist: exit 2 naming the file and why."""
    code, _, err = run_cli(capsys, "run", "-i", "missing.txt")
    assert code == 2
    assert err == "runway-archiver: task list missing.txt: No such file or directory\n"


def test_cli_task_list_that_is_a_folder_exits_2(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An -i argument naming a folder: exit 2 naming it."""
    (cli_env / "ids").mkdir()
    code, _, err = run_cli(capsys, "run", "-i", "ids")
    assert code == 2
    assert err == "runway-archiver: task list ids: Is a directory\n"


def test_cli_token_never_printed_on_config_error(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A config error with the token set in env and file prints no token."""
    path = write(cli_env / "c.yaml", f"token: {SECRET}\nconcurrency: zero\n")
    code, out, err = run_cli(capsys, "run", "-c", str(path), TASK)
    assert code == 2
    assert SECRET not in out + err
    assert err == (
        f"runway-archiver: config key 'concurrency' ({path}): "
        "expected a whole number from 1 to 1024, got zero\n"
    )


def test_cli_run_help_has_examples(capsys: pytest.CaptureFixture[str]) -> None:
    """`run --help` exits 0 and shows the examples section."""
    with pytest.raises(SystemExit) as info:
        cli.main(["run", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out
    assert "runway-archiver run -i tasks.txt -o ~/runway-archive" in out


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-m", "archiver", "--version"],
        [str(Path(sys.executable).parent / "runway-archiver"), "--version"],
    ],
    ids=["python -m archiver", "console script"],
)
def test_version_from_a_real_process(command: list[str], tmp_path: Path) -> None:
    """`python -m archiver --version` and the console script print the version and exit 0."""
    env = {k: v for k, v in os.environ.items() if k != "USEAPI_TOKEN"}
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=30, cwd=tmp_path, env=env
    )
    assert (done.returncode, done.stdout, done.stderr) == (
        0,
        f"runway-archiver {__version__}\n",
        "",
    )
