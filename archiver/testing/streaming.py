"""A hand-written file response for the CDN: Range, If-Range, ETag, pacing and body faults.

FileResponse (sendfile) serves the normal case; this one serves whatever must misbehave.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path

from aiohttp import web

from archiver.testing.faults import AssetFault

CHUNK = 256 * 1024
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def etag_of(st: os.stat_result) -> str:
    """The same strong ETag aiohttp's FileResponse sends, so If-Range works across both."""
    return f'"{st.st_mtime_ns:x}-{st.st_size:x}"'


@dataclass(frozen=True)
class Plan:
    """What to send from a file: status, the byte span and the headers describing it."""

    status: int
    start: int
    length: int
    headers: dict[str, str]


def plan_response(
    request: web.Request,
    path: Path,
    content_type: str,
    *,
    range_support: bool,
    if_range: bool = True,
) -> Plan:
    """Decide 200, 206 or 416 for `request` the way FileResponse would (`if_range` False: a
    broken cache that sends the range asked for whatever the validator says)."""
    st = path.stat()
    size = st.st_size
    etag = etag_of(st)
    last_modified = formatdate(st.st_mtime, usegmt=True)
    headers = {"Content-Type": content_type, "ETag": etag, "Last-Modified": last_modified}
    if range_support:
        headers["Accept-Ranges"] = "bytes"
    spec = request.headers.get("Range", "")
    validator = request.headers.get("If-Range") if if_range else None
    # A stale If-Range validator means "send the whole new file", as RFC 9110 says.
    if (
        not range_support
        or not spec
        or (validator is not None and validator not in (etag, last_modified))
    ):
        return Plan(200, 0, size, headers)
    match = _RANGE.match(spec.strip())
    if match is None or match.groups() == ("", ""):
        return Plan(200, 0, size, headers)
    first, last = match.groups()
    if first:
        start = int(first)
        end = min(int(last), size - 1) if last else size - 1
    else:
        start, end = max(size - int(last), 0), size - 1
    if start >= size or end < start:
        headers["Content-Range"] = f"bytes */{size}"
        return Plan(416, 0, 0, headers)
    headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    return Plan(206, start, end - start + 1, headers)


async def stream_file(
    request: web.Request,
    plan: Plan,
    path: Path,
    *,
    rate: float | None,
    fault: AssetFault | None,
    stopping: asyncio.Event,
) -> web.StreamResponse:
    """Send `plan` from `path`, paced to `rate` bytes/s, misbehaving as `fault` says."""
    extra = fault.extra_bytes if fault else 0
    resp = web.StreamResponse(status=plan.status, headers=plan.headers)
    resp.content_length = plan.length + extra
    if fault and fault.headers:
        resp.headers.update(fault.headers)
    await resp.prepare(request)
    if request.method == "HEAD":
        await resp.write_eof()
        return resp
    if fault and fault.hang:
        # Headers are out; now stall until the server stops, then drop the connection.
        await stopping.wait()
        drop_connection(request)
        return resp
    try:
        await _send_body(resp, plan, path, rate=rate, fault=fault)
    except ConnectionError:
        # The client hung up mid-body (gave up, or a truncate fault closed it): nothing to do.
        return resp
    if fault and fault.truncate_at is not None and fault.truncate_at < plan.length + extra:
        # close() (not abort) so the bytes already written still reach the client.
        if request.transport is not None:
            request.transport.close()
        return resp
    await resp.write_eof()
    return resp


async def _send_body(
    resp: web.StreamResponse,
    plan: Plan,
    path: Path,
    *,
    rate: float | None,
    fault: AssetFault | None,
) -> None:
    extra = fault.extra_bytes if fault else 0
    limit = plan.length + extra
    if fault and fault.truncate_at is not None:
        limit = min(limit, fault.truncate_at)
    chunk = CHUNK if rate is None else max(4096, min(CHUNK, int(rate / 20)))
    junk = (b"JUNK" * (extra // 4 + 1))[:extra]
    began = time.monotonic()
    sent = 0
    # Blocking reads of at most 256 KiB from the page cache are cheaper than a thread hop.
    with open(path, "rb") as fh:  # noqa: ASYNC230
        fh.seek(plan.start)
        while sent < limit:
            want = min(chunk, limit - sent)
            data = fh.read(min(want, max(0, plan.length - sent)))
            if len(data) < want:
                # Past the real body: the junk bytes of an extra_bytes fault.
                done = sent + len(data) - plan.length
                data += junk[max(0, done) : max(0, done) + want - len(data)]
            if not data:
                break
            await resp.write(data)
            sent += len(data)
            if rate:
                await asyncio.sleep(max(0.0, sent / rate - (time.monotonic() - began)))


def drop_connection(request: web.Request) -> None:
    """Abort the connection without an answer (a TCP reset as the client sees it)."""
    if request.transport is not None:
        request.transport.abort()
