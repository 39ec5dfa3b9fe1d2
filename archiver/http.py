"""The one module that speaks aiohttp: sessions, safe redirects, the token's origin, error mapping.

Callers get a `Session` to pass around and a `Response` view of each answer (status, headers,
the body in chunks); every aiohttp or socket error becomes a NetworkError here, with signed
query strings redacted.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import math
import string
import time
import urllib.parse
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import TypeAlias

import aiohttp
from yarl import URL

from .config import Config
from .errors import ArchiverError, NetworkError, TransferError, TransientError
from .scrub import redact

REDIRECTS = frozenset({301, 302, 303, 307, 308})
# Besides these, every 5xx: a server error says nothing lasting about the request.
TRANSIENT_STATUSES = frozenset({408, 429})
MAX_REDIRECTS = 5
# Every printable ASCII character stays as it is (signed URLs are compared byte for byte);
# anything else is percent-encoded as UTF-8, as a browser would before sending it.
_URL_SAFE = "".join(c for c in string.printable if c not in string.whitespace)


@dataclass(frozen=True)
class Auth:
    """The Bearer token and the only origin it may be sent to."""

    origin: URL
    token: str = field(repr=False)


@dataclass
class Limits:
    """Requests in flight: each lane has its own cap, and all share the global one.

    Once `stop` is called no slot is granted again, so a fatal answer ends all requests at once.
    """

    http: asyncio.Semaphore
    api: asyncio.Semaphore
    download: asyncio.Semaphore
    stopped: ArchiverError | None = None

    @classmethod
    def from_config(cls, config: Config) -> Limits:
        return cls(
            http=asyncio.Semaphore(config.concurrency),
            api=asyncio.Semaphore(config.api_concurrency),
            download=asyncio.Semaphore(config.download_concurrency),
        )

    @contextlib.asynccontextmanager
    async def slot(self, lane: asyncio.Semaphore, gate: Gate | None = None) -> AsyncIterator[None]:
        """A place for one request; with a gate, none while the lane is paused."""
        while True:
            if gate is not None:
                await gate.wait()
            # Lane first, then the shared cap: one fixed order, so no two requests deadlock.
            async with lane, self.http:
                if self.stopped is not None:
                    raise self.stopped
                # A pause may have begun while we queued: give the slot back and wait it out.
                if gate is None or not gate.paused:
                    yield
                    return

    def stop(self, reason: ArchiverError) -> None:
        self.stopped = reason


class Gate:
    """A lane-wide pause: after a 429 every request of the lane waits out the server's wish."""

    def __init__(self) -> None:
        self._until = 0.0

    def pause(self, seconds: float) -> None:
        self._until = max(self._until, time.monotonic() + seconds)

    @property
    def paused(self) -> bool:
        return self._until > time.monotonic()

    async def wait(self) -> None:
        # A loop, not an Event: another 429 may push the deadline further while we sleep.
        while (delay := self._until - time.monotonic()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(delay)


Session: TypeAlias = aiohttp.ClientSession  # one per run, passed to `get`; opaque elsewhere


def new_session(config: Config) -> Session:
    timeout = aiohttp.ClientTimeout(
        total=None, sock_connect=config.connect_timeout, sock_read=config.read_timeout
    )
    connector = aiohttp.TCPConnector(limit=config.concurrency, limit_per_host=0)
    # auto_decompress off: the bytes on disk must be the bytes the server counted.
    return aiohttp.ClientSession(
        timeout=timeout,
        connector=connector,
        auto_decompress=False,
        headers={"User-Agent": "runway-archiver/0.1", "Accept-Encoding": "identity"},
    )


def parse_url(text: str) -> URL:
    """Keep the URL byte for byte as given (no re-quoting) and refuse what is not plain http(s)."""
    try:
        url = URL(urllib.parse.quote(text, safe=_URL_SAFE), encoded=True)
    except (ValueError, TypeError) as exc:
        raise TransferError(f"not a URL: {redact(text)}") from exc
    if url.scheme not in ("http", "https") or not url.host:
        raise TransferError(f"refused URL scheme {url.scheme or 'none'!r}: {redact(text)}")
    if url.user is not None or url.password is not None:
        raise TransferError(f"refused URL with user info: {redact(text)}")
    return url


@dataclass(frozen=True, slots=True)
class Response:
    """What the archiver reads of an answer: its status, headers and body, and where it came
    from; valid inside the `get` that yielded it."""

    status: int
    url: URL
    headers: Mapping[str, str]  # names compare case-insensitively, as HTTP says
    content_length: int | None
    content_type: str  # application/octet-stream when the server named none
    _raw: aiohttp.ClientResponse = field(repr=False)

    @classmethod
    def of(cls, raw: aiohttp.ClientResponse) -> Response:
        return cls(
            status=raw.status,
            url=raw.url,
            headers=raw.headers,
            content_length=raw.content_length,
            content_type=raw.content_type,
            _raw=raw,
        )

    async def chunks(self, size: int) -> AsyncIterator[bytes]:
        """The body in chunks; a connection lost mid-body becomes a TransientError."""
        try:
            async for chunk in self._raw.content.iter_chunked(size):
                yield chunk
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            why = describe(exc)
            raise NetworkError(f"{redact(self.url)}: {why}", reason=why) from exc

    async def pieces(self) -> AsyncIterator[bytes]:
        """The body in the pieces it arrived in (at most a socket read each), never copied;
        a connection lost mid-body becomes a TransientError."""
        try:
            async for piece, _ in self._raw.content.iter_chunks():
                if piece:  # an empty one marks the end of an HTTP chunk
                    yield piece
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            why = describe(exc)
            raise NetworkError(f"{redact(self.url)}: {why}", reason=why) from exc

    async def read(self, limit: int) -> bytes:
        """The whole body, refused once it grows past `limit` bytes."""
        body = bytearray()
        async for chunk in self.chunks(65536):
            body += chunk
            if len(body) > limit:
                raise TransferError(f"{redact(self.url)}: answer larger than {limit} bytes")
        return bytes(body)

    def raise_for_transient(self) -> None:
        """5xx, 408 and 429 are worth another try, honouring Retry-After when given."""
        if self.status in TRANSIENT_STATUSES or 500 <= self.status <= 599:
            raise TransientError(
                f"{redact(self.url)}: HTTP {self.status}",
                retry_after=retry_after(self.headers.get("Retry-After")),
            )


@contextlib.asynccontextmanager
async def get(
    session: Session,
    url: str,
    *,
    auth: Auth | None = None,
    headers: Mapping[str, str] | None = None,
) -> AsyncIterator[Response]:
    """GET with redirects followed by hand: the token goes to its own origin only."""
    target = parse_url(url)
    for _ in range(MAX_REDIRECTS + 1):
        sent = dict(headers or {})
        if auth is not None and target.origin() == auth.origin:
            sent["Authorization"] = f"Bearer {auth.token}"
        try:
            response = await session.get(target, headers=sent, allow_redirects=False)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            why = describe(exc)
            raise NetworkError(f"{redact(target)}: {why}", reason=why) from exc
        if response.status not in REDIRECTS or "Location" not in response.headers:
            try:
                yield Response.of(response)
            finally:
                response.release()
            return
        location = response.headers["Location"]
        response.release()
        target = _redirect_target(target, location)
    raise TransferError(f"{redact(url)}: more than {MAX_REDIRECTS} redirects")


def _redirect_target(current: URL, location: str) -> URL:
    try:
        joined = current.join(URL(location, encoded=True))
    except ValueError as exc:
        raise TransferError(f"{redact(current)}: unusable redirect") from exc
    nxt = parse_url(str(joined))
    if current.scheme == "https" and nxt.scheme != "https":
        raise TransferError(f"{redact(current)}: refused redirect from https to {nxt.scheme}")
    return nxt


def retry_after(value: str | None) -> float | None:
    """Retry-After as seconds from now, from either of its two forms."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value) if len(value) < 16 else math.inf
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return max(0.0, when.timestamp() - time.time())


def describe(exc: BaseException) -> str:
    """A short reason without the URL (aiohttp's messages carry it, query and all)."""
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "connection lost mid-body"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "server disconnected"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect ({exc.os_error.strerror or exc.os_error})"
    if isinstance(exc, aiohttp.ClientOSError | OSError):
        return f"connection error ({getattr(exc, 'strerror', None) or type(exc).__name__})"
    return type(exc).__name__
