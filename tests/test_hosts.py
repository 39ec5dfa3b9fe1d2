"""Several runs, one archive: real processes against one PostgreSQL catalog and one folder,
with the emulator counting every request (issue 17's end-to-end tests)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg
import pytest

from archiver.testing import VideoSpec
from archiver.testing.postgres import Cluster

from .bucketing import BucketRunner
from .conftest import FAST, Runner
from .helpers import DEADLINE, kill, temp_files, wait_for

BIG = VideoSpec(bitrate="4M", seconds=2.0)  # larger than one write: a part file holds bytes
LEASE = 3.0


def configure(runner: Runner, url: str, host: str, **values: Any) -> Path:
    """A config file of its own for one host: the shared catalog, its name, short leases."""
    path = runner.config.with_name(f"config-{host}.yaml")
    path.write_text(
        json.dumps({**FAST, "catalog": url, "host_name": host, "lease_seconds": LEASE, **values})
    )
    return path


def spawn(runner: Runner, config: Path, *args: str) -> subprocess.Popen[str]:
    # A later -c wins over the runner's own: each process is its own host.
    return runner.spawn("-c", str(config), *args)


def finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=DEADLINE * 4)
    return process.returncode, out, err


def sql(url: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return [tuple(r) for r in conn.execute(query.encode(), params).fetchall()]


def assert_archive_whole(runner: Runner, url: str) -> None:
    """Every file the catalog names is on disk with its size and sha256, and nothing else sits
    under a final name in a task's folder (temp files aside)."""
    named = set()
    for path, size, sha in sql(url, "SELECT path, bytes, sha256 FROM files"):
        data = (runner.root / path).read_bytes()
        assert len(data) == size and hashlib.sha256(data).hexdigest() == sha, path
        named.add(path)
    sidecars = {
        f"{d}/task.yaml" for (d,) in sql(url, "SELECT dir FROM tasks WHERE dir IS NOT NULL")
    }
    on_disk = {
        str(p.relative_to(runner.root))
        for p in runner.final_files()
        if p.suffix not in (".part", ".etag") and p.name != "report.json"
    }
    assert on_disk <= named | sidecars, sorted(on_disk - named - sidecars)


def verify(runner: Runner, config: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **runner.env()}
    return subprocess.run(
        [os.sys.executable, "-m", "archiver", "verify", "-o", str(runner.root), "-c", str(config),
         "--no-progress"],
        env=env, capture_output=True, text=True, timeout=DEADLINE * 4,
    )  # fmt: skip


def archived(url: str) -> int:
    """Tasks archived so far (0 while the run has not made the schema yet)."""
    try:
        return int(sql(url, "SELECT count(*) FROM tasks WHERE state = 'archived'")[0][0])
    except psycopg.errors.UndefinedTable:
        return 0


def streaming(runner: Runner, full: int) -> bool:
    """A video's temp file holds some of its bytes, not all."""
    return any(
        0 < p.stat().st_size < full and ".preview-" not in p.name
        for p in runner.root.rglob("*.part")
    )


def retrievals(runner: Runner) -> Counter[str]:
    return Counter(r.raw_path.rsplit("/", 1)[-1] for r in runner.emu.requests if r.origin == "api")


@pytest.mark.slow
def test_three_processes_archive_300_tasks_each_once(runner: Runner, pg_url: str) -> None:
    """Three runs started together on one list: every task retrieved once, every file
    downloaded once, none exits 75, and everything verifies."""
    tasks = [runner.emu.add_task(previews=0, options={}) for _ in range(300)]
    ids = runner.root.parent / "ids.txt"
    ids.write_text("\n".join(tasks) + "\n")
    # No host dies here: a lease long enough that a process starved of CPU on a loaded
    # machine keeps its claims (with 3 s one lost a claim and its task was rightly redone).
    configs = [configure(runner, pg_url, f"host-{n}", lease_seconds=60) for n in (1, 2, 3)]
    processes = [spawn(runner, c, "-i", str(ids)) for c in configs]
    ended = [finish(p) for p in processes]
    assert [code for code, _, _ in ended] == [0, 0, 0], [err for _, _, err in ended]
    assert retrievals(runner) == Counter({t.rsplit("/", 1)[-1]: 1 for t in tasks})
    downloads = Counter(
        r.raw_path.split("?", 1)[0] for r in runner.emu.requests if r.origin == "cdn"
    )
    assert len(downloads) == 300 and set(downloads.values()) == {1}
    by_host = sql(pg_url, "SELECT claim_host, count(*) FROM tasks GROUP BY 1")
    assert sum(n for _, n in by_host) == 300 and len(by_host) >= 2
    assert sql(pg_url, "SELECT count(*) FROM tasks WHERE state = 'archived'") == [(300,)]
    assert_archive_whole(runner, pg_url)
    checked = verify(runner, configs[0])
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_kill_9_mid_stream_then_another_host_takes_over(runner: Runner, pg_url: str) -> None:
    """A host killed while a large file streams: the other finishes its task once the lease
    expires, resuming its bytes; nothing partial under a final name; verify passes."""
    runner.emu.cdn_rate = 300_000
    big = runner.emu.add_task(previews=1, video=BIG, options={})
    full = runner.emu.media_of(big)[0].stat().st_size
    first, second = configure(runner, pg_url, "first"), configure(runner, pg_url, "second")
    victim = spawn(runner, first, big)
    try:
        wait_for(lambda: streaming(runner, full), "the big video streaming")
    finally:
        kill(victim)
    runner.emu.cdn_rate = None
    survivor = spawn(runner, second)  # no ids: it works through what the catalog holds
    code, _, err = finish(survivor)
    assert code == 0, err
    assert sql(pg_url, "SELECT state, claim_host FROM tasks") == [("archived", "second")]
    ranged = [r for r in runner.emu.requests if "Range" in r.headers and ".mp4" in r.raw_path]
    assert ranged and all(r.status == 206 for r in ranged)  # it resumed the victim's bytes
    assert temp_files(runner.root) == []
    assert_archive_whole(runner, pg_url)
    assert verify(runner, second).returncode == 0


def test_stalled_host_writes_nothing_for_the_task_it_lost(runner: Runner, pg_url: str) -> None:
    """SIGSTOP past the lease, another host takes the task over and archives it; after SIGCONT
    the stalled host writes nothing under a final name and the catalog keeps the new row."""
    runner.emu.cdn_rate = 300_000
    big = runner.emu.add_task(previews=1, video=BIG, options={})
    full = runner.emu.media_of(big)[0].stat().st_size
    stalled_cfg = configure(runner, pg_url, "stalled")
    other_cfg = configure(runner, pg_url, "other")
    stalled = spawn(runner, stalled_cfg, big)
    try:
        wait_for(lambda: streaming(runner, full), "the big video streaming")
        stalled.send_signal(signal.SIGSTOP)
        runner.emu.cdn_rate = None
        code, _, err = finish(spawn(runner, other_cfg, big))
        assert code == 0, err
        finals = {p: (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes()) for p in
                  runner.final_files()}  # fmt: skip
        row = sql(pg_url, "SELECT state, claim_host, claim_token, updated_at FROM tasks")
        assert row[0][:2] == ("archived", "other")
    finally:
        stalled.send_signal(signal.SIGCONT)
    code, _, err = finish(stalled)
    assert code == 0, err
    # Its lease ran out while it was stopped: it says so, whichever check saw it first.
    assert err.count("stopped here and left to that run") == 1, err
    assert len(err.splitlines()) == 1, err
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes()) for p in
            runner.final_files()} == finals  # fmt: skip
    assert sql(pg_url, "SELECT state, claim_host, claim_token, updated_at FROM tasks") == row
    assert temp_files(runner.root) == []
    assert_archive_whole(runner, pg_url)


def test_server_restart_mid_run_then_a_rerun_completes(
    runner: Runner, pg_cluster: Cluster, pg_url: str
) -> None:
    """`pg_ctl restart -m fast` mid-run: the run finishes or ends with 74; the next run leaves
    the archive complete and verified."""
    runner.emu.cdn_rate = 1_000_000
    tasks = [runner.emu.add_task(previews=1, options={}) for _ in range(8)]
    config = configure(runner, pg_url, "solo", concurrency=2)
    process = spawn(runner, config, *tasks)
    try:
        wait_for(lambda: archived(pg_url) >= 1, "a task archived")
        pg_cluster.restart("fast")
    except BaseException:
        kill(process)
        raise
    code, _, err = finish(process)
    assert code in (0, 74), err
    if code == 74:
        assert err.strip().count("\n") == 0 and "catalog 127.0.0.1:" in err
    runner.emu.cdn_rate = None
    code, _, err = finish(spawn(runner, config, *tasks))
    assert code == 0, err
    assert sql(pg_url, "SELECT count(*) FROM tasks WHERE state = 'archived'") == [(8,)]
    assert_archive_whole(runner, pg_url)
    assert verify(runner, config).returncode == 0


def test_catalog_copy_then_a_rerun_through_postgres_makes_no_request(
    runner: Runner, pg_url: str
) -> None:
    """An archive made with SQLite, copied: a run through PostgreSQL skips it all, no request."""
    tasks = [runner.emu.add_task(previews=1) for _ in range(3)]
    assert runner.run(*tasks).code == 0
    copied = runner.run("--to", pg_url, command="catalog copy", report=False)
    assert copied.code == 0, copied.err
    assert "3 tasks" in copied.out
    runner.emu.clear_requests()
    config = configure(runner, pg_url, "new-host")
    code, out, err = finish(spawn(runner, config, *tasks))
    assert code == 0, err
    assert "3 skipped" in out
    assert runner.emu.requests == []


def test_status_list_verify_repair_and_gallery_on_a_shared_catalog(
    runner: Runner, pg_url: str
) -> None:
    """Two hosts' runs, then status per host (text and JSON), list, verify, verify --repair
    after a file is lost, and the gallery: all through PostgreSQL."""
    tasks = [runner.emu.add_task(previews=1) for _ in range(3)]
    first, second = configure(runner, pg_url, "alpha"), configure(runner, pg_url, "beta")
    assert runner.run(*tasks[:2], "-c", str(first)).code == 0
    assert runner.run(tasks[2], "-c", str(second)).code == 0
    status = runner.run("-c", str(first), command="status", report=False)
    assert status.code == 0, status.err
    hosts = [line for line in status.out.splitlines() if line.startswith("host ")]
    assert len(hosts) == 2 and hosts[0].startswith("host alpha: last run ")
    assert all(line.endswith("holds 0 claim(s) now") for line in hosts)
    doc = json.loads(runner.run("-c", str(first), "--json", command="status", report=False).out)
    assert [h["host"] for h in doc["hosts"]] == ["alpha", "beta"]
    assert doc["hosts"][1]["last_run"]["summary"]["archived"] == 1
    assert doc["tasks"]["archived"] == 3 and doc["catalog"].startswith("postgresql://127.0.0.1:")
    nothing = runner.run("-c", str(first), command="list", report=False)
    assert nothing.code == 0 and nothing.err == "0 tasks: 0 to fetch, 0 to skip\n"  # all done
    listed = runner.run(*tasks, "-c", str(first), command="list", report=False)
    assert listed.code == 0 and listed.out.count("skip ") == 3
    lost = next(p for p in runner.final_files() if p.suffix == ".mp4")
    lost.unlink()
    checked = runner.run("-c", str(first), command="verify", report=False)
    assert checked.code == 1 and str(lost.relative_to(runner.root)) in checked.out
    repaired = runner.run("-c", str(second), "--repair", command="verify", report=False)
    assert repaired.code == 0, repaired.out + repaired.err
    assert lost.is_file()
    assert_archive_whole(runner, pg_url)
    built = runner.run("-c", str(first), command="gallery", report=False)
    assert built.code == 0 and "gallery: 3 tasks" in built.out


def test_bucket_archive_with_a_shared_catalog(bucket_runner: BucketRunner, pg_url: str) -> None:
    """Two runs into one bucket through PostgreSQL: each task stored once, no catalog copy in
    the bucket, no upload left open, both staging folders empty at the end."""
    emu = bucket_runner.emu
    tasks = [emu.add_task(previews=1, options={}) for _ in range(6)]
    endpoint = bucket_runner.endpoint_url
    configs = [configure(bucket_runner, pg_url, h, s3_endpoint_url=endpoint) for h in ("a", "b")]
    processes = [spawn(bucket_runner, c, *tasks) for c in configs]
    ended = [finish(p) for p in processes]
    assert [code for code, _, _ in ended] == [0, 0], [err for _, _, err in ended]
    assert retrievals(bucket_runner) == Counter({t.rsplit("/", 1)[-1]: 1 for t in tasks})
    area, state = bucket_runner.area, bucket_runner.state_home
    assert area is not None and state is not None
    keys = set(area.objects())
    assert "catalog.sqlite3" not in keys
    assert sum(k.endswith(".mp4") for k in keys) == 6
    assert area.uploads() == []
    assert [p for p in state.rglob("staging/**/*") if p.is_file()] == []
    assert not list(state.rglob("catalog.sqlite3"))
