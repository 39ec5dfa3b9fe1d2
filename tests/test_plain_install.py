"""The plain install, `pip install runway-archiver` with no extra: a real throwaway venv."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from archiver import extras
from archiver.errors import MissingExtra
from archiver.testing import Emulator

from .conftest import FAST, TOKEN

REPO = Path(__file__).resolve().parent.parent
# A venv and a pip install (from pip's cache): ~30 s, once for the module.
slow = pytest.mark.slow


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin folder of a venv holding runway-archiver and its required dependencies only."""
    root = tmp_path_factory.mktemp("plain")
    source = root / "source"  # a copy: the build leaves nothing in the working tree
    shutil.copytree(
        REPO / "archiver", source / "archiver", ignore=shutil.ignore_patterns("__pycache__")
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    subprocess.run([sys.executable, "-m", "venv", str(root / "venv")], check=True)
    bin_dir = root / "venv" / "bin"
    subprocess.run(
        [bin_dir / "python", "-m", "pip", "install", "-q", "--disable-pip-version-check", source],
        check=True,
        capture_output=True,
    )
    return bin_dir


def _cli(
    bin_dir: Path, emu: Emulator, config: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "USEAPI_TOKEN": TOKEN,
        "USEAPI_BASE_URL": emu.api_url,
        "XDG_CONFIG_HOME": str(config.parent / "xdg-config"),
        "XDG_STATE_HOME": str(config.parent / "xdg-state"),
    }
    argv = [str(bin_dir / "runway-archiver"), *args, "-c", str(config)]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)


@slow
def test_plain_install_has_no_optional_engine(plain: Path) -> None:
    """No extra's module is importable in the plain install; the package itself is."""
    names = [name for modules in extras.EXTRAS.values() for name in modules]
    probe = "import importlib.util as u, sys; print([n for n in sys.argv[1:] if u.find_spec(n)])"
    found = subprocess.run(
        [plain / "python", "-c", probe, "archiver", *names], capture_output=True, text=True
    )
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip() == "['archiver']"


@slow
def test_plain_install_archives_to_a_folder(plain: Path, emu: Emulator, tmp_path: Path) -> None:
    """Without any extra, a run archives a task into a folder: every file the emulator's bytes."""
    task = emu.add_task(previews=2)
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps(FAST))
    archive, report = tmp_path / "archive", tmp_path / "report.json"
    done = _cli(
        plain, emu, config, "run", "-o", str(archive), "--no-progress", "--report", str(report),
        task,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    entry = json.loads(report.read_text())["tasks"][0]
    assert (entry["task_id"], entry["state"]) == (task, "archived")
    served = emu.media_of(task)
    assert len(entry["files"]) == len(served) == 4  # the video, two previews, one input
    for file, source in zip(entry["files"], served, strict=True):
        assert (archive / file["path"]).read_bytes() == source.read_bytes()
        assert file["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert (archive / entry["sidecar"]).is_file()


@slow
@pytest.mark.parametrize("command", ["run", "list --all", "status", "verify"])
def test_plain_install_refuses_a_bucket_naming_the_extra(
    plain: Path, emu: Emulator, tmp_path: Path, command: str
) -> None:
    """`-o s3://bucket` without [s3]: one line naming the extra, exit 2, and no request sent."""
    task = emu.add_task()
    config = tmp_path / "config.yaml"
    # Were the store asked anything, the emulator would see it: it stands in for the endpoint.
    config.write_text(json.dumps({**FAST, "s3_endpoint_url": emu.api_url}))
    emu.clear_requests()
    ids = [task] if command.startswith(("run", "list")) else []
    done = _cli(plain, emu, config, *command.split(), "-o", "s3://bucket/runway", *ids)
    assert done.returncode == 2
    assert done.stderr == (
        "runway-archiver: s3://bucket/runway: a bucket archive needs the [s3] extra: "
        "pip install 'runway-archiver[s3]'\n"
    )
    assert done.stdout == ""
    assert emu.requests == []


@slow
@pytest.mark.parametrize(
    ("command", "asked"),
    [("run", "--probe libav"), ("run", "probe: libav"), ("verify", "--probe libav")],
)
def test_plain_install_refuses_libav_naming_the_extra(
    plain: Path, emu: Emulator, tmp_path: Path, command: str, asked: str
) -> None:
    """The libav probe (flag or config key) without [libav]: one line naming the extra, exit 2,
    and no request sent."""
    task = emu.add_task()
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({**FAST, "probe": "libav"} if asked.startswith("probe") else FAST))
    flags = asked.split() if asked.startswith("--") else []
    ids = [task] if command == "run" else []
    emu.clear_requests()
    done = _cli(plain, emu, config, command, "-o", str(tmp_path / "archive"), *flags, *ids)
    assert done.returncode == 2
    assert done.stderr == (
        "runway-archiver: probe: libav needs the [libav] extra: "
        "pip install 'runway-archiver[libav]'\n"
    )
    assert done.stdout == ""
    assert emu.requests == []


def test_an_engine_missing_its_own_module_names_the_extra() -> None:
    """A module of the extra missing at import is the extra's line; any other is left a bug."""
    missing = r"^the probe needs the \[libav\] extra: pip install 'runway-archiver\[libav\]'$"
    with pytest.raises(MissingExtra, match=missing), extras.engine("libav", wanted="the probe"):
        import av.no_such_module  # noqa: F401
    with pytest.raises(ModuleNotFoundError), extras.engine("libav", wanted="x"):
        import no_such_module_of_ours  # noqa: F401


def test_plain_install_refuses_a_postgresql_catalog_naming_the_extra(
    plain: Path, emu: Emulator, tmp_path: Path
) -> None:
    """`--catalog postgresql://...` without [postgres]: one line naming the extra, no password,
    exit 2, and no request sent."""
    task = emu.add_task()
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps(FAST))
    emu.clear_requests()
    url = "postgresql://archiver:s3cret-pw@127.0.0.1:1/runway"
    done = _cli(plain, emu, config, "run", "-o", str(tmp_path / "a"), "--catalog", url, task)
    assert done.returncode == 2
    assert done.stderr == (
        "runway-archiver: postgresql://127.0.0.1:1/runway: a PostgreSQL catalog needs the "
        "[postgres] extra: pip install 'runway-archiver[postgres]'\n"
    )
    assert emu.requests == []
