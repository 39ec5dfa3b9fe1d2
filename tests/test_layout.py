"""The package keeps its shape: small modules and functions, one module speaking aiohttp, and
test modules that share helpers through tests/helpers.py rather than importing each other."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "archiver"
MAX_MODULE_LINES = 399  # modules under 400 lines
MAX_FUNCTION_LINES = 50  # from `def` to its last line, docstring included
# Over the limits, each with its reason; an entry that is within the limits fails below, so this
# list cannot outlive its reason.
KNOWN: dict[str, int] = {}


def modules() -> Iterator[tuple[str, str]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path.relative_to(ROOT).as_posix(), path.read_text(encoding="utf-8")


def functions(tree: ast.AST, prefix: str = "") -> Iterator[tuple[str, int]]:
    """(qualified name, lines) of every function, methods and nested functions included."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            assert node.end_lineno is not None
            yield prefix + node.name, node.end_lineno - node.lineno + 1
            yield from functions(node, f"{prefix}{node.name}.")
        elif isinstance(node, ast.ClassDef):
            yield from functions(node, f"{prefix}{node.name}.")


def sizes() -> dict[str, int]:
    """Every module's line count, and every function's, by name."""
    found = {}
    for name, text in modules():
        found[name] = len(text.splitlines())
        for function, lines in functions(ast.parse(text)):
            found[f"{name}:{function}"] = lines
    return found


def test_modules_and_functions_stay_small() -> None:
    """No module of the package reaches 400 lines and no function passes 50, but the known."""
    over = {
        name: lines
        for name, lines in sizes().items()
        if lines > (MAX_FUNCTION_LINES if ":" in name else MAX_MODULE_LINES)
    }
    assert {k: v for k, v in over.items() if k not in KNOWN} == {}


def test_known_exceptions_are_still_exceptions() -> None:
    """Each known exception still exceeds its limit: once split, it leaves the list."""
    found = sizes()
    within = [
        name
        for name in KNOWN
        if found.get(name, 0) <= (MAX_FUNCTION_LINES if ":" in name else MAX_MODULE_LINES)
    ]
    assert within == []


def imported(text: str) -> Iterator[tuple[str, int]]:
    """(module, level) of every import statement, and of every name a `from` imports (which
    may be a module: `from . import test_x`); level counts the leading dots."""
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            yield from ((alias.name, 0) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            yield module, node.level
            yield from ((f"{module}.{alias.name}", node.level) for alias in node.names)


def test_only_http_py_and_the_emulator_import_aiohttp() -> None:
    """aiohttp is spoken by http.py alone (and by the emulator, which serves it)."""
    allowed = ("archiver/http.py", "archiver/testing/")
    speaking = [
        name
        for name, text in modules()
        if not name.startswith(allowed)
        and any(module.partition(".")[0] == "aiohttp" for module, _ in imported(text))
    ]
    assert speaking == []


def test_no_test_module_imports_another() -> None:
    """Tests share helpers through tests/helpers.py and conftest.py, never test_*.py."""
    offenders = []
    for path in sorted((ROOT / "tests").glob("*.py")):
        for module, level in imported(path.read_text(encoding="utf-8")):
            last = module.rpartition(".")[2]
            local = level > 0 or module.startswith("tests.")
            if local and last.startswith("test_"):
                offenders.append(f"{path.name} imports {module}")
    assert offenders == []


def test_only_the_probe_package_starts_processes_or_imports_pyav() -> None:
    """ffprobe runs, and PyAV is imported, in archiver/probe/ alone (the emulator aside, which
    renders and measures its media with ffmpeg, and the rerun's disk-check worker, a Python of
    its own): no other module starts a process."""
    allowed = ("archiver/probe/", "archiver/testing/", "archiver/storage/checker.py")
    offenders = [
        name
        for name, text in modules()
        if not name.startswith(allowed)
        and (
            "create_subprocess" in text
            or any(module.partition(".")[0] in ("subprocess", "av") for module, _ in imported(text))
        )
    ]
    assert offenders == []
