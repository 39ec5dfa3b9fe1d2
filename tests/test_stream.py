"""A run reads its list of ids as it goes, a batch at a time: what a stopped run never read is
still accounted for, in the order the list names it."""

from __future__ import annotations

from pathlib import Path

import pytest

from archiver import intake
from archiver.testing import ArtifactSpec

from .conftest import Runner
from .helpers import closed_port

BAD = "not-a-task-id"
TINY = [ArtifactSpec(video=None, image=(16, 16), previews=0)]  # one small image a task


def test_a_stopped_run_names_what_it_never_read(
    runner: Runner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Batches of two: the API unreachable at the first fetch stops the run; every id of the
    list is unfinished in list order, read or not, and its bad line an error."""
    monkeypatch.setattr(intake, "BATCH", 2)
    ids = [runner.emu.add_task(artifacts=TINY) for _ in range(5)]
    listing = tmp_path / "ids.txt"
    listing.write_text("\n".join([*ids[:3], BAD, *ids[3:]]) + "\n")
    runner.configure(connect_timeout=0.2)
    runner.base_url = f"http://127.0.0.1:{closed_port()}/v1"
    result = runner.run("-i", str(listing))
    assert result.code == 1 and result.report is not None
    assert result.report["unfinished"] == ids
    assert [(t["task_id"], t["state"]) for t in result.report["tasks"]] == [(BAD, "error")]
    assert result.report["summary"]["error"] == 1
    assert runner.emu.requests == []


def test_a_long_list_runs_batch_after_batch(
    runner: Runner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Batches of two over five ids, one done already and one repeated: each archived once, the
    done one skipped without a request, the repeat dropped."""
    monkeypatch.setattr(intake, "BATCH", 2)
    ids = [runner.emu.add_task(artifacts=TINY) for _ in range(5)]
    assert runner.run(ids[2]).code == 0
    listing = tmp_path / "ids.txt"
    listing.write_text("\n".join([*ids, ids[0]]) + "\n")
    runner.emu.requests.clear()
    result = runner.run("-i", str(listing))
    assert result.code == 0, result.err
    assert result.states() == {
        **{t: "archived" for t in ids if t != ids[2]},
        ids[2]: "skipped",
    }
    fetched = [r for r in runner.emu.requests if r.origin == "api"]
    assert len(fetched) == 4
