"""A real S3 server for tests (moto's, in its own process on a loopback port) and a plain client.

`python -m archiver.testing.bucket` starts the server with IAM checks on (so wrong keys are
refused), makes one user allowed everything, prints the endpoint and that user's keys as one
JSON line, and stops when its stdin closes. `Inspector` reads and changes a bucket behind the
archiver's back with boto3, a client the archiver itself does not use.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import boto3

REGION = "us-east-1"
_ALLOW_ALL = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}


@dataclass(frozen=True)
class Endpoint:
    """An S3 endpoint and keys that it accepts."""

    url: str
    access_key: str = field(repr=False)
    secret_key: str = field(repr=False)
    region: str = REGION
    pid: int | None = field(default=None, compare=False)  # the server's, when we started it

    def env(self) -> dict[str, str]:
        """The standard AWS environment for a client of this endpoint, and nothing else."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": self.region,
            # Never ask 169.254.169.254 for credentials, nor read the user's ~/.aws.
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        }

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Endpoint | None:
        """The endpoint named by ARCHIVER_TEST_S3_ENDPOINT (+ AWS_* keys), if one is."""
        url = env.get("ARCHIVER_TEST_S3_ENDPOINT")
        if not url:
            return None
        return cls(
            url,
            env.get("AWS_ACCESS_KEY_ID", ""),
            env.get("AWS_SECRET_ACCESS_KEY", ""),
            env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or REGION,
        )


@contextlib.contextmanager
def moto_server(*, timeout: float = 60.0) -> Iterator[Endpoint]:
    """moto's S3 server in a child process for the duration of the block; stopped after."""
    process = subprocess.Popen(
        [sys.executable, "-m", "archiver.testing.bucket"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        line = process.stdout.readline()  # the server prints this once it listens
        if not line:
            _, err = process.communicate(timeout=timeout)
            raise RuntimeError(f"the moto server did not start: {err.strip()[-500:]}")
        info = json.loads(line)
        yield Endpoint(info["url"], info["access_key"], info["secret_key"], pid=process.pid)
    finally:
        with contextlib.suppress(OSError):
            process.stdin.close()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


class Inspector:
    """Reads and changes one bucket directly, as someone other than the archiver would."""

    def __init__(self, endpoint: Endpoint, bucket: str) -> None:
        self.bucket = bucket
        self._s3 = _client("s3", endpoint)

    def ensure_bucket(self) -> None:
        with contextlib.suppress(self._s3.exceptions.ClientError):
            self._s3.head_bucket(Bucket=self.bucket)
            return
        self._s3.create_bucket(Bucket=self.bucket)

    def objects(self, prefix: str = "") -> dict[str, int]:
        """Key -> size of every object under `prefix`."""
        found: dict[str, int] = {}
        for page in self._s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix
        ):
            found.update({o["Key"]: o["Size"] for o in page.get("Contents", [])})
        return found

    def uploads(self, prefix: str = "") -> list[str]:
        """Keys of the multipart uploads open under `prefix`."""
        answer = self._s3.list_multipart_uploads(Bucket=self.bucket, Prefix=prefix)
        return sorted(u["Key"] for u in answer.get("Uploads", []))

    def start_upload(self, key: str, data: bytes) -> None:
        """An upload begun and never finished, as a killed uploader leaves one."""
        upload = self._s3.create_multipart_upload(Bucket=self.bucket, Key=key)
        self._s3.upload_part(
            Bucket=self.bucket, Key=key, UploadId=upload["UploadId"], PartNumber=1, Body=data
        )

    def put_multipart(self, key: str, data: bytes, part_size: int) -> str:
        """A multipart upload without checksums, as a plain S3 client makes one; its ETag."""
        upload = self._s3.create_multipart_upload(Bucket=self.bucket, Key=key)
        parts = []
        for n, start in enumerate(range(0, len(data), part_size), 1):
            answer = self._s3.upload_part(
                Bucket=self.bucket,
                Key=key,
                UploadId=upload["UploadId"],
                PartNumber=n,
                Body=data[start : start + part_size],
            )
            parts.append({"PartNumber": n, "ETag": answer["ETag"]})
        self._s3.complete_multipart_upload(
            Bucket=self.bucket,
            Key=key,
            UploadId=upload["UploadId"],
            MultipartUpload={"Parts": parts},
        )
        return str(self._s3.head_object(Bucket=self.bucket, Key=key)["ETag"]).strip('"')

    def get(self, key: str) -> bytes:
        body: bytes = self._s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        return body

    def head(self, key: str) -> dict[str, Any]:
        answer: dict[str, Any] = self._s3.head_object(
            Bucket=self.bucket, Key=key, ChecksumMode="ENABLED"
        )
        return answer

    def put(self, key: str, data: bytes) -> None:
        self._s3.put_object(Bucket=self.bucket, Key=key, Body=data)

    def delete(self, key: str) -> None:
        self._s3.delete_object(Bucket=self.bucket, Key=key)

    def clear(self, prefix: str) -> None:
        """Remove every object and open upload under `prefix`."""
        for key in self.objects(prefix):
            self.delete(key)
        answer = self._s3.list_multipart_uploads(Bucket=self.bucket, Prefix=prefix)
        for upload in answer.get("Uploads", []):
            self._s3.abort_multipart_upload(
                Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
            )


def _client(service: str, endpoint: Endpoint) -> Any:
    return boto3.session.Session().client(
        service,
        endpoint_url=endpoint.url,
        region_name=endpoint.region,
        aws_access_key_id=endpoint.access_key,
        aws_secret_access_key=endpoint.secret_key,
    )


def main() -> None:
    """Run the server until stdin closes (see the module docstring)."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request on stderr
    from moto import settings
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        iam = _client("iam", Endpoint(url, "setup", "setup"))
        iam.create_user(UserName="archiver")
        iam.put_user_policy(
            UserName="archiver", PolicyName="all", PolicyDocument=json.dumps(_ALLOW_ALL)
        )
        key = iam.create_access_key(UserName="archiver")["AccessKey"]
        # From here on every request must be signed with a key moto knows.
        settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
        info = {"url": url, "access_key": key["AccessKeyId"], "secret_key": key["SecretAccessKey"]}
        print(json.dumps(info), flush=True)
        sys.stdin.read()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
