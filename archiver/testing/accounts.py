"""The emulator's accounts: `GET /runwayml/accounts`, and the answers about the whole account
(401, 402, 596) that useapi gives on any call while something is wrong with it.

The shapes are those of the reference page (`useapi-runwayml-accounts.md`): an object keyed by
email, whose entries also carry what a client must never show (a password, a token).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from archiver.testing.tasks import EMAIL

# The target faults name for `GET /runwayml/accounts`, as LISTING names the listing.
ACCOUNTS = "<accounts>"
MESSAGES = {
    401: "Unauthorized",
    402: "Payment required: your useapi.net subscription has expired, renew it to continue",
    596: "Account {email} in error state: refresh token rejected",
}
# Secrets the accounts answer carries, so tests can look for them everywhere a client writes.
PASSWORD = "emulated-runway-password-5f1e"
JWT = "eyJhbGciOiJIUzI1NiJ9.emulated-runway-jwt.c2lnbmF0dXJl"


@dataclass
class Trouble:
    """Something wrong with the whole account: requests are answered `status` until cleared.

    `after` requests it applies to are answered normally first (trouble that begins mid-run);
    `only` limits it to LISTING, ACCOUNTS or one task id (None: every request).
    """

    status: int
    after: int = 0
    only: str | None = None
    email: str = EMAIL
    message: str | None = None

    def answer(self) -> dict[str, Any]:
        text = self.message or MESSAGES.get(self.status, f"Emulated error {self.status}")
        return {"error": text.format(email=self.email), "code": self.status}


class TroubleBook:
    """The account's trouble, set from the test thread and consumed by the server thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._trouble: Trouble | None = None

    def set(self, trouble: Trouble | None) -> None:
        with self._lock:
            self._trouble = trouble

    def take(self, target: str | None) -> Trouble | None:
        """The trouble that answers a request for `target` now, if any (counting `after`)."""
        with self._lock:
            trouble = self._trouble
            if trouble is None or trouble.only not in (None, target):
                return None
            if trouble.after > 0:
                trouble.after -= 1
                return None
            return trouble


def accounts_answer(emails: list[str]) -> dict[str, Any]:
    """`GET /runwayml/accounts`: every configured account by email, credentials included."""
    return {
        email: {
            "email": email,
            "password": PASSWORD,
            "maxJobs": 5,
            "jwt": {"exp": 1734858598, "iat": 1732266598, "id": 100000 + n, "token": JWT},
        }
        for n, email in enumerate(emails)
    }
