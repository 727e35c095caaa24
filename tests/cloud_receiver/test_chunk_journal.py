"""The chunk journal on a real folder: one claim wins, a crash's claim comes back, sweeps."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

from cloud_receiver.ingest.chunk_journal import ChunkJournal

IMAGE = uuid.UUID(int=7)


def test_only_one_of_two_receivers_claims_a_complete_image(tmp_path: Path) -> None:
    one, two = ChunkJournal(tmp_path), ChunkJournal(tmp_path)  # two replicas, one data_dir
    assert one.write("cam/é", "t/cam/chunk", IMAGE, 1, b"second") == 1
    assert two.write("cam/é", "t/cam/chunk", IMAGE, 0, b"first") == 2
    claimed = two.claim("cam/é", IMAGE)
    assert claimed is not None
    assert claimed.device_id == "cam/é"
    assert claimed.messages == [b"first", b"second"]  # index order, whoever wrote them
    assert one.claim("cam/é", IMAGE) is None
    two.release(claimed)
    assert one.images() == 0


def test_a_claim_left_by_a_crash_is_taken_back_once_stale(tmp_path: Path) -> None:
    journal = ChunkJournal(tmp_path)
    journal.write("cam", "t/cam/chunk", IMAGE, 0, b"only")
    assert journal.claim("cam", IMAGE) is not None  # then the receiver died
    assert list(journal.recover(stale_claim_s=3600)) == []  # may be another replica's, live
    [folder] = tmp_path.iterdir()
    old = time.time() - 7200
    os.utime(folder, (old, old))
    assert list(journal.recover(stale_claim_s=3600)) == [("cam", "t/cam/chunk", [b"only"])]
    assert journal.claim("cam", IMAGE) is not None  # back under its own name


def test_sweep_deletes_only_idle_unclaimed_images(tmp_path: Path) -> None:
    journal = ChunkJournal(tmp_path)
    journal.write("cam", "t/cam/chunk", IMAGE, 0, b"idle")
    journal.write("cam", "t/cam/chunk", uuid.UUID(int=8), 0, b"fresh")
    idle = next(p for p in tmp_path.iterdir() if p.name.endswith(IMAGE.hex))
    old = time.time() - 600
    os.utime(idle, (old, old))
    assert journal.sweep(older_than_s=120) == 1
    assert journal.images() == 1


def test_a_stale_claim_is_taken_over_by_one_replica_only(tmp_path: Path) -> None:
    one, two = ChunkJournal(tmp_path), ChunkJournal(tmp_path)
    one.write("cam", "t/cam/chunk", IMAGE, 0, b"only")
    assert one.claim("cam", IMAGE) is not None  # then that receiver died
    assert two.reclaim_stale(stale_s=3600) == []  # young: its claimer may be working on it
    [folder] = tmp_path.iterdir()
    old = time.time() - 7200
    os.utime(folder, (old, old))
    [taken] = two.reclaim_stale(stale_s=3600)
    assert (taken.device_id, taken.topic, taken.messages) == ("cam", "t/cam/chunk", [b"only"])
    assert one.reclaim_stale(stale_s=3600) == []  # fresh again once taken
