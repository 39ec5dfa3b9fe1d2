"""What the emulator's origins answer: the API (retrieve, listing, accounts; its faults and the
account's trouble first) and the CDN and uploads hosts (signed files, Range, faults).

`Emulator` (server.py) holds the state these read and serves them on loopback.
"""

from __future__ import annotations

import asyncio
import json
import re
from urllib.parse import unquote

from aiohttp import web

from archiver.testing import listing
from archiver.testing.accounts import ACCOUNTS, TroubleBook, accounts_answer
from archiver.testing.faults import FaultBook, api_fault_answer, early_asset_answer, trickle
from archiver.testing.signing import UrlSigner
from archiver.testing.store import Store
from archiver.testing.streaming import plan_response, stream_file

_PREFIX = "/v1/runwayml/tasks/"
_ACCOUNTS_PATHS = ("/v1/runwayml/accounts", "/v1/runwayml/accounts/")
# The task id faults use for listing requests: `api_fault(LISTING, ...)`.
LISTING = "<listing>"
_TASK_ID = re.compile(r"^user:[^\s:]+-runwayml:\S+@\S+-task:[0-9A-Fa-f-]{36}$")
_JSON = {"Content-Type": "application/json; charset=utf-8"}


def error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message, "code": status}, status=status)


def target_of(raw_path: str) -> str | None:
    """The task id a request is about, LISTING or ACCOUNTS; None for any other path."""
    path = raw_path.partition("?")[0]
    if path in (_PREFIX, _PREFIX.rstrip("/")):
        return LISTING
    if path in _ACCOUNTS_PATHS:
        return ACCOUNTS
    # Decode once from the raw path: ':' and '@' may come verbatim or as %3A / %40.
    return unquote(path[len(_PREFIX) :]) if path.startswith(_PREFIX) else None


class Origins:
    """The answers of the three origins, from the state the emulator keeps."""

    token: str
    api_delay: float
    cdn_rate: float | None
    range_support: bool
    listing_order: str
    _store: Store
    _faults: FaultBook
    _trouble: TroubleBook
    _signer: UrlSigner
    _stopping: asyncio.Event

    async def _api_answer(self, request: web.Request) -> web.StreamResponse | None:
        task_id = target_of(request.raw_path)
        if self.api_delay:
            await asyncio.sleep(self.api_delay)
        fault = self._faults.take_api(task_id)
        if fault is not None and fault.trickle:
            data = self._store.served_json(task_id) if task_id else None
            await trickle(request, fault, data, self._stopping)
            return None
        if fault is not None:
            return await api_fault_answer(fault)
        if task_id is None or request.method != "GET":
            return error(404, "Not found.")
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return error(401, "Unauthorized")
        # The account's trouble (402, 596) comes before anything about the request itself.
        trouble = self._trouble.take(task_id)
        if trouble is not None:
            return web.json_response(trouble.answer(), status=trouble.status)
        if task_id == LISTING:
            return self._listing_answer(request)
        if task_id == ACCOUNTS:
            emails = self._store.account_emails()
            return (
                web.json_response(accounts_answer(emails))
                if emails
                else error(404, listing.NO_CONFIG)
            )
        return self._task_answer(task_id)

    def _task_answer(self, task_id: str) -> web.Response:
        if not _TASK_ID.match(task_id):
            return error(400, f"Invalid taskId {task_id!r}: expected user:…-runwayml:…-task:…")
        with self._store.lock:
            raw = self._store.raw.get(task_id)
        if raw is not None:
            return web.Response(
                body=raw.body, status=raw.status, headers={"Content-Type": raw.content_type}
            )
        data = self._store.served_json(task_id)
        if data is None:
            return error(404, "Not found.")
        return web.Response(body=json.dumps(data, ensure_ascii=False).encode(), headers=_JSON)

    def _listing_answer(self, request: web.Request) -> web.Response:
        try:
            query = listing.parse_query(request.query)
            page = self._store.listed(query, self.listing_order)
        except listing.Refused as refused:
            return error(refused.status, str(refused))
        return web.Response(body=json.dumps(page, ensure_ascii=False).encode(), headers=_JSON)

    async def _asset_answer(self, origin: str, request: web.Request) -> web.StreamResponse | None:
        raw = request.raw_path
        fault = self._faults.take_asset(raw)
        if fault is not None:
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.reset:
                return None
            early = early_asset_answer(fault)
            if early is not None:
                return early
        asset = self._store.asset(origin, raw.partition("?")[0])
        if asset is None:
            return web.json_response({"error": "not found"}, status=404)
        refusal = self._signer.check(raw)
        if refusal is not None:
            return web.json_response({"error": refusal}, status=403)
        if request.method not in ("GET", "HEAD"):
            return web.json_response({"error": "method not allowed"}, status=405)
        path, content_type = asset
        plain = fault is None and self.cdn_rate is None and self.range_support
        # aiohttp's FileResponse reads If-Range only as a date and would honour Range under a
        # stale ETag, so entity-tag validators go through our own response.
        if plain and "If-Range" not in request.headers:
            # The normal case: sendfile, with aiohttp's own Range and ETag handling.
            return web.FileResponse(path, headers={"Content-Type": content_type})
        plan = plan_response(
            request,
            path,
            content_type,
            range_support=self.range_support,
            if_range=not (fault and fault.ignore_if_range),
        )
        if plan.status == 416:
            return web.Response(status=416, headers=plan.headers)
        return await stream_file(
            request, plan, path, rate=self.cdn_rate, fault=fault, stopping=self._stopping
        )
