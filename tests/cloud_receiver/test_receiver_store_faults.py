"""A store that fails loses nothing: the image waits in the inbox, the receiver says not ready,
and everything acknowledged is stored once the store works again (issue 13, item 1).

Real parts: mosquitto, the app over HTTP, SQLite and the disk. The disk is made to fail two
ways: the images folder replaced by a file (any machine), and a real full disk on a small tmpfs
(where this process may mount one).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from receiver_kit import Publisher, payload_for, receiver_settings, unique

from cloud_receiver.api import create_app
from cloud_receiver.store import LocalStore, StoreUnavailableError
from cloud_receiver.store.local import STAGING_GRACE_S
from harness import Mosquitto, wait_until
from shared.codec import decode

API = "/api/v1"


def _stored(client: TestClient, device: str) -> set[str]:
    items = client.get(f"{API}/images", params={"device": device, "limit": 100}).json()["items"]
    return {item["id"] for item in items}


def _leftovers(data_dir: Path) -> list[Path]:
    images = data_dir / "images"
    if not images.is_dir():
        return []
    return [*images.glob(".probe-*"), *images.glob("*/.*-*")]


@contextlib.contextmanager
def _images_folder_blocked(data_dir: Path) -> Iterator[None]:
    """Writes under ``images/`` fail with OSError (even for root) until the block is lifted."""
    images = data_dir / "images"
    shutil.rmtree(images)
    images.write_bytes(b"not a folder")
    try:
        yield
    finally:
        images.unlink()
        images.mkdir()


def test_images_published_while_the_store_fails_are_all_stored_once_it_works(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    settings = receiver_settings(mosquitto, data)
    device = unique("cam")
    payloads = [payload_for(device, index=n) for n in range(5)]
    ids = {str(decode(p).image_id) for p in payloads}
    with TestClient(create_app(settings)) as client:
        assert wait_until(lambda: client.get("/readyz").status_code == 200)
        publisher = Publisher(mosquitto)
        try:
            with _images_folder_blocked(data):
                publisher.publish(f"{settings.topic_prefix}/{device}/image", payloads)
                assert wait_until(lambda: client.get("/readyz").status_code == 503)
                ready = client.get("/readyz").json()
                assert ready["checks"]["store"]["ok"] is False
                assert "images" in ready["checks"]["store"]["detail"]
                posted = client.post(
                    f"{API}/payloads",
                    content=payload_for(device, index=9),
                    headers={"Content-Type": "application/octet-stream"},
                )
                assert posted.status_code == 503, posted.text
                assert posted.json()["code"] == "store_unavailable"
                time.sleep(2)  # several failed tries: none may count against the payload
                assert _stored(client, device) == set()
            assert wait_until(lambda: _stored(client, device) == ids, timeout_s=60)
            assert wait_until(lambda: client.get("/readyz").status_code == 200)
        finally:
            publisher.close()
        metrics = client.get("/metrics").text
        assert 'reason="failed_twice"' not in metrics
        assert _leftovers(data) == []
        assert list((data / "inbox").glob("*/*")) == []


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 24 MiB tmpfs: a disk that really fills up. Skipped where mounting is not allowed."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(folder: Path) -> Path:
    """Write until the disk says ENOSPC; the returned file frees it again."""
    filler = folder / "filler"
    with filler.open("wb") as file, contextlib.suppress(OSError):
        while True:
            file.write(b"\0" * 65536)
            file.flush()
            os.fsync(file.fileno())
    return filler


def test_a_full_disk_loses_no_acknowledged_image(mosquitto: Mosquitto, small_disk: Path) -> None:
    data = small_disk / "data"
    settings = receiver_settings(mosquitto, data)
    device = unique("cam")
    payloads = [payload_for(device, index=n) for n in range(6)]
    ids = {str(decode(p).image_id) for p in payloads}
    with TestClient(create_app(settings)) as client:
        assert wait_until(lambda: client.get("/readyz").status_code == 200)
        filler = _fill(small_disk)
        publisher = Publisher(mosquitto)
        try:
            publisher.publish(f"{settings.topic_prefix}/{device}/image", payloads)
            assert wait_until(lambda: client.get("/readyz").status_code == 503)
            time.sleep(2)
            filler.unlink()
            assert wait_until(lambda: _stored(client, device) == ids, timeout_s=60)
            assert wait_until(lambda: client.get("/readyz").status_code == 200)
        finally:
            publisher.close()
        assert _leftovers(data) == []
        assert [p.name for p in (data / "inbox").glob("*/*")] == []


def test_staging_left_by_a_crash_is_removed_at_open_once_old(tmp_path: Path) -> None:
    LocalStore(tmp_path).close()
    old = tmp_path / "images" / "ab" / ".ab12-x"
    young = tmp_path / "images" / "ab" / ".ab34-y"
    for folder in (old, young):
        folder.mkdir(parents=True)
        (folder / "payload.bin").write_bytes(b"half")
    long_ago = time.time() - STAGING_GRACE_S - 60
    os.utime(old, (long_ago, long_ago))
    LocalStore(tmp_path).close()
    assert not old.exists()
    assert young.exists()  # may be another receiver's put in progress


def test_a_damaged_index_is_refused_at_open_with_what_to_do(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.close()
    with sqlite3.connect(tmp_path / "index.sqlite3") as db:
        db.execute("CREATE TABLE filler (x TEXT)")
        db.executemany("INSERT INTO filler VALUES (?)", [("x" * 500,) for _ in range(400)])
    db.close()
    index = tmp_path / "index.sqlite3"
    data = bytearray(index.read_bytes())
    page = 4096
    data[3 * page : 6 * page] = b"\xa5" * (3 * page)  # pages of the table's b-tree
    index.write_bytes(bytes(data))
    with pytest.raises(StoreUnavailableError, match="damaged"):
        LocalStore(tmp_path)


def test_readyz_writes_and_reads_the_index_and_leaves_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with TestClient(create_app(receiver_settings(None, data))) as client:
        for _ in range(5):
            assert client.get("/readyz").status_code == 200
        assert _leftovers(data) == []
        with sqlite3.connect(data / "index.sqlite3") as db:
            (written,) = db.execute("SELECT written_us FROM probe").fetchone()
        db.close()
        assert abs(written / 1e6 - time.time()) < 60
