"""The URLs a config names, parsed at the edge: a bucket (`-o s3://...`) and a PostgreSQL
catalog (`--catalog postgresql://...`). A catalog's password is never part of a message."""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


@dataclass(frozen=True, slots=True)
class BucketUrl:
    """`-o s3://bucket/prefix`: the archive is the objects under `prefix/` in `bucket`."""

    bucket: str
    prefix: str  # "" or "a/b": no leading or trailing slash, no empty, "." or ".." part

    @classmethod
    def parse(cls, text: str) -> BucketUrl:
        """Raise ValueError with the reason when `text` is no usable s3:// URL."""
        bucket, _, prefix = text.removeprefix("s3://").partition("/")
        if not _BUCKET.fullmatch(bucket):
            raise ValueError(f"{bucket!r} is not a bucket name (3-63 of a-z 0-9 . -)")
        prefix = prefix.strip("/")
        parts = prefix.split("/") if prefix else []
        if any(p in ("", ".", "..") or not p.isprintable() for p in parts):
            raise ValueError(f"prefix {prefix!r} has an empty, '.', '..' or unprintable part")
        return cls(bucket, prefix)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"


@dataclass(frozen=True, slots=True)
class CatalogUrl:
    """`--catalog postgresql://user[:password]@host[:port]/dbname`: the catalog in PostgreSQL.

    `url` goes to libpq as given (it reads PGPASSWORD and ~/.pgpass when the URL has no
    password); messages name the database by `where` alone, never with the password.
    """

    url: str = field(repr=False)
    host: str
    port: int
    dbname: str
    password: str | None = field(repr=False)

    @classmethod
    def parse(cls, text: str) -> CatalogUrl:
        """Raise ValueError with the reason when `text` is no usable PostgreSQL URL."""
        parts = urllib.parse.urlsplit(text)
        if parts.scheme not in ("postgresql", "postgres"):
            raise ValueError("not a postgresql:// URL")
        try:
            port = parts.port or 5432
        except ValueError as exc:
            raise ValueError("the port is not a number from 1 to 65535") from exc
        dbname = urllib.parse.unquote(parts.path.removeprefix("/"))
        if not dbname or "/" in dbname:
            raise ValueError("no database name after the host")
        if parts.fragment:
            raise ValueError("a '#' fragment")
        password = urllib.parse.unquote(parts.password) if parts.password else None
        # No host: libpq's local socket (or the `host` of the query string).
        host = parts.hostname or urllib.parse.parse_qs(parts.query).get("host", ["local"])[0]
        return cls(text, host, port, dbname, password)

    @property
    def where(self) -> str:
        """host:port/dbname, for messages."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}/{self.dbname}"

    def __str__(self) -> str:
        return f"postgresql://{self.where}"


_PASSWORD = re.compile(r"(://[^/@:]*:)[^/@]*@")


def check_catalog(value: Any, where: str) -> CatalogUrl:
    """A PostgreSQL URL; the message about a bad one never shows its password."""
    if isinstance(value, CatalogUrl):
        return value
    shown = _PASSWORD.sub(r"\1<hidden>@", value) if isinstance(value, str) else repr(value)[:80]
    try:
        if not isinstance(value, str) or _CONTROL.search(value) is not None:
            raise ValueError("not a URL")
        return CatalogUrl.parse(value.strip())
    except ValueError as exc:
        raise ConfigError(
            f"config key 'catalog' ({where}): expected postgresql://user[:password]@host[:port]"
            f"/dbname ({exc}), got {shown[:80]}"
        ) from exc
