"""`scripts/bench --hosts`: 1, 2 and 3 archiver processes at once against one PostgreSQL catalog
and one folder, on the WAN profile (the CDN paced per connection, so runs add throughput), and
the catalog's own cost per task, counted by the server (pg_stat_statements): its statements,
claims, renewals and rows, and the time the server spent on them.
"""

from __future__ import annotations

import sys
from typing import Any

import psycopg

from archiver.testing.postgres import Cluster

from .disk import PeakUse, gb
from .profiles import Options, enough_disk, log, standard_spec
from .report import Report
from .rows import Bench, RunResult
from .server import Emulator

PROCESSES = (1, 2, 3)
# Connections per process: what one host's own link carries. On one 2-core machine the three
# "hosts" share the CPU; a host's bandwidth is what the profile gives each its own.
HOST_CONCURRENCY = 4
# Every process gets the whole list: the catalog shares it out (what cron on 3 hosts does).
LAUNCH = """\
import subprocess, sys
n, cmd = int(sys.argv[1]), sys.argv[2:]
procs = [subprocess.Popen(cmd) for _ in range(n)]
sys.exit(max(p.wait() for p in procs))
"""
# Statement kinds by how their text starts (the engine's own SQL, archiver/catalog/postgres*).
KINDS = {
    "claim": "WITH c AS MATERIALIZED",
    "renew": "UPDATE tasks SET claim_expires",
    "record": "SELECT error, failures, claim_token",
}


def hosts_profile(opt: Options, concurrency: int = HOST_CONCURRENCY) -> Report | None:
    small = opt.media == "small"
    name = f"several processes, one PostgreSQL catalog, WAN-like, {opt.tasks} tasks"
    if not enough_disk(opt, opt.tasks * (0.09e6 if small else 10.6e6) * 1.2 + 1e9, name):
        return None
    spec = standard_spec(opt.tasks, small=small, cdn_rate=8_000_000, api_delay=0.15)
    work = opt.work / "profile"
    work.mkdir(parents=True, exist_ok=True)
    settings = ("shared_preload_libraries=pg_stat_statements", "pg_stat_statements.track=all")
    with (
        PeakUse(opt.work) as disk,
        Emulator(spec, work, opt.cache) as emu,
        Cluster.running(settings=settings) as cluster,
    ):
        bench = Bench(emu, work, opt.cores, opt.timeout or 300 + opt.tasks * 0.5)
        report = Report(
            f"== {name}: {bench.expect_bytes / 1e6:,.1f} MB in {bench.expect_files} files; CDN "
            f"8 MB/s per connection, API delay 0.15 s\n   medians of {opt.repeat}, "
            f"{opt.cores} cores; every process is given the whole list, --concurrency "
            f"{concurrency} each",
            {"spec": spec.__dict__, "bytes": bench.expect_bytes, "files": bench.expect_files},
        )
        costs: dict[int, list[dict[str, float]]] = {}
        for rep in range(opt.repeat):
            for n in PROCESSES:
                result, cost = _one(bench, cluster, n, rep, concurrency)
                log(f"[{rep + 1}/{opt.repeat}] {result.row}: {result.wall:.2f} s; {cost}")
                report.add(result)
                costs.setdefault(n, []).append(cost)
        _lines(report, costs, opt.tasks)
    report.note(f"disk: this profile used {gb(disk.used)} at peak")
    return report


def _one(
    bench: Bench, cluster: Cluster, n: int, rep: int, concurrency: int
) -> tuple[RunResult, dict[str, float]]:
    url = cluster.create_database(f"bench_{n}_{rep}")
    _reset(cluster, url)
    out = bench.work / "out-archiver"
    cmd = [sys.executable, "-c", LAUNCH, str(n), sys.executable, "-m", "archiver", "run"]
    cmd += ["-i", str(bench.emu.ids_file), "-o", str(out), "--no-progress", "--catalog", url]
    cmd += ["--concurrency", str(concurrency)]
    row = f"{n} process{'es' if n > 1 else ''}"
    result = bench._measure(row, cmd, out, media=out)
    if (result.api, result.cdn) != (bench.emu.spec.tasks, bench.expect_files):
        log(f"NOTE: {row}: {result.api} API and {result.cdn} CDN requests")
    cost = _cost(cluster, url)
    cluster.drop_database(url.rsplit("/", 1)[1])
    return result, cost


def _reset(cluster: Cluster, url: str) -> None:
    # The statistics are the cluster's; their view lives in the admin database, not the catalog's.
    with psycopg.connect(cluster.admin_url(), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        conn.execute("SELECT pg_stat_statements_reset()")


def _cost(cluster: Cluster, url: str) -> dict[str, float]:
    """What the catalog cost the server during the run: statements, time, rows, by kind."""
    db = url.rsplit("/", 1)[1]
    with psycopg.connect(cluster.admin_url(), autocommit=True) as conn:
        rows: list[Any] = conn.execute(
            "SELECT s.query, s.calls, s.total_exec_time, s.rows FROM pg_stat_statements s"
            " JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = %s"
            " AND s.query NOT ILIKE '%%pg_stat_statements%%'",
            (db,),
        ).fetchall()
    cost = {"statements": 0.0, "ms": 0.0, "rows": 0.0}
    for query, calls, ms, count in rows:
        if query.strip().upper() in ("BEGIN", "COMMIT", "ROLLBACK"):
            continue  # part of a transaction counted by its statements
        cost["statements"] += calls
        cost["ms"] += ms
        cost["rows"] += count
        for kind, start in KINDS.items():
            if query.lstrip().startswith(start):
                cost[kind] = cost.get(kind, 0.0) + calls
    return cost


def _lines(report: Report, costs: dict[int, list[dict[str, float]]], tasks: int) -> None:
    one = report.median("1 process", "wall")
    for n in PROCESSES[1:]:
        row = f"{n} processes"
        report.ratio(
            f"speedup {n}",
            f"{n} processes: throughput x 1 process",
            one / report.median(row, "wall"),
        )
    for n, runs in costs.items():
        mid = sorted(runs, key=lambda c: c["ms"])[len(runs) // 2]
        report.note(
            f"catalog, {n} process(es): per task {mid['statements'] / tasks:.1f} statements "
            f"({mid.get('claim', 0) / tasks:.2f} claims, {mid.get('renew', 0) / tasks:.2f} "
            f"renewals, {mid.get('record', 0) / tasks:.2f} final rows), "
            f"{mid['rows'] / tasks:.1f} rows, {mid['ms'] / tasks:.2f} ms of server time"
        )
