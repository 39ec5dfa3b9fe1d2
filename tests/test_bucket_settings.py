"""Naming a bucket archive: s3:// URLs and bucket settings checked at the edge, one line each."""

from __future__ import annotations

from pathlib import Path

import pytest

from archiver import cli, config
from archiver.catalog.sqlite_open import catalog_path
from archiver.config import BucketUrl, Config
from archiver.errors import ConfigError
from archiver.storage import place


@pytest.mark.parametrize(
    ("text", "bucket", "prefix"),
    [
        ("s3://my-bucket", "my-bucket", ""),
        ("s3://my-bucket/", "my-bucket", ""),
        ("s3://my.bucket-1/runway/archive/", "my.bucket-1", "runway/archive"),
    ],
)
def test_bucket_urls_parse_to_bucket_and_prefix(text: str, bucket: str, prefix: str) -> None:
    """-o s3://bucket/prefix keeps the bucket and a prefix without slashes at its ends."""
    cfg, _ = config.load(path=None, env={}, overrides={"output_dir": text})
    assert cfg.output_dir == BucketUrl(bucket, prefix)
    assert str(cfg.output_dir) == text.rstrip("/")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("s3://", "not a bucket name"),
        ("s3://Upper_Case/x", "not a bucket name"),
        ("s3://ok-bucket/a/../b", "'..'"),
        ("s3://ok-bucket/a//b", "empty"),
    ],
)
def test_bad_bucket_urls_are_config_errors(text: str, reason: str) -> None:
    """A URL naming no usable bucket or prefix is refused, naming output_dir and the reason."""
    with pytest.raises(ConfigError) as caught:
        config.load(path=None, env={}, overrides={"output_dir": text})
    assert "output_dir" in str(caught.value) and reason in str(caught.value)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("s3_part_size: 1048576", "5 MiB"),
        ("s3_parts_in_flight: 0", "from 1 to 64"),
        ("s3_endpoint_url: ftp://store", "http(s) URL"),
    ],
)
def test_bucket_settings_are_checked(tmp_path: Path, line: str, expected: str) -> None:
    """Part size below S3's minimum, no parts in flight, a non-HTTP endpoint: refused."""
    path = tmp_path / "c.yaml"
    path.write_text(line + "\n")
    with pytest.raises(ConfigError) as caught:
        config.load(path=path, env={}, overrides={})
    assert line.split(":")[0] in str(caught.value) and expected in str(caught.value)


def test_cli_bad_bucket_url_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """runway-archiver status -o s3://Bad! exits 2 with one line naming the URL."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    code = cli.main(["status", "-o", "s3://Bad!"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "s3://Bad!" in err


def test_a_bucket_archive_keeps_catalog_and_lock_in_the_state_folder(tmp_path: Path) -> None:
    """Each bucket and prefix gets its own state folder; catalog_path moves the catalog."""
    env = {"XDG_STATE_HOME": str(tmp_path / "state")}
    one = place(Config(output_dir=BucketUrl("bkt", "a")), env)
    two = place(Config(output_dir=BucketUrl("bkt", "a/b")), env)
    assert one.state_dir != two.state_dir
    assert one.state_dir.parent == tmp_path / "state" / "runway-archiver" / "buckets"
    config = Config(output_dir=BucketUrl("bkt", "a"))
    assert catalog_path(config, one) == one.state_dir / "catalog.sqlite3"
    config = Config(output_dir=BucketUrl("bkt", "a"), catalog_path=tmp_path / "c.db")
    moved = place(config, env)
    assert catalog_path(config, moved) == tmp_path / "c.db" and moved.state_dir == tmp_path
    config = Config(output_dir=tmp_path / "archive")
    assert catalog_path(config, place(config, env)) == tmp_path / "archive" / "catalog.sqlite3"
