"""Switchable faults for the emulator's two origins, and the record of every request seen.

Faults are armed from the test thread and consumed by the server thread, hence the lock.
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web

from archiver.testing.accounts import MESSAGES
from archiver.testing.tasks import EMAIL


@dataclass(frozen=True)
class Seen:
    """One request as the emulator received it, and the status it answered (0: dropped)."""

    origin: str
    method: str
    raw_path: str
    headers: dict[str, str]
    status: int
    at: float = 0.0  # time.monotonic() when it arrived, for tests of pacing


@dataclass
class ApiFault:
    """A misbehaviour of the API origin, for one task id or any (task_id None)."""

    task_id: str | None
    times: int
    status: int = 500
    body: bytes | None = None
    headers: dict[str, str] | None = None
    delay: float = 0.0
    reset: bool = False
    redirect_to: str | None = None
    trickle: float = 0.0  # seconds between single bytes of the whole answer, headers included
    skip: int = 0  # requests it lets through before it starts


@dataclass
class AssetFault:
    """A misbehaviour of the CDN origin for request paths containing `match`."""

    match: str
    times: int
    status: int | None = None
    headers: dict[str, str] | None = None
    truncate_at: int | None = None
    extra_bytes: int = 0
    delay: float = 0.0
    hang: bool = False
    reset: bool = False
    redirect_to: str | None = None
    ignore_if_range: bool = False  # a broken cache: honours Range whatever If-Range says


_F = TypeVar("_F", ApiFault, AssetFault)


class FaultBook:
    """Armed faults in arming order; each one is used `times` times, then forgotten."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._api: list[ApiFault] = []
        self._asset: list[AssetFault] = []

    def arm_api(self, fault: ApiFault) -> None:
        with self._lock:
            self._api.append(fault)

    def arm_asset(self, fault: AssetFault) -> None:
        with self._lock:
            self._asset.append(fault)

    def take_api(self, task_id: str | None) -> ApiFault | None:
        """The first armed API fault that applies to `task_id`, consuming one use of it."""
        with self._lock:
            for fault in self._api:
                if fault.task_id is None or fault.task_id == task_id:
                    if fault.skip > 0:
                        fault.skip -= 1
                        return None
                    return _consume(self._api, fault)
        return None

    def take_asset(self, raw_path: str) -> AssetFault | None:
        """The first armed asset fault whose `match` occurs in `raw_path`, consuming one use."""
        with self._lock:
            for fault in self._asset:
                if fault.match in raw_path:
                    return _consume(self._asset, fault)
        return None

    def clear(self) -> None:
        with self._lock:
            self._api.clear()
            self._asset.clear()


def _consume(faults: list[_F], fault: _F) -> _F:
    fault.times -= 1
    if fault.times <= 0:
        faults.remove(fault)
    return fault


async def api_fault_answer(fault: ApiFault) -> web.StreamResponse | None:
    """The API's answer under `fault`; None means drop the connection without one."""
    if fault.delay:
        await asyncio.sleep(fault.delay)
    if fault.reset:
        return None
    headers = dict(fault.headers or {})
    if fault.redirect_to is not None:
        headers["Location"] = fault.redirect_to
        return web.Response(status=302, headers=headers)
    body = fault.body
    if body is None:
        # Answers about the whole account carry useapi's own words; others a made-up error.
        said = MESSAGES.get(fault.status, "Emulated error {status}")
        text = said.format(email=EMAIL, status=fault.status)
        body = json.dumps({"error": text, "code": fault.status}).encode()
        headers.setdefault("Content-Type", "application/json")
    return web.Response(body=body, status=fault.status, headers=headers)


def early_asset_answer(fault: AssetFault) -> web.Response | None:
    """The answer for a redirect or status fault; None if the fault is about the body."""
    headers = dict(fault.headers or {})
    if fault.redirect_to is not None:
        headers["Location"] = fault.redirect_to
        return web.Response(status=302, headers=headers)
    if fault.status is not None:
        headers.setdefault("Content-Type", "application/json")
        body = json.dumps({"error": f"Emulated error {fault.status}"}).encode()
        return web.Response(status=fault.status, body=body, headers=headers)
    return None


async def trickle(
    request: web.Request, fault: ApiFault, data: Any, stopping: asyncio.Event
) -> None:
    """Write a whole HTTP answer straight to the socket, one byte per `fault.trickle` s."""
    body = fault.body if fault.body is not None else json.dumps(data).encode()
    head = (
        f"HTTP/1.1 {fault.status if fault.body is not None else 200} OK\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    transport = request.transport
    for i in range(len(head + body)):
        if transport is None or transport.is_closing() or stopping.is_set():
            return
        transport.write((head + body)[i : i + 1])
        await asyncio.sleep(fault.trickle)
