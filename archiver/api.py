"""The useapi.net client: one request per task, retried when transient, its errors mapped once.

A 401 is an AuthError, which stops the whole run; anything else wrong is this task's TaskError.
"""

from __future__ import annotations

import json
import urllib.parse

import aiohttp
from yarl import URL

from . import http
from .errors import ApiError, AuthError, InvalidTaskData, TransientError
from .model import Task
from .retry import RetryPolicy, retrying

MAX_JSON_BYTES = 16 * 1024 * 1024
# RFC 3986 allows ':' and '@' in a path segment: the id reaches the server verbatim.
_ID_SAFE = ":@!$&'()*+,;=-._~"


class ApiClient:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str,
        token: str,
        limits: http.Limits,
        policy: RetryPolicy,
    ) -> None:
        self._session = session
        self._base = base_url.rstrip("/")
        self._auth = http.Auth(origin=URL(self._base).origin(), token=token)
        self._limits = limits
        self._policy = policy
        self._gate = http.Gate()

    def task_url(self, task_id: str) -> str:
        return f"{self._base}/runwayml/tasks/{urllib.parse.quote(task_id, safe=_ID_SAFE)}"

    async def fetch_task(self, task_id: str) -> Task:
        """The task as the API describes it now."""
        body = await retrying(lambda: self._fetch_once(task_id), self._policy)
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidTaskData(f"the API answer is not JSON ({_preview(body)})") from exc
        return Task.from_json(data, task_id=task_id)

    async def _fetch_once(self, task_id: str) -> bytes:
        async with (
            self._limits.slot(self._limits.api, self._gate),
            http.get(
                self._session,
                self.task_url(task_id),
                auth=self._auth,
                headers={"Accept": "application/json"},
            ) as response,
        ):
            if response.status == 401:
                rejected = AuthError("the API rejected the token (HTTP 401 Unauthorized)")
                self._limits.stop(rejected)
                raise rejected
            try:
                http.raise_for_transient(response)
            except TransientError as exc:
                if response.status == 429:
                    # Throttling is about the account, not this request: slow the whole lane.
                    self._gate.pause(exc.retry_after or self._policy.initial_delay)
                raise
            body = await http.read_body(response, MAX_JSON_BYTES)
            if response.status != 200:
                raise ApiError(
                    f"the API answered HTTP {response.status}: {_error_text(body)}",
                    status=response.status,
                )
            return body


def _error_text(body: bytes) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return _preview(body)
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        return str(data["error"])[:200]
    return _preview(body)


def _preview(body: bytes) -> str:
    text = body[:80].decode("utf-8", "replace")
    return repr(text) + ("…" if len(body) > 80 else "")
