"""A throwaway PostgreSQL cluster in a temp folder, on a free loopback port, for tests and bench.

Debian's server binaries (/usr/lib/postgresql/<version>/bin) refuse to run as root, so as root
they run as the `postgres` user (runuser) in a folder it owns. Durability is off (`fsync=off`):
the cluster lives as long as one test session. `Cluster.running()` always stops it and removes
its folder, whatever happened inside.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

BIN_ROOT = Path("/usr/lib/postgresql")
ROLE = "archiver"  # the role every catalog database belongs to; its password is random
START_TIMEOUT = 60


def find_bindir() -> Path | None:
    """The newest Debian server binaries, or the folder of an `initdb` on PATH."""
    versions = sorted(
        (p for p in BIN_ROOT.glob("*/bin") if (p / "initdb").is_file()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if versions:
        return versions[-1]
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Cluster:
    """One running server: `url(db)` for the archiver's role, `admin_url()` for the superuser."""

    bindir: Path
    home: Path  # the temp folder: data/ and the server log
    port: int
    password: str = field(repr=False)
    settings: tuple[str, ...] = ()  # more `name=value` server settings (the bench's statistics)
    _names: Iterator[int] = field(default_factory=itertools.count, repr=False)

    @classmethod
    @contextlib.contextmanager
    def running(
        cls, bindir: Path | None = None, *, settings: Sequence[str] = ()
    ) -> Iterator[Cluster]:
        """A fresh cluster, stopped and removed on the way out however the block ends."""
        bindir = bindir or find_bindir()
        if bindir is None:
            raise RuntimeError("no PostgreSQL server binaries (apt-get install postgresql)")
        home = Path(tempfile.mkdtemp(prefix="archiver-pg-"))
        cluster = cls(bindir, home, free_port(), secrets.token_hex(12), tuple(settings))
        try:
            _give_to_server_user(home)
            cluster._initdb()
            cluster.start()
            cluster._create_role()
            yield cluster
        finally:
            try:
                cluster.stop()
            finally:
                shutil.rmtree(home, ignore_errors=True)

    @property
    def data(self) -> Path:
        return self.home / "data"

    @property
    def log(self) -> Path:
        return self.home / "server.log"

    def url(self, dbname: str, *, password: str | None = None, port: int | None = None) -> str:
        """A libpq URL of the archiver's role (its password unless another is given)."""
        secret = self.password if password is None else password
        return f"postgresql://{ROLE}:{secret}@127.0.0.1:{port or self.port}/{dbname}"

    def admin_url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres:{self.password}@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, name: str | None = None) -> str:
        """A new empty database owned by the archiver's role; its URL."""
        name = name or f"catalog_{next(self._names)}"
        self.execute(f'CREATE DATABASE "{name}" OWNER {ROLE}')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def execute(self, sql: str, dbname: str = "postgres") -> None:
        with psycopg.connect(self.admin_url(dbname), autocommit=True) as conn:
            conn.execute(sql.encode())

    def start(self) -> None:
        options = " ".join(
            [
                f"-c port={self.port}",
                "-c listen_addresses=127.0.0.1",
                "-c unix_socket_directories=''",
                "-c fsync=off",
                "-c synchronous_commit=off",
                "-c full_page_writes=off",
                "-c shared_buffers=32MB",
                "-c max_connections=200",
                *(f"-c {setting}" for setting in self.settings),
            ]
        )
        self._ctl("start", "-w", "-t", str(START_TIMEOUT), "-l", str(self.log), "-o", options)

    def stop(self, mode: str = "fast") -> None:
        """Stop the server if it runs (`immediate`: as a crash would)."""
        if (self.data / "postmaster.pid").exists():
            self._ctl("stop", "-w", "-m", mode, check=False)

    def restart(self, mode: str = "fast") -> None:
        """`pg_ctl restart -m fast`: every connection is cut, the server is back at once."""
        self._ctl("restart", "-w", "-m", mode, "-t", str(START_TIMEOUT), "-l", str(self.log))

    def _initdb(self) -> None:
        pwfile = self.home / "pwfile"
        pwfile.write_text(self.password + "\n")
        _give_to_server_user(pwfile)
        self._as_server_user(
            [
                str(self.bindir / "initdb"),
                "-D", str(self.data),
                "-U", "postgres",
                "--pwfile", str(pwfile),
                "--auth", "scram-sha-256",
                "-E", "UTF8",
                "--locale", "C",
                "--no-sync",
            ]
        )  # fmt: skip
        pwfile.unlink()

    def _create_role(self) -> None:
        self.execute(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{self.password}'")

    def _ctl(self, *args: str, check: bool = True) -> None:
        self._as_server_user([str(self.bindir / "pg_ctl"), "-D", str(self.data), *args], check)

    def _as_server_user(self, argv: Sequence[str], check: bool = True) -> None:
        if os.geteuid() == 0:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if check and done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{argv[-1]}: {done.stderr.strip() or done.stdout.strip()}\n{log}")


def _give_to_server_user(path: Path) -> None:
    """As root, the server runs as `postgres`: it must own its folder."""
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(path, user.pw_uid, user.pw_gid)
