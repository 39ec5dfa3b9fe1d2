"""The --report JSON made from a spool of task entries: one task at a time, held nowhere whole."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from archiver import report
from archiver.model import State, TaskOutcome


def test_spooled_report_is_one_json_document(tmp_path: Path) -> None:
    """Entries spooled as tasks end, then written whole: what did not finish, counts, code."""
    path = tmp_path / "last-run.json"
    with report.Spool(path) as spool:
        spool.add(TaskOutcome("t1", State.ERROR, "FAILED", error="HTTP 404"))
        spool.add(TaskOutcome("t2", State.PENDING, "RUNNING"))
        assert not path.exists()  # nothing in place until the run writes it
        spool.unfinished(iter(["t3", "t4"]))
        counts = report.summary([TaskOutcome("t1", State.ERROR), TaskOutcome("t2", State.PENDING)])
        spool.write(counts, code=1, stopped="stopped by SIGTERM", retries=2)
        doc = json.loads(path.read_text("utf-8"))
    assert [(t["task_id"], t["state"], t["error"]) for t in doc["tasks"]] == [
        ("t1", "error", "HTTP 404"),
        ("t2", "pending", None),
    ]
    assert doc["unfinished"] == ["t3", "t4"]
    assert doc["summary"] == {
        "archived": 0, "skipped": 0, "pending": 1, "failed": 0, "error": 1, "gone": 0,
    }  # fmt: skip
    assert (doc["exit_code"], doc["stopped"], doc["retries"]) == (1, "stopped by SIGTERM", 2)
    assert [p.name for p in tmp_path.iterdir()] == ["last-run.json"]  # the spool has no name


def test_written_again_with_another_exit_code(tmp_path: Path) -> None:
    """A report written again (the run's end changed its exit code) holds the same tasks."""
    path = tmp_path / "r.json"
    with report.Spool(path) as spool:
        spool.add(TaskOutcome("t1", State.ARCHIVED, "SUCCEEDED"))
        counts = report.summary([TaskOutcome("t1", State.ARCHIVED)])
        spool.write(counts, code=0)
        spool.write(counts, code=74, stopped="the catalog copy was not stored")
    doc = json.loads(path.read_text("utf-8"))
    assert doc["exit_code"] == 74 and [t["task_id"] for t in doc["tasks"]] == ["t1"]


def test_empty_report(tmp_path: Path) -> None:
    """A run that ended before any task still writes a whole document."""
    path = tmp_path / "r.json"
    report.write(path, [], report.summary([]), code=2, stopped="no token")
    doc = json.loads(path.read_text("utf-8"))
    assert (doc["tasks"], doc["unfinished"], doc["exit_code"]) == ([], [], 2)


def test_stdout_report(capsys: pytest.CaptureFixture[str]) -> None:
    """`--report -`: the same document on stdout."""
    outcome = TaskOutcome("t1", State.FAILED, "FAILED", error="status FAILED")
    report.write(report.STDOUT, [outcome], report.summary([outcome]), code=0)
    doc = json.loads(capsys.readouterr().out)
    assert doc["tasks"][0]["state"] == "failed" and doc["summary"]["failed"] == 1
