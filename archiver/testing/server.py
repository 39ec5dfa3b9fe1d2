"""The useapi.net emulator: API, CDN and uploads origins on loopback, with switchable faults.

Tests seed tasks and arm faults from their own thread; the three servers run on one event loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import resource
import socket
import time
from collections import Counter
from contextlib import AbstractContextManager
from pathlib import Path
from types import TracebackType
from typing import Any

from aiohttp import web

from archiver.testing.accounts import Trouble, TroubleBook
from archiver.testing.faults import ApiFault, AssetFault, FaultBook, Seen
from archiver.testing.lifecycle import Lifecycle
from archiver.testing.media import MediaLibrary, VideoSpec
from archiver.testing.origins import LISTING, Origins
from archiver.testing.scenarios import SCENARIOS
from archiver.testing.signing import UrlSigner
from archiver.testing.store import CDN, UPLOADS, RawAnswer, Store
from archiver.testing.streaming import drop_connection
from archiver.testing.tasks import ArtifactSpec
from archiver.testing.threads import in_thread

_SEEN = web.RequestKey("seen", Seen)
_DROPPED = web.RequestKey("dropped", bool)
__all__ = ["LISTING", "Emulator"]


def _bind() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock


class Emulator(Origins):
    """useapi.net's "Retrieve task" endpoint plus signed-URL CDN and uploads hosts, on 127.0.0.1.

    Outputs (artifacts, previews) come from the CDN, input assets named in the options from the
    uploads host, as with RunwayML's two CloudFront hosts.
    """

    def __init__(
        self, media: MediaLibrary, *, token: str = "test-token", url_ttl: float = 3600.0
    ) -> None:
        self.media = media
        self.token = token
        self.api_delay = 0.0
        self.cdn_rate: float | None = None
        self.range_support = True
        # The listing's order: "newest" first (the default), "oldest" first, or "shuffled".
        self.listing_order = "newest"
        self.requests: list[Seen] = []
        # Off for long benchmarks: a log entry per request would grow without bound, while the
        # per-origin counts below are kept either way.
        self.record_requests = True
        self.counts: Counter[str] = Counter()
        self.statuses: Counter[str] = Counter()
        self._faults = FaultBook()
        self._trouble = TroubleBook()
        self._signer = UrlSigner()
        # Bind now so the URLs (and seeded URLs) are known before start().
        self._socks = (_bind(), _bind(), _bind())
        ports = [sock.getsockname()[1] for sock in self._socks]
        self.api_url = f"http://127.0.0.1:{ports[0]}/v1"
        self.cdn_url = f"http://127.0.0.1:{ports[1]}"
        self.uploads_url = f"http://127.0.0.1:{ports[2]}"
        origins = {CDN: self.cdn_url, UPLOADS: self.uploads_url}
        self._store = Store(media, self._signer, origins, url_ttl)
        self._runners: list[web.AppRunner] = []
        self._stopping = asyncio.Event()

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Start listening on every origin."""
        self._stopping = asyncio.Event()
        handlers = (self._api, self._asset_handler(CDN), self._asset_handler(UPLOADS))
        for sock, handler in zip(self._socks, handlers, strict=True):
            app = web.Application()
            app.on_response_prepare.append(self._on_prepare)
            app.router.add_route("*", "/{tail:.*}", handler)
            # A short shutdown timeout: paced or hanging downloads must not hold up stop().
            runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
            await runner.setup()
            # A deep backlog: benchmarks open hundreds of connections at once.
            await web.SockSite(runner, sock, backlog=1024).start()
            self._runners.append(runner)

    async def stop(self) -> None:
        """Stop every origin, releasing any hanging responses."""
        self._stopping.set()
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()
        for sock in self._socks:
            sock.close()

    async def __aenter__(self) -> Emulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def running_in_thread(self) -> AbstractContextManager[Emulator]:
        """Run the servers on an event loop in a daemon thread for the duration of the block."""
        return in_thread(self, start=self.start, stop=self.stop)

    # -- seeding -------------------------------------------------------------------------

    def add_task(
        self,
        status: str = "SUCCEEDED",
        *,
        task_id: str | None = None,
        name: str | None = "Gen-3 Alpha 1234, a cat",
        prompt: str = "Slow motion zoom in",
        options: dict[str, Any] | None = None,
        artifacts: list[ArtifactSpec] | None = None,
        previews: int = 3,
        video: VideoSpec = VideoSpec(),  # noqa: B008 - frozen, so sharing the default is safe
        error: Any = None,
        quirks: bool = False,
        created_at: str | None = None,
        lifecycle: Lifecycle | None = None,
        task_type: str = "gen3a",
        email: str | None = None,
    ) -> str:
        """Seed a task and return its taskId; artifacts=None means one video from `video`.

        `email` names the Runway account in the task id (by default the emulator's one).

        `created_at` is the API's timestamp (`tasks.timestamp(datetime)`); `lifecycle` makes
        the task move on by itself, starting where it says (`status` is then not used).
        options=None gives the page's Gen-3 options with a signed `init_image` input; `Upload`s
        anywhere in `options` become signed input URLs on the uploads host.
        """
        specs = (
            artifacts if artifacts is not None else [ArtifactSpec(video=video, previews=previews)]
        )
        return self._store.add(
            status,
            task_id=task_id,
            name=name,
            prompt=prompt,
            options=options,
            specs=specs,
            error=error,
            quirks=quirks,
            created_at=created_at,
            lifecycle=lifecycle,
            task_type=task_type,
            **({"email": email} if email else {}),
        )

    def add_scenario(self, name: str) -> str:
        """Seed one of `SCENARIOS` (today's response shapes, real media) and return its taskId."""
        if name not in SCENARIOS:
            raise ValueError(f"unknown scenario {name!r}; expected one of {sorted(SCENARIOS)}")
        spec = SCENARIOS[name]()
        return self.add_task(
            spec.status,
            name=spec.name,
            options=spec.options,
            artifacts=spec.artifacts,
            error=spec.error,
            task_type=spec.task_type,
        )

    def set_status(self, task_id: str, status: str) -> None:
        """Change a task's status; a task reaching SUCCEEDED gets its artifacts then."""
        self._store.set_status(task_id, status)

    def task_json(self, task_id: str) -> dict[str, Any]:
        """The live dict served for `task_id`; mutate it to change what clients see."""
        with self._store.lock:
            return self._store.tasks[task_id].json

    def set_raw(
        self,
        task_id: str,
        body: bytes,
        *,
        status: int = 200,
        content_type: str = "application/json",
    ) -> None:
        """Serve exactly `body` for `task_id` (seeded or not) from now on."""
        with self._store.lock:
            self._store.raw[task_id] = RawAnswer(body, status, content_type)

    def remove_task(self, task_id: str) -> None:
        """Forget a task (and any raw answer): the API answers 404 for it."""
        with self._store.lock:
            self._store.tasks.pop(task_id, None)
            self._store.raw.pop(task_id, None)

    def replace_video(self, task_id: str, index: int, video: VideoSpec) -> Path:
        """Serve another video at artifact `index`'s URL (same path: a new version of the file),
        and describe it in the task JSON; return the new file."""
        return self._store.replace_video(task_id, index, video)

    def media_of(self, task_id: str) -> list[Path]:
        """Served files in order: artifact 0, its previews, artifact 1, ..., then each input."""
        return self._store.media_of(task_id)

    def inputs_of(self, task_id: str) -> dict[str, Path]:
        """Each option path that holds an input URL (`options.referenceImages[1].url`), and the
        file served behind it."""
        with self._store.lock:
            return dict(self._store.tasks[task_id].inputs)

    @property
    def url_ttl(self) -> float:
        """Seconds a newly served asset URL stays valid; negative serves expired ones."""
        return self._store.url_ttl

    @url_ttl.setter
    def url_ttl(self, seconds: float) -> None:
        self._store.url_ttl = seconds

    def expire_urls(self) -> None:
        """Make every asset URL issued so far answer 403; URLs issued later still work."""
        self._signer.expire_all()

    def clear_requests(self) -> None:
        """Forget the recorded requests."""
        self.requests.clear()

    @property
    def full_size_previews(self) -> bool:
        """Seed previews at the video's full size with grain (50-150 KB), as real ones are."""
        return self._store.full_size_previews

    @full_size_previews.setter
    def full_size_previews(self, value: bool) -> None:
        self._store.full_size_previews = value

    def stats(self) -> dict[str, Any]:
        """Requests per origin and per `origin status` since start, and this process's CPU."""
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "requests": dict(self.counts),
            "statuses": dict(self.statuses),
            "cpu_user": usage.ru_utime,
            "cpu_sys": usage.ru_stime,
            "max_rss_kb": usage.ru_maxrss,
        }

    # -- faults --------------------------------------------------------------------------

    def api_fault(
        self,
        task_id: str | None = None,
        *,
        status: int = 500,
        times: int = 1,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
        reset: bool = False,
        redirect_to: str | None = None,
        trickle: float = 0.0,
        skip: int = 0,
    ) -> None:
        """Misbehave on `times` API requests for `task_id` (None: any; LISTING: the listing),
        after letting `skip` of them through.

        `trickle` sends the whole answer (the task JSON, or `body`) one byte at a time, that
        many seconds apart, headers included: a server that never stalls long enough for a
        read timeout, yet never finishes.
        """
        fault = ApiFault(task_id, times, status, body, headers, delay, reset, redirect_to)
        self._faults.arm_api(dataclasses.replace(fault, trickle=trickle, skip=skip))

    def asset_fault(
        self,
        match: str,
        *,
        times: int = 1,
        status: int | None = None,
        headers: dict[str, str] | None = None,
        truncate_at: int | None = None,
        extra_bytes: int = 0,
        delay: float = 0.0,
        hang: bool = False,
        reset: bool = False,
        redirect_to: str | None = None,
        ignore_if_range: bool = False,
    ) -> None:
        """Misbehave on the next `times` CDN or uploads requests whose raw path has `match`."""
        fault = AssetFault(
            match, times, status, headers, truncate_at, extra_bytes,
            delay, hang, reset, redirect_to, ignore_if_range,
        )  # fmt: skip
        self._faults.arm_asset(fault)

    def account_trouble(
        self,
        status: int | None,
        *,
        after: int = 0,
        only: str | None = None,
        email: str | None = None,
        message: str | None = None,
    ) -> None:
        """Answer every API request `status` (402, 596, 401...) with useapi's body for it, from
        now until it is set to None: the account's trouble lasts until the user fixes it.

        `after` requests are answered normally first (trouble that begins mid-run); `only`
        limits it to LISTING, ACCOUNTS or one task id; `email` is the account a 596 names.
        """
        trouble = None
        if status is not None:
            trouble = Trouble(status, after, only, email or self.account_emails[0], message)
        self._trouble.set(trouble)

    @property
    def account_emails(self) -> list[str]:
        """The Runway accounts configured at useapi (served by /runwayml/accounts)."""
        return self._store.account_emails()

    @account_emails.setter
    def account_emails(self, emails: list[str] | None) -> None:
        """Configure these accounts (None: the default one and every one a task names)."""
        with self._store.lock:
            self._store.accounts = None if emails is None else list(emails)

    def clear_faults(self) -> None:
        """Disarm every fault not yet consumed, and end any account trouble."""
        self._faults.clear()
        self._trouble.set(None)

    # -- request log ---------------------------------------------------------------------

    def _arrive(self, origin: str, request: web.Request) -> None:
        seen = Seen(
            origin, request.method, request.raw_path, dict(request.headers), 0, time.monotonic()
        )
        request[_SEEN] = seen
        self.counts[origin] += 1
        if self.record_requests:
            self.requests.append(seen)

    async def _on_prepare(self, request: web.Request, response: web.StreamResponse) -> None:
        # Headers are going out: now the status is final (FileResponse picks 200/206/416 late).
        seen = request.get(_SEEN)
        if seen is None or request.get(_DROPPED):
            return
        self.statuses[f"{seen.origin} {response.status}"] += 1
        if not self.record_requests:
            return
        for i in range(len(self.requests) - 1, -1, -1):
            # Replace the placeholder in place so the log keeps arrival order.
            if self.requests[i] is seen:
                self.requests[i] = dataclasses.replace(seen, status=response.status)
                return

    async def _answer_or_drop(
        self, request: web.Request, resp: web.StreamResponse | None
    ) -> web.StreamResponse:
        if resp is None:
            # No answer at all: the log keeps status 0 and the client sees a reset.
            request[_DROPPED] = True
            drop_connection(request)
            return web.Response()
        return resp

    # -- the handlers of the three origins (what they answer: origins.py) --------------------

    async def _api(self, request: web.Request) -> web.StreamResponse:
        self._arrive("api", request)
        return await self._answer_or_drop(request, await self._api_answer(request))

    def _asset_handler(self, origin: str) -> Any:
        async def handle(request: web.Request) -> web.StreamResponse:
            self._arrive(origin, request)
            return await self._answer_or_drop(request, await self._asset_answer(origin, request))

        return handle
