"""PostgreSQL fixtures: one throwaway cluster per test session, an empty database per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from archiver.testing.postgres import Cluster, find_bindir


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    """A cluster of Debian's postgresql in a temp folder on a free loopback port; always stopped."""
    if find_bindir() is None:
        pytest.fail("no PostgreSQL server binaries: scripts/test installs Debian's postgresql")
    with Cluster.running() as cluster:
        yield cluster


@pytest.fixture
def pg_url(pg_cluster: Cluster) -> Iterator[str]:
    """The URL of an empty database of its own (dropped after the test)."""
    url = pg_cluster.create_database()
    try:
        yield url
    finally:
        pg_cluster.drop_database(url.rsplit("/", 1)[1])
