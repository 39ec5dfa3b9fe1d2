"""--metrics: a Prometheus text file, parsed with prometheus_client's own parser, whose numbers
equal the report's, written on every exit path; and a report that always says the exit code
the process ends with, also when the catalog's copy cannot be stored."""

from __future__ import annotations

import asyncio
import fcntl
import time
from collections import Counter
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from archiver.catalog import Access, open_catalog, sqlite_testing
from archiver.config import Config
from archiver.ledger import Ledger
from archiver.model import State, TaskOutcome
from archiver.testing.s3proxy import FaultProxy

from .bucketing import BucketRunner
from .conftest import Result, Runner

MISSING = "user:1234-runwayml:someone@example.com-task:00000000-0000-4000-8000-000000000000"
FULL = ["size", "sha256", "media"]
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(path: Path) -> Samples:
    """Every sample of the file, by name and labels (the `archive` label left out), checking
    that each family is a gauge with help text."""
    found: Samples = {}
    for family in text_string_to_metric_families(path.read_text()):
        assert family.name.startswith("runway_archiver_") and family.type == "gauge"
        assert family.documentation
        for sample in family.samples:
            labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "archive"))
            found[(sample.name.removeprefix("runway_archiver_"), labels)] = sample.value
    return found


def by_label(samples: Samples, name: str, label: str) -> dict[str, float]:
    return {dict(k[1])[label]: v for k, v in samples.items() if k[0] == name}


def test_the_metrics_equal_the_report(runner: Runner) -> None:
    """A run with every outcome and one retry: tasks by outcome, files and bytes stored,
    retries and the exit code equal the report's; the archive's totals equal the catalog's."""
    emu = runner.emu
    done = [emu.add_task(previews=1) for _ in range(2)]
    failed, pending = emu.add_task("FAILED"), emu.add_task("RUNNING")
    emu.api_fault(done[0], status=503)
    metrics = runner.root.parent / "archiver.prom"
    began = time.time()
    result = runner.run(*done, failed, pending, MISSING, "--metrics", str(metrics))
    assert result.code == 1 and result.report is not None
    samples = parse(metrics)
    assert by_label(samples, "last_run_tasks", "outcome") == result.report["summary"]
    stored = [f for t in result.report["tasks"] for f in t["files"] if f["verified"] == FULL]
    assert len(stored) == 7  # two videos, two previews, three inputs
    assert samples[("last_run_archived_files", ())] == len(stored)
    assert samples[("last_run_archived_bytes", ())] == sum(f["bytes"] for f in stored)
    assert samples[("last_run_retries", ())] == result.report["retries"] == 1
    assert samples[("last_run_exit_code", ())] == result.report["exit_code"] == 1
    start, end = (
        samples[("last_run_start_time_seconds", ())],
        samples[("last_run_end_time_seconds", ())],
    )
    assert began <= start <= end <= time.time()
    assert samples[("last_run_duration_seconds", ())] == pytest.approx(end - start)
    held = runner.catalog()
    states = Counter(str(row.state) for row in held.tasks.values())
    assert by_label(samples, "archive_tasks", "state") == states
    files, size = len(held.files), sum(f.size for _, f in held.files)
    assert (samples[("archive_files", ())], samples[("archive_bytes", ())]) == (files, size)
    assert f'archive="{runner.root}"' in metrics.read_text()


def test_metrics_file_from_the_config_and_on_an_account_stop(runner: Runner) -> None:
    """`metrics_file` in the config works like --metrics; a run stopped by a 402 writes it
    with exit code 3, as its report says."""
    metrics = runner.root.parent / "from-config.prom"
    runner.configure(metrics_file=str(metrics))
    task = runner.emu.add_task(previews=0)
    assert runner.run(task).code == 0
    assert parse(metrics)[("last_run_tasks", (("outcome", "archived"),))] == 1
    runner.emu.account_trouble(402)
    result = runner.run(runner.emu.add_task(previews=0))
    assert result.code == 3 and result.report is not None
    samples = parse(metrics)
    assert samples[("last_run_exit_code", ())] == result.report["exit_code"] == 3
    assert by_label(samples, "archive_tasks", "state")["archived"] == 1


def test_a_refused_run_writes_its_metrics_too(runner: Runner) -> None:
    """Another run holding the lock: exit 75, and the metrics file says 75 (no archive totals:
    the archive was never opened)."""
    metrics = runner.root.parent / "locked.prom"
    assert runner.run(runner.emu.add_task(previews=0)).code == 0
    with open(runner.root / ".runway-archiver.lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        result = runner.run(runner.emu.add_task(previews=0), "--metrics", str(metrics))
    assert result.code == 75 and result.report is not None and result.report["exit_code"] == 75
    samples = parse(metrics)
    assert samples[("last_run_exit_code", ())] == 75
    assert not any(name.startswith("archive_") for name, _ in samples)


def test_a_metrics_file_in_no_folder_is_refused_before_any_request(runner: Runner) -> None:
    """--metrics into a folder that does not exist: exit 2 naming it, no request made."""
    task = runner.emu.add_task(previews=0)
    result = runner.run(task, "--metrics", str(runner.root.parent / "nope" / "m.prom"))
    assert result.code == 2 and "--metrics" not in result.err
    assert "metrics_file" in result.err and "no folder" in result.err
    assert runner.emu.requests == []


def test_metrics_that_cannot_be_written_cost_a_warning_not_the_exit_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Closing a run whose metrics folder vanished: one warning line; the report and the run
    record still say the run's own exit code."""

    async def close() -> None:
        async with open_catalog(Config(output_dir=tmp_path), Access.CREATE) as catalog:
            ledger = Ledger(
                catalog=catalog, run_id=await catalog.begin_run(now="2025-01-01T00:00:00+00:00"),
                archive=str(tmp_path), report_path=tmp_path / "report.json",
                metrics_path=tmp_path / "gone" / "m.prom",
                outcomes=[TaskOutcome(MISSING, State.PENDING, "RUNNING")],
            )  # fmt: skip
            await ledger.close(0, None)

    asyncio.run(close())
    err = capsys.readouterr().err
    assert err.startswith("warning: metrics not written: ") and len(err.splitlines()) == 1
    assert '"exit_code": 0' in (tmp_path / "report.json").read_text()
    held = sqlite_testing.read(tmp_path / "catalog.sqlite3")
    assert held.runs == 1 and held.last_run is not None and held.last_run.exit_code == 0


def run_record(runner: BucketRunner) -> sqlite_testing.Contents:
    assert runner.state_home is not None
    (path,) = runner.state_home.rglob("catalog.sqlite3")
    return sqlite_testing.read(path)


def test_a_failing_catalog_copy_upload_leaves_a_report_saying_74(
    bucket_runner: BucketRunner, proxy: FaultProxy
) -> None:
    """The store refusing the catalog's copy after every retry ends the run with 74: the
    report, the metrics and the run record say 74 and why; the next run stores the copy."""
    bucket_runner.endpoint_url = proxy.url
    bucket_runner.configure()
    task = bucket_runner.emu.add_task("FAILED", options={})  # a sidecar: one PUT, no multipart
    proxy.slow_down("CreateMultipartUpload", 100)  # so only the catalog's copy is refused
    metrics = bucket_runner.root.parent / "bucket.prom"
    result: Result = bucket_runner.run(task, "--metrics", str(metrics))
    assert result.code == 74, result.err
    assert result.report is not None and result.report["exit_code"] == 74
    assert "catalog" in result.report["stopped"]
    assert result.err.splitlines()[-1] == f"runway-archiver: {result.report['stopped']}"
    assert result.states() == {task: "failed"}
    assert parse(metrics)[("last_run_exit_code", ())] == 74
    held = run_record(bucket_runner)
    assert held.runs == 1 and held.last_run is not None and held.last_run.exit_code == 74
    assert proxy.answered["CreateMultipartUpload 503"] >= 1

    proxy.calm()
    again = bucket_runner.run(task, "--metrics", str(metrics))
    assert again.code == 0 and again.report is not None and again.report["exit_code"] == 0
    assert parse(metrics)[("last_run_exit_code", ())] == 0
    assert bucket_runner.area is not None and "catalog.sqlite3" in bucket_runner.area.objects()
