"""The useapi.net client: a task by id, a page of the listing, the accounts; retried, errors
mapped once.

401, 402 and 596 are answers about the whole account (AccountError), which stop the whole run,
and so does an API that no request reaches (ApiUnreachable); anything else wrong is this
task's TaskError.
"""

from __future__ import annotations

import asyncio
import json
import re
import urllib.parse
from collections.abc import Mapping
from typing import Any

from yarl import URL

from . import http
from .config import Config
from .errors import (
    AccountBroken,
    AccountError,
    ApiError,
    ApiUnreachable,
    AuthError,
    InvalidTaskData,
    NetworkError,
    PaymentRequired,
    TransientError,
)
from .model import Task
from .retry import RetryPolicy, retrying
from .scrub import redact

MAX_JSON_BYTES = 16 * 1024 * 1024
# Real task JSON is a few levels deep; far deeper nesting is hostile and would exhaust the
# recursion of every consumer (YAML dumper, deep copies) further down.
MAX_JSON_DEPTH = 64
# Consecutive tasks lost on the wire, after the API had answered, that mean it has gone away.
UNREACHABLE_AFTER = 3
# useapi's words for a linked account that needs re-adding: "Account a@b in error state: why".
_BROKEN = re.compile(
    r"Account\s+(?P<email>[^\s@]+@[^\s:]+)\s+in error state(?::\s*(?P<why>.*))?", re.S
)
# RFC 3986 allows ':' and '@' in a path segment: the id reaches the server verbatim.
_ID_SAFE = ":@!$&'()*+,;=-._~"


class ApiClient:
    def __init__(
        self,
        session: http.Session,
        *,
        base_url: str,
        token: str,
        limits: http.Limits,
        policy: RetryPolicy,
        timeout: float = 60.0,
    ) -> None:
        self._session = session
        self._base = base_url.rstrip("/")
        self._auth = http.Auth(origin=URL(self._base).origin(), token=token)
        self._limits = limits
        self._policy = policy
        self._timeout = timeout
        self._gate = http.Gate()
        self._answered = False  # has any request of this run got an HTTP answer?
        self._lost_in_a_row = 0

    @classmethod
    def from_config(
        cls,
        session: http.Session,
        config: Config,
        *,
        limits: http.Limits | None = None,
        policy: RetryPolicy | None = None,
    ) -> ApiClient:
        assert config.token, "the command line checks for a token before any request"
        return cls(
            session,
            base_url=config.base_url,
            token=config.token,
            limits=limits or http.Limits.from_config(config),
            policy=policy or RetryPolicy.from_config(config),
            timeout=config.api_timeout,
        )

    def task_url(self, task_id: str) -> str:
        return f"{self._base}/runwayml/tasks/{urllib.parse.quote(task_id, safe=_ID_SAFE)}"

    async def fetch_task(self, task_id: str) -> Task:
        """The task as the API describes it now."""
        body = await self._call(self.task_url(task_id))
        return Task.from_json(parse_json(body), task_id=task_id)

    def listing_url(
        self, *, offset: int, limit: int, email: str | None = None, status: str | None = None
    ) -> str:
        query = {"offset": str(offset), "limit": str(limit)}
        if status:
            query["statuses"] = status
        if email:
            query["email"] = email
        return f"{self._base}/runwayml/tasks/?{urllib.parse.urlencode(query)}"

    async def list_tasks(
        self, *, offset: int, limit: int, email: str | None = None, status: str | None = None
    ) -> Any:
        """One page of an account's task listing (of one status, if given), as parsed JSON
        (discover.py reads it)."""
        url = self.listing_url(offset=offset, limit=limit, email=email, status=status)
        return parse_json(await self._call(url))

    async def accounts(self) -> list[str]:
        """The emails of the Runway accounts configured at useapi, and nothing else of the
        answer: it holds credentials, so it is never kept, shown or stored."""
        body = await self._call(f"{self._base}/runwayml/accounts")
        try:
            data = parse_json(body)
        except InvalidTaskData:
            # No preview of the body here: it may be a password cut short.
            raise InvalidTaskData("accounts: the answer is not JSON") from None
        return account_emails(data)

    async def _call(self, url: str) -> bytes:
        """One API answer, retried; an API no request reaches stops the run (ApiUnreachable)."""
        try:
            body = await retrying(lambda: self._fetch_once(url), self._policy)
        except NetworkError as exc:
            self._lost_in_a_row += 1
            if not self._answered or self._lost_in_a_row >= UNREACHABLE_AFTER:
                where = redact(self._base)
                gone = ApiUnreachable(f"the API at {where} is unreachable: {exc.reason}")
                self._limits.stop(gone)
                raise gone from exc
            raise
        self._lost_in_a_row = 0
        return body

    async def _fetch_once(self, url: str) -> bytes:
        async with self._limits.slot(self._limits.api, self._gate):
            try:
                # The whole answer, not only the gap between bytes: a trickle must end too.
                async with asyncio.timeout(self._timeout):
                    return await self._answer(url)
            except TimeoutError as exc:
                raise TransientError(
                    f"{redact(url)}: no complete answer within {self._timeout:g} s"
                ) from exc

    async def _answer(self, url: str) -> bytes:
        async with http.get(
            self._session, url, auth=self._auth, headers={"Accept": "application/json"}
        ) as response:
            self._answered = True
            if response.status in ACCOUNT_STATUSES:
                body = await response.read(MAX_JSON_BYTES)
                stop = account_error(response.status, body)
                self._limits.stop(stop)
                raise stop
            try:
                response.raise_for_transient()
            except TransientError as exc:
                if response.status == 429:
                    # Throttling is about the account, not this request: slow the whole lane,
                    # but never longer than any task may spend retrying.
                    wish = exc.retry_after or self._policy.initial_delay
                    self._gate.pause(min(wish, self._policy.total_seconds))
                raise
            body = await response.read(MAX_JSON_BYTES)
            if response.status != 200:
                raise ApiError(
                    f"the API answered HTTP {response.status}: {_error_text(body)}",
                    status=response.status,
                )
            return body


ACCOUNT_STATUSES = frozenset({401, 402, 596})


def account_error(status: int, body: bytes) -> AccountError:
    """What an answer about the whole account means, and what to do about it, in one line."""
    if status == 401:
        return AuthError(
            "the API rejected the token (HTTP 401 Unauthorized): set a valid useapi.net token"
            " in USEAPI_TOKEN (or token_file in the config)"
        )
    if status == 402:
        return PaymentRequired(
            "useapi.net answered HTTP 402 Payment Required: the subscription has lapsed; renew"
            " it at useapi.net, then run again"
        )
    said = _error_text(body)
    named = _BROKEN.search(said)
    if named is None:
        return AccountBroken(
            f"useapi.net answered HTTP 596 ({said}): a linked RunwayML account is in an error"
            " state; add it again at useapi.net, then run again"
        )
    why = f" ({named['why'].strip()})" if named["why"] and named["why"].strip() else ""
    return AccountBroken(
        f"useapi.net answered HTTP 596: the RunwayML account {named['email']} is in an error"
        f" state{why}; add {named['email']} again at useapi.net, then run again"
    )


def account_emails(data: Any) -> list[str]:
    """The emails of the accounts answer: an object keyed by email (what useapi serves), or a
    list of objects with an `email` (what some clients read). Every other field is dropped."""
    if isinstance(data, Mapping):
        found: list[Any] = [
            v.get("email", k) if isinstance(v, Mapping) else k for k, v in data.items()
        ]
    elif isinstance(data, list):
        found = [v.get("email") for v in data if isinstance(v, Mapping)]
    else:
        kind = "null" if data is None else type(data).__name__
        raise InvalidTaskData(f"accounts: expected an object keyed by email, got {kind}")
    emails = [e.strip() for e in found if isinstance(e, str) and "@" in e and e.strip()]
    if len(emails) != len(found):
        raise InvalidTaskData("accounts: an entry without a usable email")
    return list(dict.fromkeys(emails))


def parse_json(body: bytes) -> Any:
    """The API's JSON; anything that is not (bad bytes, absurd depth) is this task's error."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidTaskData(f"the API answer is not JSON ({_preview(body)})") from exc
    if _depth(data) > MAX_JSON_DEPTH:
        raise InvalidTaskData(f"the API answer is nested deeper than {MAX_JSON_DEPTH} levels")
    return data


def _depth(value: Any) -> int:
    """Nesting depth, iteratively: the value may be deep enough to break recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if level > MAX_JSON_DEPTH:
            break
        if isinstance(item, dict):
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, level + 1) for v in item)
    return deepest


def _error_text(body: bytes) -> str:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return _preview(body)
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        return str(data["error"])[:200]
    return _preview(body)


def _preview(body: bytes) -> str:
    text = body[:80].decode("utf-8", "replace")
    return repr(text) + ("…" if len(body) > 80 else "")
