"""Fixtures for bucket archives: one S3 server per session, a fresh prefix per test.

The server is moto's, in its own process on a loopback port, or the endpoint named by
ARCHIVER_TEST_S3_ENDPOINT (with AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION and
ARCHIVER_TEST_S3_BUCKET) where a real MinIO or AWS bucket is reachable.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from archiver.config import BucketUrl
from archiver.testing.bucket import Endpoint, Inspector, moto_server
from archiver.testing.s3proxy import FaultProxy

from .conftest import Runner

BUCKET = os.environ.get("ARCHIVER_TEST_S3_BUCKET", "runway-archiver-test")


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[Endpoint]:
    external = Endpoint.from_env(os.environ)
    if external is not None:
        yield external
        return
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture(scope="session")
def s3_inspector(s3_endpoint: Endpoint) -> Inspector:
    inspector = Inspector(s3_endpoint, BUCKET)
    inspector.ensure_bucket()
    return inspector


@dataclass
class Area:
    """A prefix of the test bucket that belongs to one test, and a client to look into it."""

    endpoint: Endpoint
    inspector: Inspector
    prefix: str  # without a trailing slash

    @property
    def url(self) -> BucketUrl:
        return BucketUrl(self.inspector.bucket, self.prefix)

    def objects(self) -> dict[str, int]:
        """Archive-relative key -> size of every object under the prefix."""
        start = self.prefix + "/"
        return {k[len(start) :]: v for k, v in self.inspector.objects(start).items()}

    def get(self, key: str) -> bytes:
        return self.inspector.get(f"{self.prefix}/{key}")

    def uploads(self) -> list[str]:
        return self.inspector.uploads(self.prefix + "/")


@pytest.fixture
def area(
    s3_endpoint: Endpoint, s3_inspector: Inspector, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Area]:
    """A fresh prefix; the standard AWS environment names the endpoint's keys."""
    inspector = s3_inspector
    for key, value in s3_endpoint.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    found = Area(s3_endpoint, inspector, f"t-{uuid.uuid4().hex[:12]}/archive")
    yield found
    inspector.clear(found.prefix.split("/")[0] + "/")


@pytest.fixture
def proxy(s3_endpoint: Endpoint) -> Iterator[FaultProxy]:
    """A fault-injecting proxy in front of the session's S3 server."""
    if Endpoint.from_env(os.environ) is not None:
        pytest.skip("the fault proxy forwards the Host header: only for the local moto server")
    with FaultProxy(s3_endpoint.url).running_in_thread() as running:
        yield running


@dataclass
class BucketRunner(Runner):
    """A Runner whose archive is a bucket prefix; the catalog lives under XDG_STATE_HOME."""

    area: Area | None = None
    endpoint_url: str | None = None
    state_home: Path | None = None
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def output(self) -> str:
        assert self.area is not None
        return str(self.area.url)

    def configure(self, **values: Any) -> None:
        super().configure(s3_endpoint_url=self.endpoint_url, **values)

    def env(self) -> dict[str, str]:
        assert self.area is not None and self.state_home is not None
        return {
            **super().env(),
            **self.area.endpoint.env(),
            "XDG_STATE_HOME": str(self.state_home),
            **self.extra_env,
        }


@pytest.fixture
def bucket_runner(runner: Runner, area: Area) -> BucketRunner:
    """`runway-archiver run -o s3://...` against the emulator, straight to the S3 server."""
    made = BucketRunner(
        runner.emu,
        runner.root,
        runner.config,
        runner.monkeypatch,
        runner.capsys,
        area=area,
        endpoint_url=area.endpoint.url,
        state_home=runner.root.parent / "state",
    )
    made.configure()
    return made
