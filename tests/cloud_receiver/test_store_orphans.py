"""Issue 13, item 5: the store is crash-consistent, and the quarantine uses the store's backend.

A crash between writing an image's bytes and its row is simulated by writing the bytes exactly
where that image's put would have (an object under a fresh generation, or the image's folder)
and no row. The s3 cases run against the real servers of ``store_servers.py``.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from receiver_kit import make_record, receiver_settings, unique
from store_servers import Postgres, SeaweedS3, s3_settings

from cloud_receiver.api import create_app
from cloud_receiver.config import StoreSettings
from cloud_receiver.ingest.quarantine import BucketShelf, Quarantine
from cloud_receiver.store import Store, SweepsOrphans, open_objects, open_store
from cloud_receiver.store.sweep import Piece, image_key, orphans
from harness import wait_until

pytest_plugins = ["store_fixtures"]

API = "/api/v1"
HOUR = 3600.0


# -- the rule, without I/O ---------------------------------------------------------------------


def test_only_keys_of_the_image_layout_name_an_image() -> None:
    assert image_key("images/ab/abcd/g1/payload.bin") == ("abcd", "g1")
    assert image_key("images/ab/abcd/g1/received.png") == ("abcd", "g1")
    for other in (
        "images/xy/abcd/g1/payload.bin",  # not under its id's shard
        "images/ab/abcd/payload.bin",
        "images/ab/abcd//payload.bin",
        "quarantine/20240102T030405678901-abc.bin",
        ".probe/123",
    ):
        assert image_key(other) is None


def test_an_orphan_is_old_and_committed_by_no_row() -> None:
    now = 1_000_000.0
    pieces = [
        Piece("no-row-old", "a", "g1", now - HOUR - 1),
        Piece("no-row-young", "b", "g1", now - 10),
        Piece("row-old", "c", "g1", now - 10 * HOUR),
        Piece("stale-generation", "c", "g0", now - 10 * HOUR),
        Piece("young-generation", "c", "g2", now - 10),  # a replace whose row is coming
        Piece("local-with-row", "d", None, now - 10 * HOUR),
        Piece("local-without-row", "e", None, now - 10 * HOUR),
    ]
    rows: dict[str, str | None] = {"c": "g1", "d": None}
    assert orphans(pieces, rows, now - HOUR) == [
        "no-row-old",
        "stale-generation",
        "local-without-row",
    ]


# -- both backends -----------------------------------------------------------------------------


_FILES = {"payload.bin": b"payload", "received.png": b"png"}


def _sweep(store: Store, grace_s: float) -> int:
    assert isinstance(store, SweepsOrphans)
    return store.sweep_orphans(grace_s)


def _orphan_folder(data_dir: Path) -> Path:
    """An image folder of the local store as its put renames it into place, without the row."""
    image_id = str(uuid.uuid4())
    folder = data_dir / "images" / image_id[:2] / image_id
    folder.mkdir(parents=True)
    for name, data in _FILES.items():
        (folder / name).write_bytes(data)
    return folder


def _crash_before_row(settings: StoreSettings, s3: SeaweedS3 | None) -> Callable[[], bool]:
    """Write one image's bytes as its put would, but no row; a check whether they are there."""
    if s3 is None:
        return _orphan_folder(settings.data_dir).exists
    image_id = str(uuid.uuid4())
    client = s3.client()
    prefix = f"{settings.s3_prefix}images/{image_id[:2]}/{image_id}/{uuid.uuid4().hex}/"
    for name, data in _FILES.items():
        client.put_object(Bucket=s3.bucket, Key=prefix + name, Body=data)

    def present() -> bool:
        return bool(client.list_objects_v2(Bucket=s3.bucket, Prefix=prefix).get("KeyCount"))

    return present


def _s3(request: pytest.FixtureRequest, settings: StoreSettings) -> SeaweedS3 | None:
    server: SeaweedS3 | None = (
        request.getfixturevalue("s3_server") if settings.backend == "s3" else None
    )
    return server


def test_bytes_a_crash_left_without_a_row_are_swept(
    backend: StoreSettings, request: pytest.FixtureRequest
) -> None:
    store = open_store(backend)
    try:
        kept = make_record("cam-1", 0)
        assert store.put(kept, b"payload", {"received": b"r"})
        orphan = _crash_before_row(backend, _s3(request, backend))
        assert orphan()
        assert _sweep(store, 0) == (2 if backend.backend == "s3" else 1)  # objects, or a folder
        assert not orphan()
        assert store.payload(kept.id) == b"payload"
        assert store.stage_png(kept.id, "received") == b"r"
    finally:
        store.close()


def test_bytes_with_a_row_are_never_swept(backend: StoreSettings) -> None:
    store = open_store(backend)
    try:
        records = [make_record("cam-1", i) for i in range(3)]
        for record in records:
            assert store.put(record, b"p" + record.id.encode(), {"received": b"r"})
        replaced = records[0]
        assert store.put(replaced, b"second", {"classical": b"c"}, replace=True)
        assert _sweep(store, 0) == 0
        for record in records[1:]:
            assert store.payload(record.id) == b"p" + record.id.encode()
            assert store.stage_png(record.id, "received") == b"r"
        assert store.payload(replaced.id) == b"second"
        assert store.stage_png(replaced.id, "classical") == b"c"
    finally:
        store.close()


def test_a_young_orphan_is_kept(backend: StoreSettings, request: pytest.FixtureRequest) -> None:
    store = open_store(backend)
    try:
        orphan = _crash_before_row(backend, _s3(request, backend))
        assert _sweep(store, HOUR) == 0
        assert orphan()  # its put may still be about to write the row
        assert _sweep(store, 0) > 0  # it was one
        assert not orphan()
    finally:
        store.close()


def test_a_generation_no_row_names_is_swept_and_the_rows_is_kept(
    postgres_server: Postgres, s3_server: SeaweedS3, tmp_path: Path
) -> None:
    """A replace that crashed after its row, before deleting the old generation."""
    settings = s3_settings(postgres_server, s3_server, tmp_path)
    store = open_store(settings)
    try:
        record = make_record("cam-1", 0)
        assert store.put(record, b"current", {"received": b"r"})
        client = s3_server.client()
        stale = f"{settings.s3_prefix}images/{record.id[:2]}/{record.id}/{uuid.uuid4().hex}/"
        client.put_object(Bucket=s3_server.bucket, Key=f"{stale}payload.bin", Body=b"old")
        assert _sweep(store, 0) == 1
        assert not client.list_objects_v2(Bucket=s3_server.bucket, Prefix=stale).get("KeyCount")
        assert store.payload(record.id) == b"current"
    finally:
        store.close()


def test_the_receiver_sweeps_at_start_past_the_grace_period(tmp_path: Path) -> None:
    settings = receiver_settings(None, tmp_path)
    old, young = _orphan_folder(tmp_path), _orphan_folder(tmp_path)
    two_hours_ago = time.time() - 2 * HOUR
    os.utime(old, (two_hours_ago, two_hours_ago))
    with TestClient(create_app(settings)):
        assert wait_until(lambda: not old.exists())
        assert young.exists()  # younger than store.orphan_grace_s (an hour)


# -- the quarantine on the s3 backend ----------------------------------------------------------


def _keep(quarantine: Quarantine, data: bytes) -> str | None:
    return quarantine.keep(
        data, reason="bad", reason_class="checksum", offset=None, topic=None, device_id="cam"
    )


def _in_bucket(s3: SeaweedS3, settings: StoreSettings) -> tuple[list[bytes], int]:
    """(the kept messages oldest first, bytes of every object) of the bucket's quarantine."""
    client = s3.client()
    prefix = f"{settings.s3_prefix}quarantine/"
    listed = client.list_objects_v2(Bucket=s3.bucket, Prefix=prefix).get("Contents", [])
    kept = [
        client.get_object(Bucket=s3.bucket, Key=item["Key"])["Body"].read()
        for item in sorted(listed, key=lambda item: item["Key"])
        if item["Key"].endswith(".bin")
    ]
    assert len(listed) == 2 * len(kept)  # each message with its sidecar
    return kept, sum(item["Size"] for item in listed)


def test_the_s3_quarantine_is_in_the_bucket_oldest_out_and_counted_after_a_restart(
    postgres_server: Postgres, s3_server: SeaweedS3, tmp_path: Path
) -> None:
    settings = s3_settings(postgres_server, s3_server, tmp_path / "data")
    messages = [bytes([i]) * 1000 for i in range(6)]
    first = Quarantine(BucketShelf(open_objects(settings)), max_files=100, max_bytes=4000)
    for message in messages[:5]:
        where = _keep(first, message)
        assert where is not None
        assert where.startswith(f"s3://{s3_server.bucket}/{settings.s3_prefix}quarantine/")
    first.close()  # writes are queued: closing waits for them
    kept, size = _in_bucket(s3_server, settings)
    assert kept == messages[2:5]  # each is 1000 bytes plus a sidecar of about 200
    assert size <= 4000
    assert first.usage() == (3, size)
    assert not (tmp_path / "data").exists()

    # Room for 1000 bytes more, and the next message brings a sidecar too: unless the restart
    # counted what the bucket holds, nothing would be deleted.
    again = Quarantine(BucketShelf(open_objects(settings)), max_files=100, max_bytes=size + 1000)
    assert again.usage() == (3, size)
    assert _keep(again, messages[5]) is not None
    again.close()
    kept, size = _in_bucket(s3_server, settings)
    assert kept == messages[3:]
    assert again.usage() == (3, size)


def test_the_receiver_on_s3_quarantines_into_the_bucket(
    postgres_server: Postgres, s3_server: SeaweedS3, tmp_path: Path
) -> None:
    store = s3_settings(postgres_server, s3_server, tmp_path)
    settings = receiver_settings(None, tmp_path, store=store.model_dump())
    garbage = [unique("garbage").encode() * 40 for _ in range(3)]
    with TestClient(create_app(settings)) as client:
        for message in garbage:
            assert client.post(f"{API}/payloads", content=message).status_code == 422
    assert _in_bucket(s3_server, store)[0] == garbage
    assert not (tmp_path / "quarantine").exists()
