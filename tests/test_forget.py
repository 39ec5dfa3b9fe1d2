"""A task that answers 404 run after run is gone at source: reported once, then counted apart;
`forget` drops tasks from what runs try, and never deletes a file."""

from __future__ import annotations

import hashlib
from pathlib import Path

from archiver.testing import ArtifactSpec

from .conftest import Runner

TINY = [ArtifactSpec(video=None, image=(16, 16), previews=0)]
MISSING = "user:1234-runwayml:someone@example.com-task:00000000-0000-4000-8000-000000000000"
NOT_FOUND = "the API answered HTTP 404: Not found."
GONE = "gone at source (forget it with `runway-archiver forget --gone`)"
FORGOTTEN = "forgotten (`runway-archiver forget`): not fetched; --refresh fetches it"


def retrieves(runner: Runner, task_id: str) -> int:
    uuid = task_id.rsplit(":", 1)[1]
    return sum(1 for r in runner.emu.requests if r.origin == "api" and r.raw_path.endswith(uuid))


def tree(root: Path) -> dict[str, str]:
    """Every file of the archive but the catalog (and its lock), by path, with its sha256."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.startswith(("catalog.sqlite3", ".runway-archiver"))
    }


def test_404_on_three_runs_in_a_row_is_reported_once_then_counted_as_gone(
    runner: Runner,
) -> None:
    """Runs 1 and 2: an error (exit 1); run 3: the same error saying it is gone at source
    (exit 1); run 4 and later, also while backing off: state `gone`, no line, exit 0."""
    runner.configure(retry_backoff=0)  # tried every run, so three runs are three in a row
    good = runner.emu.add_task(artifacts=TINY)
    lines = []
    for _ in range(3):
        result = runner.run(good, MISSING)
        assert result.code == 1 and result.task(MISSING)["state"] == "error"
        lines.append([line for line in result.err.splitlines() if MISSING in line])
    assert lines == [
        [f"error: {MISSING}: {NOT_FOUND}"],
        [f"error: {MISSING}: {NOT_FOUND}"],
        [f"error: {MISSING}: {NOT_FOUND}; {GONE}"],
    ]
    fourth = runner.run(good, MISSING)
    assert fourth.code == 0 and fourth.err == ""
    assert fourth.states() == {good: "skipped", MISSING: "gone"}
    assert fourth.report is not None and fourth.report["summary"]["gone"] == 1
    assert retrieves(runner, MISSING) == 4

    runner.configure()  # back-off again: the fifth run holds it, still counted as gone
    fifth = runner.run(good, MISSING, "-q")
    assert (fifth.code, fifth.out, fifth.err) == (0, "", "")
    assert fifth.states()[MISSING] == "gone" and retrieves(runner, MISSING) == 4
    plan = runner.run(MISSING, command="list")
    assert plan.out.split()[:2] == ["hold", "gone"]


def test_forget_gone_drops_the_task_and_deletes_nothing(runner: Runner) -> None:
    """`forget --gone` forgets every task whose retrieve last answered 404/410; later runs make
    no request for it (a note when named), `list` shows it forgotten; --refresh fetches it;
    no file of the archive changes."""
    good = runner.emu.add_task(artifacts=TINY)
    assert runner.run(good, MISSING).code == 1
    before = tree(runner.root)
    forgot = runner.run("--gone", command="forget")
    assert forgot.code == 0, forgot.err
    assert forgot.out.splitlines() == [
        f"forgot {MISSING}",
        "forgot 1 task(s); no file was deleted",
    ]
    assert tree(runner.root) == before
    runner.emu.clear_requests()
    again = runner.run(good, MISSING)
    assert again.code == 0 and retrieves(runner, MISSING) == 0
    assert again.err.splitlines() == [f"note: {MISSING}: {FORGOTTEN}"]
    assert again.states() == {good: "skipped", MISSING: "skipped"}
    plan = runner.run(MISSING, command="list")
    assert plan.out.split()[:2] == ["skip", "forgotten"]
    status = runner.run(command="status")
    assert f"forgotten  {MISSING}  {NOT_FOUND}" in status.out.splitlines()
    refreshed = runner.run(MISSING, "--refresh")
    assert refreshed.code == 1 and retrieves(runner, MISSING) == 1
    assert refreshed.task(MISSING)["error"] == NOT_FOUND


def test_an_archived_task_is_forgotten_only_with_archived(runner: Runner) -> None:
    """`forget ID` of an archived task: exit 1, one line, nothing changed; with --archived it is
    forgotten, its files stay, and `run --all` no longer asks for it."""
    done = runner.emu.add_task(artifacts=TINY)
    assert runner.run(done).code == 0
    before = tree(runner.root)
    refused = runner.run(done, command="forget")
    assert refused.code == 1
    assert refused.err.splitlines() == [
        f"error: {done}: archived, not forgotten (--archived forgets it too; no file is deleted)"
    ]
    assert not runner.catalog().tasks[done].forgotten
    assert runner.run(done, "--archived", "-q", command="forget").code == 0
    assert tree(runner.root) == before
    runner.emu.clear_requests()
    listed = runner.run("--all")
    assert listed.code == 0 and listed.states() == {}
    assert retrieves(runner, done) == 0
    assert runner.run("--all", command="list").out == ""


def test_forgotten_unknown_and_unfinished_ids_are_left_out(runner: Runner) -> None:
    """An id never fetched can be forgotten (a typo in a list): `-i` names it as a note; a
    pending task forgotten is no longer retried by `run --all`."""
    pending = runner.emu.add_task("RUNNING", artifacts=TINY)
    assert runner.run("--all").states() == {pending: "pending"}
    ids = runner.root.parent / "ids.txt"
    ids.write_text(f"{MISSING}\n")
    assert runner.run(pending, "-i", str(ids), "-q", command="forget").code == 0
    runner.emu.clear_requests()
    result = runner.run("--all", "-i", str(ids))
    assert result.code == 0 and result.states() == {MISSING: "skipped"}
    assert result.err.splitlines() == [f"note: {MISSING}: {FORGOTTEN}"]
    assert retrieves(runner, pending) == retrieves(runner, MISSING) == 0


def test_forget_needs_ids_or_gone(runner: Runner) -> None:
    """`forget` with nothing to forget is a usage error (exit 2) naming what it wants."""
    result = runner.run(command="forget")
    assert result.code == 2
    assert "no task ids given (arguments, -i FILE, -i - or --gone)" in result.err
