"""Objects in an S3-compatible bucket (AWS S3, MinIO, SeaweedFS, ...), through one boto3 client.

Only what the store needs: put, get (None when absent), delete, a listing (for the orphan sweep
and the quarantine's accounting) and a write probe. boto3 clients are thread-safe, so the
receiver's worker threads share this one.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_MISSING = {"NoSuchKey", "404", "NotFound"}
_DELETE_BATCH = 1000  # DeleteObjects' limit per request


@dataclass(frozen=True)
class ObjectInfo:
    """One listed object: its key (without the store's prefix), size, and last write (epoch s)."""

    key: str
    size: int
    modified: float


class S3Objects:
    """Byte strings under keys of one bucket, every key behind ``prefix``.

    With ``endpoint_url`` (MinIO, SeaweedFS, ...) requests use path-style addressing
    (``http://host:port/bucket/key``), which every S3-compatible server understands; without
    it boto3 talks to AWS and finds the credentials its usual way when none are given.
    """

    def __init__(
        self,
        bucket: str,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        prefix: str = "",
        timeout_s: float = 10.0,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix
        config = Config(
            connect_timeout=timeout_s,
            read_timeout=timeout_s,
            retries={"mode": "standard", "max_attempts": 3},
            s3={"addressing_style": "path" if endpoint_url else "auto"},
        )
        self._client: S3Client = boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            config=config,
        )

    def put(self, key: str, data: bytes) -> None:
        self._client.put_object(Bucket=self.bucket, Key=self.prefix + key, Body=data)

    def get(self, key: str) -> bytes | None:
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=self.prefix + key)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in _MISSING:
                return None
            raise
        return response["Body"].read()

    def delete(self, keys: Iterable[str]) -> None:
        """Delete ``keys``; keys that do not exist are no error."""
        pending = [self.prefix + key for key in keys]
        for start in range(0, len(pending), _DELETE_BATCH):
            batch = pending[start : start + _DELETE_BATCH]
            self._client.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True},
            )

    def list(self, prefix: str) -> Iterator[list[ObjectInfo]]:
        """The objects under ``prefix``, one page (at most 1000) at a time, in key order.

        Pages, not one list: a bucket may hold millions of objects, and callers act on each
        page (look its ids up, delete) without holding the whole listing in memory.
        """
        paginator = self._client.get_paginator("list_objects_v2")
        cut = len(self.prefix)
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
            yield [
                ObjectInfo(item["Key"][cut:], item["Size"], item["LastModified"].timestamp())
                for item in page.get("Contents", [])
            ]

    def check_writable(self) -> str | None:
        """None when a small object can be written and deleted, else what went wrong."""
        key = f".probe/{uuid.uuid4().hex}"
        try:
            self.put(key, b"ok")
            self._client.delete_object(Bucket=self.bucket, Key=self.prefix + key)
        except (BotoCoreError, ClientError) as error:
            return f"bucket {self.bucket!r}: {type(error).__name__}: {error}"
        return None

    def close(self) -> None:
        self._client.close()
