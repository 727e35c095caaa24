"""Sources: files (JPEG tables kept), watched folder, HTTP snapshots, camera, samples."""

from __future__ import annotations

import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from edge_sender.config import EncodeSettings
from edge_sender.encoding import profile_for
from edge_sender.sent_files import SentFiles
from edge_sender.sources import (
    SourceError,
    camera_source,
    file_source,
    http_source,
    synthetic_source,
    watch_source,
)
from edge_sender.sources.watch import After
from shared.codec import Profile
from shared.codec.quantisation import standard_tables

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


@pytest.fixture
def jpeg_file(tmp_path: Path) -> Path:
    path = tmp_path / "photo.jpg"
    Image.open(SAMPLES / "kodim04-half.png").save(path, quality=75)
    return path


def test_jpeg_input_keeps_its_own_tables_in_natural_order(jpeg_file: Path) -> None:
    (frame,) = file_source([jpeg_file])
    luma, chroma = standard_tables(75)
    assert frame.jpeg_tables == (tuple(luma.ravel().tolist()), tuple(chroma.ravel().tolist()))
    assert frame.source_bytes == jpeg_file.stat().st_size
    for profile in ("lowpass", "lossless"):
        assert profile_for(EncodeSettings(profile=profile), frame).tables == frame.jpeg_tables
        unused = EncodeSettings(profile=profile, use_source_tables=False)
        assert profile_for(unused, frame).tables is None
    # auto's promise is about the picture, so it picks its own tables whatever the input.
    assert profile_for(EncodeSettings(), frame) == Profile.auto(75)


def test_png_input_has_no_tables_and_unreadable_files_are_named(tmp_path: Path) -> None:
    (frame,) = file_source([SAMPLES / "kodim05-half.png"])
    assert frame.jpeg_tables is None
    assert frame.image.mode == "RGB"
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(SourceError, match=r"notes\.txt: not a readable image"):
        list(file_source([tmp_path / "notes.txt"]))


def test_synthetic_loops_over_the_samples() -> None:
    frames = list(synthetic_source(count=6))
    assert len(frames) == 6
    assert frames[0].source == frames[4].source == "synthetic:kodim04-half.png"


def test_watch_takes_stable_files_and_moves_them_after_spooling(tmp_path: Path) -> None:
    inbox, done = tmp_path / "inbox", tmp_path / "done"
    inbox.mkdir()
    (inbox / ".partial.png").write_bytes(b"ignored: hidden while being written")
    Image.open(SAMPLES / "kodim15-half.png").save(inbox / "a.png")
    stop = threading.Event()
    frames = watch_source(inbox, after="move", move_to=done, poll_interval_s=0.05, stop=stop)
    frame = next(frames)
    assert frame.source.endswith("a.png")
    assert (inbox / "a.png").exists()  # not moved until the spool has it
    assert frame.on_spooled is not None
    frame.on_spooled()
    assert (done / "a.png").exists()
    assert not (inbox / "a.png").exists()
    stop.set()
    assert list(frames) == []


def _watch_run(
    inbox: Path, spool: Path, *, spooled: bool = True, after: After = "keep"
) -> list[str]:
    """One run of ``watch`` over ``inbox`` (a few polls), as the CLI wires it to a spool."""
    names = []
    with SentFiles(spool) as sent:
        stop = threading.Event()
        timer = threading.Timer(0.3, stop.set)
        timer.start()
        for frame in watch_source(
            inbox, after=after, move_to=None, poll_interval_s=0.02, stop=stop, sent=sent
        ):
            names.append(Path(frame.source).name)
            if spooled and frame.on_spooled is not None:
                frame.on_spooled()
        timer.join()
    return names


def test_watch_remembers_what_it_spooled_across_restarts(tmp_path: Path) -> None:
    inbox, spool = tmp_path / "inbox", tmp_path / "spool.sqlite3"
    inbox.mkdir()
    a, b = inbox / "a.png", inbox / "b.png"
    Image.open(SAMPLES / "kodim15-half.png").save(a)
    assert _watch_run(inbox, spool, spooled=False) == ["a.png"]
    assert _watch_run(inbox, spool) == ["a.png"]  # the run before never spooled it
    assert _watch_run(inbox, spool) == []
    os.utime(a, (1_700_000_000, 1_700_000_000))  # touched: same bytes, not sent again
    Image.open(SAMPLES / "kodim04-half.png").save(b)
    assert _watch_run(inbox, spool) == ["b.png"]
    Image.open(SAMPLES / "kodim05-half.png").save(a)  # new content under an old name
    assert _watch_run(inbox, spool) == ["a.png"]
    b.unlink()
    assert _watch_run(inbox, spool) == []
    with SentFiles(spool) as sent:
        assert sent.count(inbox) == 1  # b's row went with b


def test_watch_finishes_the_delete_a_crash_interrupted_without_sending_again(
    tmp_path: Path,
) -> None:
    inbox, spool = tmp_path / "inbox", tmp_path / "spool.sqlite3"
    inbox.mkdir()
    Image.open(SAMPLES / "kodim15-half.png").save(inbox / "a.png")
    assert _watch_run(inbox, spool) == ["a.png"]  # spooled and remembered, then "crashed"
    assert _watch_run(inbox, spool, after="delete") == []
    assert not (inbox / "a.png").exists()


class _Snapshot(http.server.BaseHTTPRequestHandler):
    body = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def snapshot_url(jpeg_file: Path) -> Iterator[str]:
    _Snapshot.body = jpeg_file.read_bytes()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Snapshot)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/snapshot.jpg"
    server.shutdown()


def test_http_polls_a_snapshot_url(snapshot_url: str) -> None:
    frames = list(http_source(snapshot_url, interval_s=0.01, count=2))
    assert len(frames) == 2
    assert frames[0].jpeg_tables is not None
    assert frames[0].source == f"http:{snapshot_url}"


def test_camera_without_picamera2_names_the_package() -> None:
    pytest.importorskip("PIL")  # always present; picamera2 never is on CI
    with pytest.raises(SourceError, match="picamera2"):
        next(camera_source(count=1))
