"""The PostgreSQL engine against a real server: schema and migrations, claims as fenced leases,
and the faults at start (what the conformance suite cannot see, since SQLite has no claims)."""

from __future__ import annotations

import asyncio
import json

import psycopg
import pytest

from archiver import config
from archiver.catalog import copy, postgres_schema
from archiver.catalog.protocol import Access
from archiver.errors import CatalogUnreachable, LeaseLost, NoArchive, StorageError, UsageError
from archiver.model import State, TaskOutcome
from archiver.testing.postgres import Cluster

from .conftest import Runner
from .pg import NOW, open_and_close, opened, scalar, sortable, sql_rows


async def test_two_hosts_starting_at_once_migrate_once(pg_url: str) -> None:
    """Hosts opening an empty database together: the schema is made once, at its version."""
    async with opened(pg_url) as a, opened(pg_url, host="h2") as b:
        assert await a.next_run_id() == await b.next_run_id() == 1
    results = await asyncio.gather(*(open_and_close(pg_url) for _ in range(4)))
    assert results == [None] * 4
    assert scalar(pg_url, "SELECT count(*) FROM archiver_schema") == 1
    assert scalar(pg_url, "SELECT version FROM archiver_schema") == postgres_schema.SCHEMA_VERSION


async def test_newer_schema_and_foreign_tables_are_refused(pg_cluster: Cluster) -> None:
    """A newer version's catalog, or a database of someone else's tables: refused, untouched."""
    newer = pg_cluster.create_database()
    async with opened(newer):
        pass
    with psycopg.connect(newer, autocommit=True) as conn:
        conn.execute("UPDATE archiver_schema SET version = 99")
    with pytest.raises(StorageError, match=r"newer runway-archiver \(schema 99\)"):
        async with opened(newer):
            pass
    foreign = pg_cluster.create_database()
    with psycopg.connect(foreign, autocommit=True) as conn:
        conn.execute("CREATE TABLE invoices (id int)")
    with pytest.raises(StorageError, match="holds other tables"):
        async with opened(foreign):
            pass
    assert scalar(foreign, "SELECT to_regclass('tasks') IS NULL") is True


async def test_reading_an_empty_database_is_no_archive(pg_url: str) -> None:
    """status/verify on a database without our tables: NoArchive (exit 2), nothing created."""
    with pytest.raises(NoArchive, match=r"no archive in catalog 127\.0\.0\.1:"):
        async with opened(pg_url, Access.READ):
            pass
    assert scalar(pg_url, "SELECT to_regclass('archiver_schema') IS NULL") is True


@pytest.mark.parametrize("fault", ["refused", "password", "no database"])
async def test_unreachable_at_start_names_host_port_db_never_the_password(
    pg_cluster: Cluster, fault: str
) -> None:
    """Refused, wrong password, no such database: one line with host:port/db, no password."""
    url = {
        "refused": pg_cluster.url("x", port=1),
        "password": pg_cluster.url("postgres", password="wrong-secret-99"),
        "no database": pg_cluster.url("nowhere"),
    }[fault]
    with pytest.raises(CatalogUnreachable) as caught:
        async with opened(url):
            pass
    message = str(caught.value)
    db = url.rsplit("/", 1)[1]
    port = 1 if fault == "refused" else pg_cluster.port
    assert message.startswith(f"catalog 127.0.0.1:{port}/{db}: cannot connect (")
    assert "\n" not in message
    assert pg_cluster.password not in message and "wrong-secret-99" not in message
    expected = {"refused": "refused", "password": "password", "no database": "does not exist"}
    assert expected[fault] in message


async def test_claims_skip_what_another_run_holds_until_it_expires(pg_url: str) -> None:
    """Two runs claim disjoint tasks; an expired claim goes to the next claimant; the old
    token can neither renew nor write the task's row."""
    ids = [f"task-{n}" for n in range(6)]
    async with opened(pg_url, lease=1, host="h1") as a, opened(pg_url, lease=30, host="h2") as b:
        await a.remember_given(ids, now=NOW)
        run_a, run_b = await a.begin_run(now=NOW), await b.begin_run(now=NOW)
        mine = await a.claim(ids, run_id=run_a, limit=4)
        theirs = await b.claim(ids, run_id=run_b, limit=10)
        assert [c.task_id for c in mine] == ids[:4]
        assert [c.task_id for c in theirs] == ids[4:]
        assert len({c.token for c in mine + theirs}) == 6
        held = await b.settled(ids[:4], run_id=run_b)
        assert held.finished == {} and held.wait is not None and 0 < held.wait <= 1
        assert [h.claims for h in await b.hosts()] == [4, 2]
        await asyncio.sleep(held.wait + 0.1)  # a's lease runs out on the server's clock
        taken = await b.claim(ids, run_id=run_b, limit=10)
        assert [c.task_id for c in taken] == ids[:4]
        assert not await a.renew(mine[0])
        with pytest.raises(LeaseLost):
            await a.record(TaskOutcome(ids[0], State.ARCHIVED), now=NOW, claim=mine[0])
        await b.record(TaskOutcome(ids[0], State.ARCHIVED, dir="d"), now=NOW, claim=taken[0])
        row = (await b.rows([ids[0]]))[ids[0]]
        assert row.state is State.ARCHIVED and row.dir == "d"
        assert scalar(pg_url, f"SELECT claim_host FROM tasks WHERE task_id = '{ids[0]}'") == "h2"


async def test_a_task_finished_by_another_run_is_not_claimed_again(pg_url: str) -> None:
    """Once another run records a task after this run began, this run leaves it (settled);
    the run that recorded it may claim it again (a poll under --wait)."""
    async with opened(pg_url, host="h1") as a, opened(pg_url, host="h2") as b:
        await a.remember_given(["t"], now=NOW)
        run_a, run_b = await a.begin_run(now=NOW), await b.begin_run(now=NOW)
        [claim] = await a.claim(["t"], run_id=run_a, limit=1)
        assert await a.renew(claim)
        await a.record(
            TaskOutcome("t", State.PENDING, error="status RUNNING"), now=NOW, claim=claim
        )
        assert await b.claim(["t"], run_id=run_b, limit=1) == []
        settled = await b.settled(["t"], run_id=run_b)
        assert list(settled.finished) == ["t"] and settled.wait is None
        assert [c.task_id for c in await a.claim(["t"], run_id=run_a, limit=1)] == ["t"]


async def test_released_claim_is_free_at_once(pg_url: str) -> None:
    """A run stopped mid-task releases its claim: another run claims it without waiting."""
    async with opened(pg_url, host="h1") as a, opened(pg_url, host="h2") as b:
        await a.remember_given(["t"], now=NOW)
        run_a, run_b = await a.begin_run(now=NOW), await b.begin_run(now=NOW)
        [claim] = await a.claim(["t"], run_id=run_a, limit=1)
        assert await b.claim(["t"], run_id=run_b, limit=1) == []
        await a.release(claim)
        assert [c.task_id for c in await b.claim(["t"], run_id=run_b, limit=1)] == ["t"]


def test_copy_moves_every_row_and_refuses_a_second_time(runner: Runner, pg_url: str) -> None:
    """Every row of every table lands in PostgreSQL with equal counts; SQLite is untouched;
    a second copy into the now non-empty database is refused."""
    tasks = [runner.emu.add_task(previews=1) for _ in range(2)]
    failing = runner.emu.add_scenario("failed_safety")
    assert runner.run(*tasks, failing).code == 0
    source = runner.root / "catalog.sqlite3"
    before = source.read_bytes()
    url = config.CatalogUrl.parse(pg_url)
    copied = asyncio.run(copy.copy_catalog(source, url, host="h1"))
    assert copied.counts["tasks"] == 3 and copied.counts["runs"] == 1
    rows = copy.read_sqlite(source)
    assert copied.counts == {table: len(found) for table, found in rows.items()}
    assert copied.counts["files"] > 0 and copied.counts["display"] == 3
    assert source.read_bytes() == before
    for table, columns in copy.TABLES.items():
        order = ", ".join(columns)
        copied_rows = sql_rows(pg_url, f"SELECT {order} FROM {table} ORDER BY {order}")
        assert copied_rows == sorted(rows[table], key=sortable), table
    with pytest.raises(UsageError, match="already holds an archive"):
        asyncio.run(copy.copy_catalog(source, url, host="h1"))


def test_malformed_url_is_one_line_exit_2_before_any_request(runner: Runner) -> None:
    """A URL that is not postgresql://...: one line naming the key, exit 2, no request,
    and its password is not shown."""
    task = runner.emu.add_task()
    result = runner.run(task, "--catalog", "postgresql://me:hunter22@db:99999/x", report=False)
    assert result.code == 2
    assert result.err.count("\n") == 1 and "config key 'catalog'" in result.err
    assert "hunter22" not in result.err and "<hidden>" in result.err
    assert runner.emu.requests == []


@pytest.mark.parametrize("fault", ["refused", "password", "no database"])
def test_unreachable_catalog_is_exit_74_before_any_request(
    runner: Runner, pg_cluster: Cluster, fault: str
) -> None:
    """Refused, wrong password, no such database: one line with host, port and database,
    never the password, exit 74, no request to the API or the CDN."""
    url = {
        "refused": pg_cluster.url("x", port=1),
        "password": pg_cluster.url("postgres", password="wrong-secret-99"),
        "no database": pg_cluster.url("nowhere"),
    }[fault]
    result = runner.run(runner.emu.add_task(), "--catalog", url)
    assert result.code == 74
    [line] = result.err.splitlines()
    port = 1 if fault == "refused" else pg_cluster.port
    assert line.startswith(f"runway-archiver: catalog 127.0.0.1:{port}/{url.rsplit('/', 1)[1]}:")
    assert pg_cluster.password not in result.err + result.out
    assert "wrong-secret-99" not in result.err + result.out
    assert runner.emu.requests == []
    assert result.report is not None and result.report["exit_code"] == 74


def test_password_is_never_written_anywhere(
    runner: Runner, pg_cluster: Cluster, pg_url: str
) -> None:
    """A run, status, verify and gallery with the password in the URL: it appears in no output,
    report, sidecar, gallery file or catalog row."""
    tasks = [runner.emu.add_task(previews=1) for _ in range(2)]
    outputs = [runner.run(*tasks, "--catalog", pg_url, "-v")]
    for command in ("status", "verify", "gallery"):
        outputs.append(runner.run("--catalog", pg_url, command=command, report=False))
    assert [r.code for r in outputs] == [0, 0, 0, 0], [r.err for r in outputs]
    secret = pg_cluster.password.encode()
    for result in outputs:
        assert pg_cluster.password not in result.out + result.err
    assert pg_cluster.password not in json.dumps(outputs[0].report)
    written = [p for p in runner.root.rglob("*") if p.is_file()]
    assert any(p.name == "task.yaml" for p in written) and any(p.suffix == ".js" for p in written)
    for path in written:
        assert secret not in path.read_bytes(), path
    for table in ("tasks", "files", "runs", "display", "display_entry"):
        dump = scalar(pg_url, f"SELECT coalesce(string_agg(t::text, ''), '') FROM {table} t")
        assert pg_cluster.password not in str(dump), table


async def test_a_migration_is_applied_once_by_hosts_starting_together(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A catalog of version 1 opened by four runs at once, with a version 2 to migrate to:
    one applies it under the advisory lock (a second ALTER would fail), the others find it done."""
    async with opened(pg_url):
        pass
    monkeypatch.setattr(postgres_schema, "MIGRATIONS", ("ALTER TABLE tasks ADD COLUMN note text;",))
    monkeypatch.setattr(postgres_schema, "SCHEMA_VERSION", 2)
    await asyncio.gather(*(open_and_close(pg_url) for _ in range(4)))
    assert scalar(pg_url, "SELECT version FROM archiver_schema") == 2
    assert scalar(pg_url, "SELECT count(*) FROM archiver_schema") == 1
    assert scalar(pg_url, "SELECT to_regclass('tasks') IS NOT NULL") is True
    columns = sql_rows(
        pg_url, "SELECT column_name FROM information_schema.columns WHERE column_name = 'note'"
    )
    assert columns == [("note",)]
