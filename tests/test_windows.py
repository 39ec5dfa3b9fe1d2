"""`run --all` and `list --all` over every account at useapi, each listed per status when its
window is full; what the windows cannot reach is said; the accounts answer is never kept."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import pytest

from archiver.testing import ACCOUNTS, LISTING, ArtifactSpec, Emulator
from archiver.testing.accounts import JWT, PASSWORD
from archiver.testing.tasks import EMAIL, timestamp

from .conftest import Runner
from .helpers import listing_requests, retrieved, run_process

TINY = [ArtifactSpec(video=None, image=(16, 16), previews=0)]
START = datetime(2022, 1, 1, tzinfo=UTC)
WINDOW = 2000
FILTERS = ("PENDING", "RUNNING", "THROTTLED", "SUCCEEDED", "FAILED")
FULL = "the window is full: older tasks of this account can only be archived by id"
OTHER = "other@example.com"


def seed_account(
    emu: Emulator, email: str, mix: Mapping[str, int], *, media: bool = False
) -> list[tuple[str, str]]:
    """(task id, status) of tasks of `email`, oldest first, their statuses interleaved over
    time by `mix`; without `media` a SUCCEEDED task has no artifacts (listing-only tests)."""
    left = dict(mix)
    order: list[str] = []
    while any(left.values()):
        for status in mix:
            if left[status]:
                order.append(status)
                left[status] -= 1
    return [
        (
            emu.add_task(
                status,
                email=email,
                name=None,
                options={},
                artifacts=TINY if media else [],
                created_at=timestamp(START + timedelta(minutes=n)),
            ),
            status,
        )
        for n, status in enumerate(order)
    ]


def reachable(tasks: list[tuple[str, str]]) -> set[str]:
    """What the windows reach: the newest 2000, and the newest 2000 of each status filter."""
    newest = tasks[::-1]
    found = {t for t, _ in newest[:WINDOW]}
    for status in FILTERS:
        found.update([t for t, s in newest if s == status][:WINDOW])
    return found


MIX = {"SUCCEEDED": 2600, "FAILED": 1200, "CANCELLED": 600, "PENDING": 200, "RUNNING": 200,
       "THROTTLED": 200}  # fmt: skip


def test_two_accounts_of_5000_reach_the_newest_2000_of_each_status(runner: Runner) -> None:
    """`list --all` over two accounts of 5,000 tasks: each full window is listed again per
    status, every task those windows hold is planned once, and each account's note says
    which older tasks it could not reach; `run --all --dry-run` plans the same."""
    mine = seed_account(runner.emu, EMAIL, MIX)
    theirs = seed_account(runner.emu, OTHER, MIX)
    result = runner.run("--all", "--json", command="list")
    assert result.code == 0, result.err
    doc = json.loads(result.out)
    planned = [t["task_id"] for t in doc["tasks"]]
    assert len(planned) == len(set(planned))
    assert set(planned) == reachable(mine) | reachable(theirs)
    # 600 SUCCEEDED and the older CANCELLED of each account are out of reach.
    unreached = {t for t, s in mine + theirs if t not in set(planned)}
    assert {s for t, s in mine + theirs if t in unreached} == {"SUCCEEDED", "CANCELLED"}
    assert sum(s == "SUCCEEDED" for t, s in mine if t in unreached) == 600

    # Per account: 2 pages unfiltered, 1 per small status, 2 for SUCCEEDED and for FAILED.
    assert len(listing_requests(runner.emu)) == 2 * 9
    listing = doc["listing"]
    assert listing["accounts"] == sorted([EMAIL, OTHER]) and listing["truncated"]
    assert [(u["email"], sorted(u["statuses"])) for u in listing["unreached"]] == [
        (EMAIL, ["CANCELLED", "SUCCEEDED"]),
        (OTHER, ["CANCELLED", "SUCCEEDED"]),
    ]
    oldest_succeeded = [t for t, s in mine if s == "SUCCEEDED"][-WINDOW]
    when = runner.emu.task_json(oldest_succeeded)["createdAt"][:19] + "Z"
    note = listing["unreached"][0]["note"]
    assert note.startswith(f"{EMAIL}: {FULL}") and f"SUCCEEDED created before {when}" in note

    dry = runner.run("--all", "--dry-run", report=False)
    assert dry.code == 0 and sorted(dry.out.split()[3::4]) == sorted(planned)
    notes = [line for line in dry.err.splitlines() if line.startswith("note: ")]
    assert notes == [f"note: {u['note']}" for u in listing["unreached"]]


def test_a_window_that_is_not_full_is_listed_once(runner: Runner) -> None:
    """An account under 2,000 tasks is one listing page, no per-status listing, no note."""
    seed_account(runner.emu, EMAIL, {"SUCCEEDED": 1500, "CANCELLED": 400})
    result = runner.run("--all", "--json", command="list")
    assert result.code == 0 and "note:" not in result.err
    assert len(json.loads(result.out)["tasks"]) == 1900
    assert [r.raw_path for r in listing_requests(runner.emu)] == [
        "/v1/runwayml/tasks/?offset=0&limit=1000&email=someone%40example.com",
        "/v1/runwayml/tasks/?offset=1000&limit=1000&email=someone%40example.com",
    ]


@pytest.mark.slow
def test_run_all_over_two_accounts_of_5000(runner: Runner) -> None:
    """A real `run --all` over two accounts of 5,000 tasks archives what the windows reach
    (each task retrieved once) and its summary and report say what they could not reach."""
    mix = {"RUNNING": 2500, "PENDING": 1000, "FAILED": 600, "CANCELLED": 500, "SUCCEEDED": 400}
    mine = seed_account(runner.emu, EMAIL, mix, media=True)
    theirs = seed_account(runner.emu, OTHER, mix, media=True)
    result = run_process(runner, "--all")
    assert result.code == 0, result.err
    expected = reachable(mine) | reachable(theirs)
    assert sorted(retrieved(runner.emu)) == sorted(expected)
    status = dict(mine + theirs)
    final = {"SUCCEEDED": "archived", "FAILED": "failed", "CANCELLED": "failed"}
    assert result.states() == {t: final.get(status[t], "pending") for t in expected}
    assert f"{EMAIL}: {FULL}" in result.out and f"{OTHER}: {FULL}" in result.out
    assert result.report is not None
    unreached = result.report["listing"]["unreached"]
    assert [sorted(u["statuses"]) for u in unreached] == [["CANCELLED", "RUNNING"]] * 2


def test_email_limits_the_run_to_those_accounts_without_asking_for_accounts(
    runner: Runner,
) -> None:
    """--email (repeatable) lists those accounts only, in that order; /accounts is not asked."""
    third = "third@example.com"
    ids = {e: runner.emu.add_task(artifacts=TINY, email=e) for e in (EMAIL, OTHER, third)}
    result = runner.run("--all", "--email", third, "--email", OTHER)
    assert result.code == 0, result.err
    assert result.states() == {ids[third]: "archived", ids[OTHER]: "archived"}
    api = [r.raw_path for r in runner.emu.requests if r.origin == "api"]
    assert not any(p.startswith("/v1/runwayml/accounts") for p in api)
    assert [p.rpartition("email=")[2] for p in api if "email=" in p] == [
        "third%40example.com",
        "other%40example.com",
    ]


def test_the_accounts_answer_is_never_shown_or_stored(runner: Runner) -> None:
    """Only the emails of /runwayml/accounts are used: its password and token appear in no
    output, report, catalog or file of the archive."""
    task = runner.emu.add_task(artifacts=TINY, email=OTHER)
    result = runner.run("--all", "-v")
    assert result.states() == {task: "archived"}
    report = (runner.root.parent / "report.json").read_text()
    listed = runner.run("--all", "--json", command="list")
    everything = result.out + result.err + listed.out + listed.err + report
    for path in runner.root.rglob("*"):
        if path.is_file():
            everything += path.read_bytes().decode("latin-1")
    assert PASSWORD not in everything and JWT not in everything


def test_no_account_at_useapi_is_one_error_and_the_known_work_still_runs(runner: Runner) -> None:
    """/accounts answering 404 (no account configured): one error line naming it, exit 1, and
    the archive's unfinished tasks are still fetched."""
    pending = runner.emu.add_task("PENDING", artifacts=TINY)
    assert runner.run("--all").states() == {pending: "pending"}
    runner.emu.set_status(pending, "SUCCEEDED")
    runner.emu.account_emails = []
    result = runner.run("--all")
    assert result.code == 1
    assert result.err.splitlines() == [
        "error: accounts at useapi: the API answered HTTP 404: Configuration not found. To create"
        " configuration use POST /accounts/email; archiving the 0 tasks found so far"
    ]
    assert result.states() == {pending: "archived"}


@pytest.mark.parametrize(("status", "only"), [(402, LISTING), (596, ACCOUNTS), (402, ACCOUNTS)])
def test_account_trouble_on_the_listing_or_accounts_ends_run_and_list(
    runner: Runner, status: int, only: str
) -> None:
    """402/596 on the listing or on /accounts: `run --all` and `list --all` end with one line
    and exit 3, no retrieve made, nothing marked; after the fix the run archives all."""
    tasks = [runner.emu.add_task(artifacts=TINY) for _ in range(3)]
    runner.emu.account_trouble(status, only=only)
    result = runner.run("--all", "-q")
    assert result.code == 3 and result.out == ""
    (line,) = result.err.splitlines()
    assert line.startswith(f"runway-archiver: useapi.net answered HTTP {status}")
    assert retrieved(runner.emu) == []
    assert result.report is not None and result.report["exit_code"] == 3
    assert runner.catalog().tasks == {}
    listed = runner.run("--all", command="list")
    assert listed.code == 3 and len(listed.err.splitlines()) == 1

    runner.emu.account_trouble(None)
    again = runner.run("--all")
    assert again.code == 0 and again.states() == dict.fromkeys(tasks[::-1], "archived")
