"""Answers about the whole account (401, 402, 596) end the run at once and mark no task; a
retrieve's 412/422 is that task's error, and an unknown 5xx is retried and never backs off."""

from __future__ import annotations

import pytest

from archiver.testing import Seen
from archiver.testing.tasks import EMAIL

from .conftest import Runner

LAPSED = (
    "runway-archiver: useapi.net answered HTTP 402 Payment Required: the subscription has"
    " lapsed; renew it at useapi.net, then run again"
)
BROKEN = (
    f"runway-archiver: useapi.net answered HTTP 596: the RunwayML account {EMAIL} is in an"
    f" error state (refresh token rejected); add {EMAIL} again at useapi.net, then run again"
)


def api(runner: Runner) -> list[Seen]:
    return [r for r in runner.emu.requests if r.origin == "api"]


def marked(runner: Runner) -> list[tuple[str, str, int]]:
    """Catalog rows an account-level answer must never leave: in error, or backing off."""
    return [
        (t, row.state, row.failures)
        for t, row in runner.catalog().tasks.items()
        if row.state == "error" or row.failures > 0
    ]


def test_402_on_the_first_request_is_one_line_and_exit_3(runner: Runner) -> None:
    """402 on the first retrieve: exit 3, one line under -q, no CDN request, no task marked;
    the report says why; once the answer is 200 again a rerun archives every task."""
    tasks = [runner.emu.add_task(previews=0) for _ in range(5)]
    runner.emu.account_trouble(402)
    result = runner.run(*tasks, "-q")
    assert result.code == 3
    assert (result.out, result.err.splitlines()) == ("", [LAPSED])
    seen = api(runner)
    assert 1 <= len(seen) <= 4 and {r.status for r in seen} == {402}
    assert len(runner.emu.requests) == len(seen)
    assert result.report is not None
    assert result.report["exit_code"] == 3 and result.report["tasks"] == []
    assert result.report["stopped"] == LAPSED.removeprefix("runway-archiver: ")
    assert result.report["unfinished"] == tasks
    assert marked(runner) == []

    runner.emu.account_trouble(None)
    again = runner.run(*tasks)
    assert again.code == 0, again.err
    assert again.states() == dict.fromkeys(tasks, "archived")


def test_596_in_the_middle_of_a_run_names_the_account_and_holds_nothing(runner: Runner) -> None:
    """596 after two answered retrieves: exit 3, one line naming the account; what finished is
    archived, nothing is in error or backing off; the rerun archives the rest, none held."""
    tasks = [runner.emu.add_task(previews=0) for _ in range(6)]
    runner.emu.account_trouble(596, after=2)
    result = runner.run(*tasks, "-q", "--concurrency", "1")
    assert result.code == 3
    assert (result.out, result.err.splitlines()) == ("", [BROKEN])
    assert [r.status for r in api(runner)] == [200, 200, 596]
    assert set(result.states().values()) <= {"archived"}
    assert marked(runner) == []

    runner.emu.account_trouble(None)
    plan = runner.run(*tasks, command="list")
    assert " hold " not in plan.out and plan.code == 0
    again = runner.run(*tasks)
    assert again.code == 0, again.err
    done = {t for t, state in result.states().items() if state == "archived"}
    assert again.states() == {t: "skipped" if t in done else "archived" for t in tasks}


def test_596_without_an_email_still_says_what_to_do(runner: Runner) -> None:
    """A 596 whose message names no account is still one line saying to re-add it."""
    task = runner.emu.add_task(previews=0)
    runner.emu.account_trouble(596, message="Runway account error")
    result = runner.run(task)
    assert result.code == 3
    assert result.err.splitlines()[-1] == (
        "runway-archiver: useapi.net answered HTTP 596 (Runway account error): a linked"
        " RunwayML account is in an error state; add it again at useapi.net, then run again"
    )


@pytest.mark.parametrize("status", [412, 422])
def test_412_and_422_on_a_retrieve_are_that_tasks_error(runner: Runner, status: int) -> None:
    """412/422 answer create calls: on a retrieve it is one task's lasting error, not retried,
    and the other tasks are archived (exit 1)."""
    bad, good = runner.emu.add_task(previews=0), runner.emu.add_task(previews=0)
    runner.emu.api_fault(bad, status=status, times=5)
    result = runner.run(bad, good)
    assert result.code == 1
    assert result.states() == {bad: "error", good: "archived"}
    assert f"HTTP {status}" in result.task(bad)["error"]
    assert [r.status for r in api(runner) if r.raw_path.endswith(bad)] == [status]
    assert runner.catalog().tasks[bad].failures == 1


@pytest.mark.parametrize("status", [501, 520, 599])
def test_an_unknown_5xx_is_retried_and_never_backs_off(runner: Runner, status: int) -> None:
    """A 5xx the archiver does not know is retried (3 attempts here), then is the task's error
    without back-off: the next run asks again and archives it."""
    task = runner.emu.add_task(previews=0)
    runner.emu.api_fault(task, status=status, times=3)
    result = runner.run(task)
    assert result.code == 1 and result.states() == {task: "error"}
    assert [r.status for r in api(runner)] == [status] * 3
    assert [row.failures for row in runner.catalog().tasks.values()] == [0]
    assert runner.run(task).states() == {task: "archived"}
