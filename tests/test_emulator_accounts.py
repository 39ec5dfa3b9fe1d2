"""The emulator's accounts and answers about the whole account, over loopback, as the reference
page (useapi-runwayml-accounts.md) describes them."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from archiver.testing import ACCOUNTS, LISTING, ArtifactSpec, Emulator
from archiver.testing.accounts import JWT, PASSWORD
from archiver.testing.tasks import EMAIL

TINY = [ArtifactSpec(video=None, image=(16, 16), previews=0)]


async def get(http: aiohttp.ClientSession, emu: Emulator, path: str) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {emu.token}"}
    async with http.get(f"{emu.api_url}{path}", headers=headers) as resp:
        return resp.status, await resp.json()


async def test_accounts_are_an_object_keyed_by_email(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    """Every configured account by email, with maxJobs and the secrets the page warns of."""
    emu.add_task(artifacts=TINY, email="b@example.com")
    status, body = await get(http, emu, "/runwayml/accounts")
    assert status == 200
    assert list(body) == [EMAIL, "b@example.com"]
    for email, entry in body.items():
        assert entry["email"] == email and 1 <= entry["maxJobs"] <= 10
        assert entry["password"] == PASSWORD and entry["jwt"]["token"] == JWT
        assert {"exp", "iat", "id"} <= set(entry["jwt"])


async def test_accounts_configured_by_hand_and_none(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    """account_emails sets the accounts; with none, /accounts and the listing are 404."""
    emu.account_emails = ["x@example.com"]
    assert list((await get(http, emu, "/runwayml/accounts/"))[1]) == ["x@example.com"]
    emu.account_emails = []
    status, body = await get(http, emu, "/runwayml/accounts")
    assert (status, body["code"]) == (404, 404)
    assert body["error"].startswith("Configuration not found")
    assert (await get(http, emu, "/runwayml/tasks/?offset=0&limit=10"))[0] == 404


async def test_each_account_and_status_has_its_own_window(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    """offset counts within what email and statuses select; CANCELLED is refused as a filter."""
    failed = [emu.add_task("FAILED", artifacts=[], email="b@example.com") for _ in range(3)]
    done = [emu.add_task(artifacts=[], email="b@example.com") for _ in range(3)]
    emu.add_task(artifacts=[])
    status, page = await get(
        http, emu, "/runwayml/tasks/?offset=1&limit=5&statuses=FAILED&email=b%40example.com"
    )
    assert status == 200 and [t["taskId"] for t in page] == failed[::-1][1:]
    _, page = await get(
        http, emu, "/runwayml/tasks/?offset=2&limit=5&statuses=SUCCEEDED&email=b%40example.com"
    )
    assert [t["taskId"] for t in page] == [done[0]]
    status, refused = await get(
        http, emu, "/runwayml/tasks/?offset=0&limit=5&statuses=CANCELLED&email=b%40example.com"
    )
    assert (status, refused["code"]) == (400, 400)


@pytest.mark.parametrize(
    ("status", "said"),
    [
        (402, "Payment required: your useapi.net subscription has expired, renew it to continue"),
        (596, f"Account {EMAIL} in error state: refresh token rejected"),
    ],
)
async def test_account_trouble_answers_every_call_until_cleared(
    emu: Emulator, http: aiohttp.ClientSession, status: int, said: str
) -> None:
    """Trouble answers a retrieve, the listing and /accounts with useapi's body, until cleared."""
    task = emu.add_task(artifacts=TINY)
    emu.account_trouble(status)
    paths = (f"/runwayml/tasks/{task}", "/runwayml/tasks/?offset=0&limit=1", "/runwayml/accounts")
    for path in paths:
        assert await get(http, emu, path) == (status, {"error": said, "code": status})
    emu.account_trouble(None)
    assert (await get(http, emu, f"/runwayml/tasks/{task}"))[0] == 200


async def test_account_trouble_after_n_requests_and_on_one_target(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    """`after` lets that many requests through first; `only` limits it to the listing or the
    accounts; a 596 names the account it is given; a wrong token is still a 401 first."""
    task = emu.add_task(artifacts=TINY)
    emu.account_trouble(402, after=2)
    codes = [(await get(http, emu, f"/runwayml/tasks/{task}"))[0] for _ in range(4)]
    assert codes == [200, 200, 402, 402]
    emu.account_trouble(596, only=LISTING, email="b@example.com")
    assert (await get(http, emu, f"/runwayml/tasks/{task}"))[0] == 200
    status, body = await get(http, emu, "/runwayml/tasks/?offset=0&limit=1")
    assert status == 596 and body["error"].startswith("Account b@example.com in error state")
    emu.account_trouble(402, only=ACCOUNTS)
    assert (await get(http, emu, "/runwayml/tasks/?offset=0&limit=1"))[0] == 200
    assert (await get(http, emu, "/runwayml/accounts"))[0] == 402
    wrong = {"Authorization": "Bearer another"}
    async with http.get(f"{emu.api_url}/runwayml/accounts", headers=wrong) as resp:
        assert resp.status == 401
