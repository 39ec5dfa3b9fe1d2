"""Task ids from arguments, files and stdin: comments, blanks, duplicates and bad lines."""

from __future__ import annotations

import ast
import io
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archiver.tasklist import BadLine, SeenIds, check, gather, stream

from .conftest import Runner

A = "user:1234-runwayml:me@example.com-task:3f2a9c1e-5b7d-4e8f-9a0b-1c2d3e4f5a6b"
B = "user:1234-runwayml:me@example.com-task:11111111-2222-4333-8444-555555555555"
C = "user:99-runwayml:other+tag@example.org-task:aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
D = "user:7-runwayml:a.b-c@mail.example.co.uk-task:AAAAAAAA-BBBB-4CCC-8DDD-EEEEEEEEEEEE"
EXPECTED = "not a task id (expected user:<n>-runwayml:<email>-task:<uuid>)"


def test_comments_and_blank_lines_are_skipped() -> None:
    """'#' lines, trailing ' # note' / tab-'#' comments and blank lines give no id and no error."""
    lines = ["# my tasks", "", "   ", f"{A}  # the cat one", f"\t{B}\t# tab note", "  # indented"]
    result = gather([], [("ids.txt", lines)])
    assert result.ids == [A, B]
    assert result.bad == []


def test_duplicates_kept_once_in_first_seen_order() -> None:
    """An id repeated across arguments, files and stdin is kept once, where it first appeared."""
    result = gather(
        [B, A, B],
        [("ids.txt", [C, A, f"{B} # again"]), ("<stdin>", [C, D, A, D])],
    )
    assert result.ids == [B, A, C, D]
    assert result.bad == []


def test_crlf_lines_are_trimmed() -> None:
    """Ids from a file with Windows line ends are the same ids."""
    result = gather([], [("ids.txt", f"{A}\r\n{B}\r\n".split("\n"))])
    assert result.ids == [A, B]


def test_bad_lines_are_reported_with_name_and_line() -> None:
    """A line that is not a task id is kept as a BadLine 'file:line', and the others still run."""
    result = gather(
        ["not a task id!"],
        [("ids.txt", [A, "", "https://api.useapi.net/v1/runwayml/tasks/" + B, B])],
    )
    assert result.ids == [A, B]
    assert result.bad == [
        BadLine("argument 1", "not a task id!", EXPECTED),
        BadLine(
            "ids.txt:3",
            "https://api.useapi.net/v1/runwayml/tasks/" + B,
            "not a task id (it holds one: give the id alone)",
        ),
    ]
    assert str(result.bad[0]) == f"argument 1: {EXPECTED}: 'not a task id!'"


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("user:1234-runwayml:me@example.com-task: 3f2a", "not a task id"),  # space inside
        ("user:1234\ttask:3f2a", "not a task id"),  # tab inside
        (f"https://api.useapi.net/v1/runwayml/tasks/{A}", "not a task id"),
        ("../../etc/passwd", "not a task id"),
        ("-rf", "not a task id"),
        ("task?id=1", "not a task id"),
        ("abc#def", "not a task id"),  # '#' only starts a comment after a blank
        ("a" * 301, "not a task id"),
        ("user:12x-runwayml:me@example.com-task:3f2a9c1e-5b7d-4e8f-9a0b-1c2d3e4f5a6b", ""),
        ("user:1-runwayml:no-at-sign-task:3f2a9c1e-5b7d-4e8f-9a0b-1c2d3e4f5a6b", ""),
        ("user:1-runwayml:me@example.com-task:3f2a9c1e-5b7d-4e8f-9a0b", ""),  # short uuid
        (A + "x", ""),
    ],
)
def test_malformed_ids_are_bad_lines(line: str, reason: str) -> None:
    """Whitespace, a URL, a path, an option, a wrong user, email or uuid part: a bad line."""
    result = gather([], [("ids.txt", [A, line])])
    assert result.ids == [A]
    assert [(b.where, b.text) for b in result.bad] == [("ids.txt:2", line)]
    assert result.bad[0].reason.startswith("not a task id")


def test_pasted_quotes_and_trailing_commas_are_stripped() -> None:
    """Ids pasted from JSON or a spreadsheet ("...", '...', a trailing comma) are accepted."""
    result = gather([f'"{A}",'], [("ids.txt", [f"'{B}'", f"{C},", f'  "{D}" ,  '])])
    assert result.ids == [A, B, C, D]
    assert result.bad == []


def test_a_bare_uuid_says_the_full_form_is_needed() -> None:
    """A bare uuid gets a line saying the API needs the full task id, and what it looks like."""
    (bad,) = gather(["3f2a9c1e-5b7d-4e8f-9a0b-1c2d3e4f5a6b"], []).bad
    assert bad.reason == (
        "a bare uuid; the API needs the full task id, user:<n>-runwayml:<email>-task:<uuid>"
    )


def test_a_file_name_as_an_argument_suggests_dash_i(tmp_path: Path) -> None:
    """A task list given without -i gets "did you mean -i FILE"; so does anything path-like."""
    ids = tmp_path / "mine"
    ids.write_text(A)
    result = gather([str(ids), "tasks.txt"], [])
    assert [b.reason for b in result.bad] == [
        f"not a task id (a file? did you mean -i {ids})",
        "not a task id (a file? did you mean -i tasks.txt)",
    ]


def test_long_bad_line_is_shortened_with_its_end_visible() -> None:
    """A long bad line's message keeps its start and its end (ids differ at the end)."""
    line = "x" * 100 + "THE-END"
    (bad,) = gather([line], []).bad
    shown = str(bad).split(": ", 2)[2]
    assert shown == repr("x" * 49 + "…" + "x" * 23 + "THE-END")
    assert len(ast.literal_eval(shown)) == 80


def test_bad_line_repeated_is_reported_each_time() -> None:
    """The same bad text on two lines is two errors: nothing is dropped silently."""
    result = gather([], [("ids.txt", ["no good", "no good"])])
    assert [b.where for b in result.bad] == ["ids.txt:1", "ids.txt:2"]


def test_stdin_ids_are_archived(runner: Runner, monkeypatch: pytest.MonkeyPatch) -> None:
    """`run -i -` reads ids from stdin, skipping comments and duplicates, and archives them."""
    first, second = runner.emu.add_task(previews=0), runner.emu.add_task(previews=0)
    stdin = f"# from a pipe\n{first}\n\n{second}  # note\n{first}\nnot an id!\n"
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    result = runner.run("-i", "-", "--no-progress")
    assert result.code == 1, result.err
    assert result.states() == {first: "archived", second: "archived", "not an id!": "error"}
    assert result.task("not an id!")["error"] == f"<stdin>:6: {EXPECTED}: 'not an id!'"
    api_paths = sorted(r.raw_path for r in runner.emu.requests if r.origin == "api")
    assert api_paths == sorted([f"/v1/runwayml/tasks/{first}", f"/v1/runwayml/tasks/{second}"])


def test_stdin_and_arguments_together(runner: Runner, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ids given as arguments and on stdin are archived together, each once."""
    first, second = runner.emu.add_task(previews=0), runner.emu.add_task(previews=0)
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{second}\n{first}\n"))
    result = runner.run(first, "-i", "-", "--no-progress")
    assert result.code == 0, result.err
    assert result.states() == {first: "archived", second: "archived"}
    assert len([r for r in runner.emu.requests if r.origin == "api"]) == 2


def test_task_list_with_a_bom_is_read(runner: Runner) -> None:
    """A task list saved with a UTF-8 byte order mark (Windows Notepad) archives its first id."""
    task = runner.emu.add_task(previews=0)
    ids = runner.root.parent / "ids.txt"
    ids.write_bytes(b"\xef\xbb\xbf" + f"{task}\n".encode())
    result = runner.run("-i", str(ids), "--no-progress")
    assert result.states() == {task: "archived"}


def test_seen_ids_keeps_each_first_occurrence() -> None:
    """SeenIds says "new" for an id's first occurrence only, across its table's growth."""
    ids = [f"user:1-runwayml:a@b.c-task:{uuid.UUID(int=n)}" for n in range(50_000)]
    seen = SeenIds(bits=2)
    assert all(seen.add(i) for i in ids)
    assert not any(seen.add(i) for i in reversed(ids))
    assert seen.add("user:1-runwayml:a@b.c-task:" + str(uuid.UUID(int=50_000)))


def test_stream_reads_lines_as_asked() -> None:
    """The run's ids stream: a source is read only as far as the ids taken from it."""
    read: list[int] = []

    def lines() -> Iterator[str]:
        for n in range(1, 1000):
            read.append(n)
            yield f"user:1-runwayml:a@b.c-task:{uuid.UUID(int=n)}"

    taken = stream([], [("ids.txt", lines())])
    assert [next(taken) for _ in range(3)] == [
        f"user:1-runwayml:a@b.c-task:{uuid.UUID(int=n)}" for n in (1, 2, 3)
    ]
    assert read == [1, 2, 3]


def line_by_line(lines: list[str]) -> list[str | BadLine]:
    """What `check` makes of each line in turn: the reference `stream` must agree with."""
    seen = SeenIds()
    taken = (check(line, f"ids.txt:{n}", seen) for n, line in enumerate(lines, 1))
    return [t for t in taken if t is not None]


U = "3f2a9c1e-5b7d-4e8f-9a0b-1c2d3e4f5a6b"
TRICKY = [
    f"user:1-runwayml:a-task:b@c.com-task:{U}",  # "-task:" in the local part
    f"user:1-runwayml:a@b-task:c.com-task:{U}",  # ... and in the domain
    f"user:1-runwayml:a@b@c.com-task:{U}",  # "@" in the domain
    f"user:1-runwayml:a@b.com-task:{U.upper()}",
    f"user:1-runwayml:a@b.com-task:{U}-task:{U}",
    f"user:{'9' * 20}-runwayml:{'a' * 200}@{'b' * 200}-task:{U}",  # every part at its longest
    f"user:{'9' * 21}-runwayml:a@b.com-task:{U}",
    f"user:1-runwayml:{'a' * 201}@b.com-task:{U}",
    f"user:1-runwayml:a@{'b' * 201}-task:{U}",
    f"user:\u0661\u0662-runwayml:a@b.com-task:{U}",  # Arabic-Indic digits are \d
    f"user:1-runwayml:a@b.com-task:{U[:-1]}g",
    f"user:1-runwayml:a@b.com-task:{U}0",
    f"user:1-runwayml:a@b.com-task:{U[:-1]}",
    f"user:1-runwayml:a@b.com-task:{U.replace('-', '0', 1)}",
    f"user:1-runwayml:a@b.com-task{U}",
    f"user:1-runwayml:ab.com-task:{U}",
    f"user:1-runwayml:a@b/c-task:{U}",
    f"{'x' * 8}{U}",  # the length of an id above, without its owner
    f"{'x' * 8}-task:{U}",
    U,
    U.upper(),
    "",
]
AROUND = ["", '"', "'", "`", " ", "\t", "#", '",', ",", ";", " # a note", "\t# a note", "x"]
ENDS = ["", "\n", "\r\n", "\r", "\n\n", " \n", "\u00a0\n", "\x0b", ",\n", " #\n"]


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(AROUND), st.sampled_from([A, B, C, D, *TRICKY]),
            st.sampled_from(AROUND), st.sampled_from(ENDS),
        ).map("".join) | st.text(max_size=90),
        max_size=30,
    )
)  # fmt: skip
def test_a_list_is_read_as_check_reads_each_line(lines: list[str]) -> None:
    """A list's ids and bad lines are what `check` makes of its lines, whatever precedes each."""
    assert list(stream([], [("ids.txt", lines)])) == line_by_line(lines)


@pytest.mark.parametrize("line", TRICKY)
def test_tricky_lines_after_a_run_of_good_ones(line: str) -> None:
    """A tricky line (an owner part holding '-task:' or '@', a bad uuid, a part too long, a bare
    uuid) after ids with its owner part, bare or pasted, is taken as `check` takes it."""
    lines = [line + "\n"]  # first, before any owner part is known
    for owner in ("user:1-runwayml:a@b.com-task:", line[:-36]):
        lines += [owner + str(uuid.UUID(int=n)) + "\n" for n in range(3)]
        lines += [line + "\n", line, f'"{line}",\n', owner + str(uuid.UUID(int=1)) + "\n"]
    assert list(stream([], [("ids.txt", lines)])) == line_by_line(lines)
