"""`run --all`, `list` and `run --dry-run` against the emulator's listing, over real loopback."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from archiver import cli
from archiver.catalog import NOT_FETCHED, Access, open_catalog, sqlite_testing
from archiver.config import Config
from archiver.errors import ArchiverError
from archiver.testing import LISTING, ArtifactSpec, Emulator, Seen
from archiver.testing.tasks import EMAIL, timestamp

from .conftest import Runner
from .helpers import (
    LISTING_PATH,
    closed_port,
    kill,
    listing_requests,
    retrieved,
    run_process,
    wait_for,
)

ACCOUNTS_PATH = "/v1/runwayml/accounts"
TINY = [ArtifactSpec(video=None, image=(16, 16), previews=0)]
START = datetime(2023, 1, 1, tzinfo=UTC)


def cdn_requests(emu: Emulator) -> list[Seen]:
    return [r for r in emu.requests if r.origin == "cdn"]


def seed(emu: Emulator, count: int, *, first_day: int = 0) -> list[str]:
    """`count` tiny tasks a day apart from START + first_day, oldest first."""
    return [
        emu.add_task(
            artifacts=TINY, created_at=timestamp(START + timedelta(days=first_day + n)), name=None
        )
        for n in range(count)
    ]


@pytest.mark.slow
def test_all_over_an_account_of_2500(runner: Runner) -> None:
    """2,500 tasks: two pages reach the newest 2000, and the full window is listed again per
    status (no more reached here: all are SUCCEEDED); a pending one out of reach is fetched
    again; the summary says the window is full."""
    emu = runner.emu
    pending = emu.add_task("PENDING", artifacts=TINY, created_at=timestamp(START))
    first = runner.run("--all")
    assert first.states() == {pending: "pending"}
    assert sqlite_testing.listed_statuses(runner.catalog_path) == {pending: "PENDING"}

    # 2,500 newer tasks push it out of the listing's reach while it finishes.
    emu.set_status(pending, "SUCCEEDED")
    newer = seed(emu, 2500, first_day=1)
    emu.clear_requests()
    result = run_process(runner, "--all")
    assert result.code == 0, result.err
    pages = [
        *(("", offset) for offset in (0, 1000)),
        *((f"statuses={status}&", 0) for status in ("PENDING", "RUNNING", "THROTTLED")),
        *(("statuses=SUCCEEDED&", offset) for offset in (0, 1000)),
        ("statuses=FAILED&", 0),
    ]
    assert [r.raw_path for r in listing_requests(emu)] == [
        f"{LISTING_PATH}offset={offset}&limit=1000&{status}email=someone%40example.com"
        for status, offset in pages
    ]
    assert f"{EMAIL}: the window is full: older tasks of this account" in result.out
    reachable = newer[-2000:]
    assert result.states() == {**dict.fromkeys(reachable[::-1], "archived"), pending: "archived"}
    assert sorted(retrieved(emu)) == sorted([*reachable, pending])
    assert len(cdn_requests(emu)) == 2001
    assert (runner.root / result.task(pending)["sidecar"]).is_file()

    emu.clear_requests()
    again = run_process(runner, "--all")
    assert again.code == 0, again.err
    assert len(listing_requests(emu)) == len(emu.requests) - 1 == 8
    assert again.states() == dict.fromkeys(reachable[::-1], "skipped")


@pytest.mark.parametrize(("order", "pages"), [("newest", 1), ("oldest", 2), ("shuffled", 2)])
def test_since_stops_paging_only_when_newest_first(runner: Runner, order: str, pages: int) -> None:
    """--since ends paging at the first older entry when newest first; otherwise it filters."""
    ids = seed(runner.emu, 1200)
    runner.emu.listing_order = order
    since = (START + timedelta(days=1195)).date().isoformat()
    result = runner.run("--all", "--since", since)
    assert result.code == 0, result.err
    assert len(listing_requests(runner.emu)) == pages
    assert result.states() == dict.fromkeys(ids[1195:], "archived")
    assert sorted(retrieved(runner.emu)) == sorted(ids[1195:])


def test_since_accepts_an_age(runner: Runner) -> None:
    """--since 2d keeps tasks made in the last two days and drops older ones."""
    now = datetime.now(UTC)
    old = runner.emu.add_task(artifacts=TINY, created_at=timestamp(now - timedelta(days=3)))
    new = runner.emu.add_task(artifacts=TINY, created_at=timestamp(now - timedelta(hours=1)))
    result = runner.run("--all", "--since", "2d")
    assert result.states() == {new: "archived"}
    assert retrieved(runner.emu) == [new] and old not in result.out


def test_failed_page_ends_discovery_with_exit_1_and_keeps_what_was_found(runner: Runner) -> None:
    """Page two failing after its retries: exit 1 naming the offset; page one's tasks archived."""
    unreached = seed(runner.emu, 100)
    # Page one: mostly FAILED tasks (a sidecar each, nothing to download), and a few videos.
    failed = [runner.emu.add_task("FAILED") for _ in range(990)]
    done = seed(runner.emu, 10, first_day=100)
    runner.emu.api_fault(LISTING, status=503, skip=1, times=10)
    result = run_process(runner, "--all")
    assert result.code == 1
    assert [r.status for r in listing_requests(runner.emu)] == [200, 503, 503, 503]
    assert result.states() == {**dict.fromkeys(done, "archived"), **dict.fromkeys(failed, "failed")}
    assert set(retrieved(runner.emu)).isdisjoint(unreached)
    problems = [line for line in result.err.splitlines() if line.startswith("error:")]
    assert problems == [
        f"error: listing of someone@example.com at offset 1000:"
        f" {runner.emu.api_url}/runwayml/tasks/?…: HTTP 503;"
        " archiving the 1000 tasks found so far"
    ]


def test_malformed_entries_are_reported_by_position_and_skipped(runner: Runner) -> None:
    """Entries that name no task id are reported with their position; the good ones archive."""
    good = [runner.emu.add_task(artifacts=TINY) for _ in range(2)]
    entries = [
        {"taskId": good[0], "status": "SUCCEEDED"},
        42,
        {"taskId": None},
        {"taskId": "not a task id!", "status": "SUCCEEDED"},
        {"taskId": good[1], "status": 7, "createdAt": "yesterday"},
    ]
    runner.emu.api_fault(
        LISTING, status=200, body=json.dumps(entries).encode(),
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    result = runner.run("--all")
    assert result.code == 1
    assert result.err.splitlines() == [
        f"error: listing of {EMAIL}, entry 1: expected an object, got int: {'42'!r}",
        f"error: listing of {EMAIL}, entry 2: taskId: missing: {json.dumps(entries[2])!r}",
        f"error: listing of {EMAIL}, entry 3: taskId: not a task id:"
        f" {json.dumps(entries[3])[:80]!r}",
    ]
    assert result.report is not None and result.report["summary"]["error"] == 3
    assert {t: s for t, s in result.states().items() if t in good} == dict.fromkeys(
        good, "archived"
    )
    assert sorted(retrieved(runner.emu)) == sorted(good)


def test_all_and_given_ids_are_processed_once(runner: Runner) -> None:
    """Ids given with --all, listed or not, are each retrieved exactly once."""
    listed = [runner.emu.add_task(artifacts=TINY) for _ in range(2)]
    other = runner.emu.add_task(
        artifacts=TINY,
        task_id="user:1234-runwayml:other@example.com-task:0b7c6c59-3f0d-4c1e-9a43-6d2f1b0e5a11",
    )
    runner.emu.remove_task(listed[0])  # gone from the listing, and from the API
    kept = runner.emu.add_task(artifacts=TINY)
    result = runner.run("--all", kept, other, kept)
    assert result.code == 0, result.err
    assert sorted(retrieved(runner.emu)) == sorted([kept, other, listed[1]])
    assert sorted(result.states()) == sorted([kept, other, listed[1]])  # the report: as they end


def test_429_on_the_listing_pauses_the_api_lane(runner: Runner) -> None:
    """After a listing 429 with Retry-After: 1, no API request of any kind goes out for a second."""
    runner.configure(retry_max_delay=5)
    ids = [runner.emu.add_task(artifacts=TINY) for _ in range(3)]
    runner.emu.api_fault(LISTING, status=429, headers={"Retry-After": "1"})
    result = runner.run("--all")
    assert result.code == 0, result.err
    api = [r for r in runner.emu.requests if r.origin == "api"][1:]  # after the accounts
    assert api[0].status == 429 and api[1].raw_path == api[0].raw_path
    assert min(r.at for r in api[1:]) >= api[0].at + 1.0
    assert set(result.states()) == set(ids)


def test_email_picks_the_account_and_an_unknown_one_fails_cleanly(runner: Runner) -> None:
    """--email goes into the listing query; an account the API does not know is exit 1."""
    other = "user:1234-runwayml:other@example.com-task:0b7c6c59-3f0d-4c1e-9a43-6d2f1b0e5a11"
    runner.emu.add_task(artifacts=TINY)
    runner.emu.add_task(artifacts=TINY, task_id=other)
    result = runner.run("--all", "--email", "other@example.com")
    assert result.states() == {other: "archived"}
    assert listing_requests(runner.emu)[0].raw_path.endswith("&email=other%40example.com")
    missing = runner.run("--all", "--email", "nobody@example.com")
    assert missing.code == 1
    assert "listing of nobody@example.com at offset 0: the API answered HTTP 404" in missing.err
    assert "nobody@example.com" in missing.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--email", "a@b.c", "x"], "--email and --since work with --all only"),
        (["--all", "--since", "last tuesday"], "--since: expected a date (2024-08-01)"),
        (["--all", "--wait", "soon"], "--wait: expected a duration such as 90s, 30m"),
    ],
)
def test_bad_discovery_arguments_exit_2(runner: Runner, args: list[str], message: str) -> None:
    """Misused --email/--since/--wait: exit 2 with one line naming the flag, no request."""
    result = runner.run(*args)
    assert result.code == 2
    assert result.err.startswith(f"runway-archiver: {message}") and result.err.count("\n") == 1
    assert runner.emu.requests == []


def test_list_and_dry_run_make_no_retrieve_and_no_download(runner: Runner) -> None:
    """`list --all` and `run --all --dry-run` print the same plan from the listing alone."""
    done, new = runner.emu.add_task(artifacts=TINY), runner.emu.add_task("RUNNING")
    failed = runner.emu.add_task("FAILED")
    assert runner.run(done).code == 0
    runner.emu.clear_requests()
    listed = runner.run("--all", command="list")
    assert listed.code == 0, listed.err
    assert listed.out.splitlines() == [
        f"fetch  new        FAILED     {failed}",
        f"fetch  new        RUNNING    {new}",
        f"skip   archived   SUCCEEDED  {done}",
    ]
    assert listed.err == (
        "3 tasks: 2 to fetch, 1 to skip; the listing named 3 of 1 account(s) in 2 request(s)\n"
    )
    dry = runner.run("--all", "--dry-run", "--wait", "20m", report=False)
    assert (dry.code, dry.out, dry.err) == (0, listed.out, listed.err)
    assert len(runner.emu.requests) == 4 and cdn_requests(runner.emu) == []
    assert retrieved(runner.emu) == []
    assert list(runner.catalog().tasks) == [done]


def test_list_without_all_needs_no_token_and_no_network(runner: Runner) -> None:
    """`list ids` reads the catalog only: no token needed, no request made."""
    done = runner.emu.add_task(artifacts=TINY)
    assert runner.run(done).code == 0
    runner.emu.clear_requests()
    runner.monkeypatch.delenv("USEAPI_TOKEN")
    runner.capsys.readouterr()
    new = "user:1234-runwayml:someone@example.com-task:00000000-0000-4000-8000-000000000000"
    argv = ["list", "-o", str(runner.root), "-c", str(runner.config), done, new]
    assert cli.main(argv) == 0
    assert runner.capsys.readouterr().out.splitlines() == [
        f"skip   archived   -          {done}",
        f"fetch  new        -          {new}",
    ]
    assert runner.emu.requests == []


def test_list_json(runner: Runner) -> None:
    """`list --all --json` is one JSON document: each task's action, state and listed status."""
    task = runner.emu.add_task("PENDING", created_at="2024-08-01T10:00:00.000Z", name="a cat")
    result = runner.run("--all", "--json", command="list")
    assert result.code == 0
    doc = json.loads(result.out)
    assert doc["tasks"] == [
        {
            "task_id": task,
            "action": "fetch",
            "state": "new",
            "listed_status": "PENDING",
            "created_at": "2024-08-01T10:00:00+00:00",
            "name": "a cat",
        }
    ]
    assert doc["listing"] == {
        "requests": 2,
        "found": 1,
        "accounts": [EMAIL],
        "newest_first": True,
        "stopped_by_since": False,
        "truncated": False,
        "windows": [
            {
                "email": EMAIL,
                "status": None,
                "requests": 1,
                "entries": 1,
                "full": False,
                "oldest": "2024-08-01T10:00:00+00:00",
            }
        ],
        "unreached": [],
        "bad_entries": [],
        "errors": [],
    }


def test_found_ids_are_in_the_catalog_before_any_fetch(runner: Runner) -> None:
    """Killed before any retrieve answered: the listed ids are in the catalog, fetched next run."""
    ids = [runner.emu.add_task(artifacts=TINY) for _ in range(3)]
    runner.emu.api_fault(None, status=200, delay=60, skip=2, times=10)  # retrieves hang
    process = runner.spawn("--all")

    def remembered() -> bool:
        try:
            return len(runner.catalog().tasks) == 3
        except ArchiverError:  # not created yet by the child
            return False

    try:
        wait_for(remembered, "the listed ids in the catalog")
    finally:
        kill(process)
    rows = runner.catalog().tasks
    assert {t: (row.state, row.error) for t, row in rows.items()} == {
        t: ("pending", NOT_FETCHED) for t in ids
    }
    assert sqlite_testing.listed_statuses(runner.catalog_path) == dict.fromkeys(ids, "SUCCEEDED")

    runner.emu.clear_faults()
    runner.emu.api_fault(LISTING, status=503, times=10)  # and the listing is down next time
    result = runner.run("--all")
    assert result.code == 1
    assert result.states() == dict.fromkeys(ids, "archived")


def test_an_archive_of_schema_1_gains_the_listing_columns(tmp_path: Path) -> None:
    """A catalog made before discovery is migrated in place; its rows are kept."""
    path = tmp_path / "catalog.sqlite3"
    sqlite_testing.write_version_1(path, [("t", "archived", "SUCCEEDED", "d", None, "now")])

    async def migrated() -> dict[str, str]:
        async with open_catalog(Config(output_dir=tmp_path), Access.WRITE) as opened:
            await opened.remember_listed([("t", "SUCCEEDED"), ("u", "RUNNING")], now="later")
            return {r.task_id: r.state async for r in opened.tasks()}

    assert asyncio.run(migrated()) == {"t": "archived", "u": "pending"}
    assert sqlite_testing.schema_version(path) == sqlite_testing.SCHEMA_VERSION
    assert sqlite_testing.listed_statuses(path) == {"t": "SUCCEEDED", "u": "RUNNING"}


def test_list_shows_what_the_run_then_does(runner: Runner) -> None:
    """A file gone from disk is fetched, a lasting error backing off is held, as the run does."""
    emu = runner.emu
    whole, damaged = emu.add_task(artifacts=TINY), emu.add_task(artifacts=TINY)
    gone = emu.add_task(artifacts=TINY)
    emu.remove_task(gone)  # 404: a lasting error, so after two runs it backs off
    assert runner.run(whole, damaged, gone).code == 1
    assert runner.run(gone).code == 1
    (path,) = [f.path for f in runner.catalog().files_of(damaged) if f.kind != "input"]
    (runner.root / path).unlink()
    new = emu.add_task(artifacts=TINY)
    emu.clear_requests()
    listed = runner.run(whole, damaged, gone, new, command="list")
    assert [line.split()[:2] for line in listed.out.splitlines()] == [
        ["skip", "archived"],
        ["fetch", "archived"],
        ["hold", "error"],
        ["fetch", "new"],
    ]
    assert listed.err.startswith("4 tasks: 2 to fetch, 1 to skip, 1 in error backing off")
    assert emu.requests == []
    result = runner.run(whole, damaged, gone, new)
    assert sorted(retrieved(emu)) == sorted([damaged, new])
    assert result.states() == {
        whole: "skipped",
        damaged: "archived",
        gone: "error",
        new: "archived",
    }


def test_an_unreachable_api_stops_discovery_with_one_line(runner: Runner) -> None:
    """No listing request gets through: exit 1, one line naming the base URL, the catalog's
    unfinished tasks left for the next run."""
    pending = runner.emu.add_task("PENDING")
    assert runner.run("--all").states() == {pending: "pending"}
    runner.base_url = f"http://127.0.0.1:{closed_port()}/v1"
    result = runner.run("--all")
    assert result.code == 1
    (line,) = result.err.splitlines()
    assert line.startswith(f"runway-archiver: the API at {runner.base_url} is unreachable: ")
    assert result.report is not None and result.report["stopped"].startswith("the API at")
    assert [row.state for row in runner.catalog().tasks.values()] == ["pending"]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--all", "--since", ""], "--since: expected a date"),
        (["--all", "--email", ""], "--email: an empty address"),
        (["--since", ""], "--email and --since work with --all only"),
    ],
)
def test_empty_discovery_values_are_usage_errors(
    runner: Runner, args: list[str], says: str
) -> None:
    """An empty --since or --email is a usage error (exit 2), not silently ignored."""
    result = runner.run(*args, report=False)
    assert result.code == 2
    assert result.err.startswith(f"runway-archiver: {says}")
    assert runner.emu.requests == []
