"""A store that never answers ends the run within a bounded time, like any network operation."""

from __future__ import annotations

from archiver.testing.s3proxy import FaultProxy

from .bucketing import BucketRunner
from .helpers import DEADLINE


def test_a_store_that_never_answers_ends_the_run(
    bucket_runner: BucketRunner, proxy: FaultProxy
) -> None:
    """A part upload the store holds forever: the run ends with exit 74 naming the object, well
    within its deadline, instead of hanging a cron run (and every later one on the lock)."""
    bucket_runner.endpoint_url = proxy.url
    bucket_runner.configure(read_timeout=1, connect_timeout=1, retry_attempts=1)
    task = bucket_runner.emu.add_task(previews=0)
    proxy.hold("UploadPart")
    process = bucket_runner.spawn(task)
    try:
        _, err = process.communicate(timeout=DEADLINE)
    finally:
        process.kill()
        proxy.release()
    assert process.returncode == 74, err
    (line,) = [e for e in err.splitlines() if e.startswith("runway-archiver: ")]
    assert "no answer within the timeout" in line and "s3://" in line and ".mp4 part 1" in line
