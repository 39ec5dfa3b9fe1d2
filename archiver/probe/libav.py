"""The libav engine: FFmpeg's libraries through PyAV, in a small pool of worker processes.

One probe costs a JSON line each way instead of an ffprobe process (which links some 200
libraries before it reads a byte). A worker that dies mid-probe costs that file's check (a
VerifyError, as a failed ffprobe); one that does not answer within the timeout is killed (a
ProbeTimeout). Either way the slot is empty and the next probe starts a fresh worker: the run
never depends on a worker surviving. Workers start when first needed, at most `workers` of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from pathlib import Path
from typing import Any, TypeVar

from .. import extras
from ..errors import ProbeTimeout, VerifyError
from ..model import ProbeResult
from .compare import require_media

NAME = "libav"
# By path, not `-m archiver.probe.worker`: importing the package (config, asyncio) would double
# a worker's start-up; -P keeps this folder off sys.path, where its modules would shadow others.
_WORKER = (sys.executable, "-P", str(Path(__file__).with_name("worker.py")))
# The worker's first line, and its line on taking a path (worker.READY and worker.TAKEN:
# that module imports PyAV). A worker that dies before TAKEN died before reading the file.
_READY = b"ready\n"
_TAKEN = b"taken\n"
_T = TypeVar("_T")
_CLOSE_GRACE = 5.0  # seconds a worker has to leave once its stdin is closed


def require() -> None:
    """PyAV is installed (the [libav] extra), checked before any request."""
    extras.require("libav", wanted="probe: libav")


class _Died(Exception):
    """The worker ended without answering: killed, crashed, or exited."""


class _Gone(_Died):
    """The worker ended before it took the path: the file played no part in it."""


class _Worker:
    """One worker process and its pipes; `ask` is one probe."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(cls) -> _Worker:
        try:
            proc = await asyncio.create_subprocess_exec(
                *_WORKER,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,  # FFmpeg may log even when asked not to
            )
        except OSError as exc:
            raise _Died(f"cannot start {_WORKER[0]}: {exc.strerror or exc}") from exc
        worker = cls(proc)
        try:
            line = await worker._line()
        except BaseException:
            await worker.kill()
            raise
        if line != _READY:
            await worker.kill()  # it may be alive and saying something else
            raise _Died(f"it did not start: {await worker._how()}")
        return worker

    async def ask(self, path: Path) -> dict[str, Any]:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(str(path)).encode() + b"\n")
            await self.proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise _Gone(await self._how()) from exc
        if await self._line() != _TAKEN:
            await self.kill()
            raise _Gone(await self._how())
        line = await self._line()
        if not line:
            raise _Died(await self._how())
        try:
            answer = json.loads(line)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            await self.kill()  # out of step with its requests: no later answer can be trusted
            raise _Died("it answered something that is not JSON")
        return answer

    async def _line(self) -> bytes:
        assert self.proc.stdout is not None
        return await self.proc.stdout.readline()

    async def _how(self) -> str:
        code = await self.proc.wait()
        if code < 0:
            with contextlib.suppress(ValueError):
                return f"killed by {signal.Signals(-code).name}"
        return f"exit status {code}"

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
        await self.proc.wait()

    async def close(self) -> None:
        """Ask it to leave (end of its stdin); kill it if it does not."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_CLOSE_GRACE):
                await self.proc.wait()
        await self.kill()


class Libav:
    """A Prober: what FFmpeg's libraries say of a video or audio file, in worker processes."""

    name = NAME

    def __init__(self, *, timeout: float, workers: int) -> None:
        self.timeout = timeout
        self._slots = asyncio.Semaphore(workers)
        self._idle: list[_Worker] = []

    async def media(self, path: Path) -> ProbeResult:
        """One probe by a free worker; see the module docstring for a worker's death or hang."""
        async with self._slots:
            answer = await self._ask(path)
        if "error" in answer:
            raise VerifyError(f"libav cannot read it: {answer['error']}")
        return require_media(_result(answer.get("found")), NAME)

    async def _ask(self, path: Path) -> dict[str, Any]:
        worker = self._idle.pop() if self._idle else None
        try:
            async with asyncio.timeout(self.timeout):
                try:
                    if worker is None or worker.proc.returncode is not None:
                        worker = await _Worker.start()
                    answer = await worker.ask(path)
                except _Gone:  # an idle worker had died (killed from outside): not this file
                    worker = await _Worker.start()
                    answer = await worker.ask(path)
        except BaseException as exc:
            if worker is not None:
                await worker.kill()  # dead, hung, or cancelled mid-probe: never asked again
            if isinstance(exc, TimeoutError):
                raise ProbeTimeout(
                    f"libav did not answer within {self.timeout:g} s (worker killed)"
                ) from exc
            if isinstance(exc, _Died):
                raise VerifyError(f"libav worker died reading it ({exc})") from exc
            raise
        self._idle.append(worker)
        return answer

    async def aclose(self) -> None:
        """End every idle worker (none is busy once the run's probes are over)."""
        idle, self._idle = self._idle, []
        await asyncio.gather(*(w.close() for w in idle))


def _result(found: Any) -> ProbeResult:
    """The worker's answer, checked field by field: it is data from another process."""
    if not isinstance(found, dict):
        raise VerifyError("libav worker answered something that is not a probe")
    try:
        return ProbeResult(
            format_name=_typed(found.get("format_name"), str),
            codec=_typed(found.get("codec"), str),
            width=_typed(found.get("width"), int),
            height=_typed(found.get("height"), int),
            duration=_typed(found.get("duration"), float),
            frame_rate=_typed(found.get("frame_rate"), float),
            audio_codec=_typed(found.get("audio_codec"), str),
        )
    except TypeError as exc:
        raise VerifyError(f"libav worker answered {exc}") from exc


def _typed(value: Any, kind: type[_T]) -> _T | None:
    if value is None:
        return None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise TypeError(f"a {type(value).__name__} where a {kind.__name__} belongs")
    return value
