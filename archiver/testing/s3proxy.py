"""A fault-injecting HTTP proxy on loopback, in front of an S3 endpoint (moto cannot misbehave).

It forwards every request unchanged (the Host header too, so signatures still verify) and can,
per S3 operation: answer 503 SlowDown a number of times, or hold requests until released.
Faults are armed from the test thread and read on the proxy's own event-loop thread.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import aiohttp
from aiohttp import web
from yarl import URL

SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "proxy-connection"}
)


def operation(method: str, keys: set[str]) -> str:
    """The S3 operation a request is, from its method and query keys."""
    if method == "PUT":
        return "UploadPart" if "partNumber" in keys else "PutObject"
    if method == "POST":
        return "CompleteMultipartUpload" if "uploadId" in keys else "CreateMultipartUpload"
    if method == "DELETE":
        return "AbortMultipartUpload" if "uploadId" in keys else "DeleteObject"
    if method == "HEAD":
        return "HeadObject"
    if "uploads" in keys:
        return "ListMultipartUploads"
    return "ListObjectsV2" if "list-type" in keys else "GetObject"


class FaultProxy:
    """Forwards to `upstream`; `seen` counts each operation as it arrived."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.seen: Counter[str] = Counter()
        self.paths: list[tuple[str, str]] = []  # (operation, path without query) as they came
        self.answered: Counter[str] = Counter()  # (operation, status) as "Op 503"
        self.most_at_once: Counter[str] = Counter()  # the most requests of an operation in flight
        self._in_flight: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._slow: Counter[str] = Counter()
        self._held: set[str] = set()
        self.arrived = threading.Event()  # set when a held request arrives
        self._release: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._session: aiohttp.ClientSession | None = None
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"

    def slow_down(self, op: str, times: int) -> None:
        """Answer the next `times` requests of `op` with 503 SlowDown."""
        with self._lock:
            self._slow[op] += times

    def calm(self) -> None:
        """Disarm every SlowDown answer not given yet."""
        with self._lock:
            self._slow.clear()

    def hold(self, op: str) -> None:
        """Keep requests of `op` waiting (before their body is read) until `release`."""
        with self._lock:
            self._held.add(op)
            self.arrived.clear()

    def release(self) -> None:
        with self._lock:
            self._held.clear()
        if self._loop is not None and self._release is not None:
            self._loop.call_soon_threadsafe(self._release.set)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        op = operation(request.method, set(request.query))
        with self._lock:
            self.seen[op] += 1
            self.paths.append((op, request.path))
            self._in_flight[op] += 1
            self.most_at_once[op] = max(self.most_at_once[op], self._in_flight[op])
            slow = self._slow[op] > 0
            if slow:
                self._slow[op] -= 1
            held = op in self._held
        try:
            return await self._answer(request, op, slow=slow, held=held)
        finally:
            with self._lock:
                self._in_flight[op] -= 1

    async def _answer(
        self, request: web.Request, op: str, *, slow: bool, held: bool
    ) -> web.StreamResponse:
        if held:
            assert self._release is not None
            self.arrived.set()
            await self._release.wait()
        if slow:
            await request.read()
            return self._count(op, web.Response(status=503, body=SLOW_DOWN))
        return self._count(op, await self._forward(request))

    def _count(self, op: str, response: web.StreamResponse) -> web.StreamResponse:
        with self._lock:
            self.answered[f"{op} {response.status}"] += 1
        return response

    async def _forward(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        assert self._session is not None
        async with self._session.request(
            request.method,
            URL(self.upstream + request.raw_path, encoded=True),  # byte for byte: it is signed
            headers=headers,
            data=body,
            allow_redirects=False,
        ) as answer:
            data = await answer.read()
            out = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP_BY_HOP}
            if request.method != "HEAD":  # a HEAD keeps the object's length, with no body
                out.pop("Content-Length", None)
            return web.Response(status=answer.status, headers=out, body=data or None)

    @contextmanager
    def running_in_thread(self) -> Iterator[FaultProxy]:
        """Serve on an event loop in a daemon thread for the duration of the block."""
        loop = asyncio.new_event_loop()
        self._loop = loop
        started = threading.Event()
        runner: list[web.AppRunner] = []

        async def start() -> None:
            self._release = asyncio.Event()
            # Nothing added to what the client signed.
            skip = ["User-Agent", "Content-Type", "Accept-Encoding", "Accept"]
            self._session = aiohttp.ClientSession(auto_decompress=False, skip_auto_headers=skip)
            app = web.Application(client_max_size=1024**3)
            app.router.add_route("*", "/{tail:.*}", self._handle)
            app_runner = web.AppRunner(
                app, access_log=None, handle_signals=False, shutdown_timeout=0.5
            )
            await app_runner.setup()
            await web.SockSite(app_runner, self._sock).start()
            runner.append(app_runner)

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(start())
            started.set()
            loop.run_forever()

        thread = threading.Thread(target=run, name="s3-fault-proxy", daemon=True)
        thread.start()
        started.wait(timeout=30)
        try:
            yield self
        finally:
            self.release()

            async def stop() -> None:
                for r in runner:
                    await r.cleanup()
                if self._session is not None:
                    await self._session.close()

            asyncio.run_coroutine_threadsafe(stop(), loop).result(timeout=30)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=30)
            loop.close()
            self._sock.close()
