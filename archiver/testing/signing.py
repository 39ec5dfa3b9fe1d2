"""Signed-looking CDN URLs: issue them with an expiry and check them byte for byte on arrival.

The query holds percent-encoded characters on purpose, so a client that re-quotes URLs fails.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import threading
import time
from urllib.parse import quote

_JWT = "_jwt="


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class UrlSigner:
    """Issues and verifies path+query strings; `expire_all` revokes everything issued so far."""

    def __init__(self, secret: bytes | None = None) -> None:
        self._secret = secret or secrets.token_bytes(32)
        # A serial per URL plus a floor lets expire_all revoke old URLs without a clock jump.
        self._lock = threading.Lock()
        self._serial = 0
        self._floor = 0

    def sign(
        self, path: str, ttl: float, *, download_name: str = "clip.mp4", jwt_only: bool = False
    ) -> str:
        """Return `path?query` valid for `ttl` seconds; `path` must already be URL-safe.

        Outputs carry a download name and a credential too; uploads (`jwt_only`) only `_jwt`.
        """
        with self._lock:
            self._serial += 1
            serial = self._serial
        disposition = quote(f'attachment; filename="{download_name}"', safe="")
        credential = quote("AKIAEMULATOR/20240801/us-east-1/s3/aws4_request", safe="")
        payload = {"exp": int(time.time() + ttl), "p": path, "n": serial}
        token = _b64(json.dumps(payload, separators=(",", ":")).encode())
        if jwt_only:
            unsigned = f"{path}?{_JWT}{token}."
        else:
            unsigned = (
                f"{path}?response-content-disposition={disposition}"
                f"&X-Amz-Credential={credential}&{_JWT}{token}."
            )
        return unsigned + self._mac(unsigned)

    def expire_all(self) -> None:
        """Make every URL issued so far answer 'expired'; later ones still work."""
        with self._lock:
            self._floor = self._serial + 1

    def check(self, raw_path: str) -> str | None:
        """Return None if `raw_path` is a valid, live URL, else the reason it is refused."""
        head, dot, sig = raw_path.rpartition(".")
        unsigned = head + dot
        path, _, query = unsigned.partition("?")
        if not dot or _JWT not in query or not hmac.compare_digest(sig, self._mac(unsigned)):
            return "signature mismatch"
        token = head.rpartition(_JWT)[2]
        try:
            payload = json.loads(_unb64(token))
        except (ValueError, binascii.Error):
            return "signature mismatch"
        if payload.get("p") != path:
            return "signature mismatch"
        with self._lock:
            floor = self._floor
        if payload.get("exp", 0) < time.time() or payload.get("n", 0) < floor:
            return "expired"
        return None

    def _mac(self, unsigned: str) -> str:
        digest = hmac.new(self._secret, unsigned.encode("utf-8"), hashlib.sha256).digest()
        return _b64(digest)
