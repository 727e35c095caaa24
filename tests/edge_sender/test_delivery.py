"""End to end through a real mosquitto: every image arrives, byte for byte, whatever happens."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import pty
import re
import signal
import sqlite3
import struct
import subprocess
import sys
import termios
import threading
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pytest
from collector import Collector
from conftest import MosquittoFactory
from PIL import Image
from PIL.JpegImagePlugin import JpegImageFile

from edge_sender.cli import main
from edge_sender.config import BrokerSettings, EdgeSettings, SpoolSettings
from edge_sender.sender import Sender
from edge_sender.sources import frame_from_path
from edge_sender.spool import Spool
from harness import Mosquitto, free_port
from shared.codec import Decoded, Profile, decode, encode

pytestmark = pytest.mark.integration
SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def _inputs(folder: Path, count: int) -> list[Path]:
    """``count`` image files (PNG and one JPEG) with distinct modification (capture) times."""
    folder.mkdir()
    paths = []
    sources = sorted(SAMPLES.glob("*.png"))
    for index in range(count):
        image = Image.open(sources[index % len(sources)])
        path = folder / (f"{index:02d}.jpg" if index == 1 else f"{index:02d}.png")
        image.save(path, quality=85)
        os.utime(path, (1_700_000_000 + index, 1_700_000_000 + index))
        paths.append(path)
    return paths


def _device() -> str:
    return f"cam-{uuid.uuid4().hex[:8]}"


def _flags(broker: Mosquitto, device: str, spool: Path, *extra: str) -> list[str]:
    return [
        "--broker",
        broker.url,
        "--device-id",
        device,
        "--spool-path",
        str(spool),
        "--log-format",
        "json",
        *extra,
    ]


def _assert_equal_to_direct_encoding(
    collector: Collector,
    paths: list[Path],
    device: str,
    *,
    lowpass: bool = False,
    coder: int = 1,
) -> list[tuple[Decoded, Path]]:
    """Each payload is what ``encode`` makes of its file with entropy ``coder``: auto at 75 by
    default, or (with ``lowpass``) lowpass at 75 on a JPEG input's own tables. Returns each
    decoded payload with its file."""
    by_capture = {int(p.stat().st_mtime): p for p in paths}
    received = {}
    for payload in collector.payloads:
        decoded = decode(payload)
        received[decoded.image_id] = (decoded, payload)
    assert len(received) == len(paths)
    matched = []
    for decoded, payload in received.values():
        path = by_capture[int(decoded.captured_at.timestamp())]
        with Image.open(path) as image:
            profile = Profile.auto(75)
            if lowpass:
                tables = None
                if isinstance(image, JpegImageFile):
                    q = image.quantization
                    tables = (tuple(q[0]), tuple(q[1]))
                profile = Profile.lowpass(75, 15, 6, tables=tables)
            expected = encode(
                image.convert("RGB"),
                profile,
                device_id=device,
                image_id=decoded.image_id,
                captured_at=decoded.captured_at,
                coder=coder,
            )
        assert payload == expected, path.name
        matched.append((decoded, path))
    return matched


def test_coder_2_sends_payload_v2_with_the_same_coefficients(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    device = _device()
    paths = _inputs(tmp_path / "in", 2)
    collector = Collector(mosquitto.port, f"dctlink/{device}/#")
    try:
        flags = _flags(mosquitto, device, tmp_path / "s.db")
        sent = main(["send", *map(str, paths), *flags, "--encode-coder", "2", "--timeout", "30"])
        assert sent == 0
        assert collector.wait_for(lambda c: len(c.payloads) >= 2)
        assert all(payload[4] == 2 for payload in collector.payloads)  # payload version 2
        for decoded, path in _assert_equal_to_direct_encoding(collector, paths, device, coder=2):
            with Image.open(path) as image:
                again = decode(encode(image.convert("RGB"), Profile.auto(75)))
            for a, b in zip(decoded.coefficients, again.coefficients, strict=True):
                assert np.array_equal(a, b)
    finally:
        collector.close()


def test_send_delivers_every_image_equal_to_direct_encoding(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    device = _device()
    paths = _inputs(tmp_path / "in", 6)
    collector = Collector(mosquitto.port, f"dctlink/{device}/#")
    try:
        assert (
            main(
                [
                    "send",
                    *map(str, paths),
                    *_flags(mosquitto, device, tmp_path / "s.db"),
                    "--timeout",
                    "30",
                ]
            )
            == 0
        )
        assert collector.wait_for(lambda c: len(c.payloads) >= 6)
        _assert_equal_to_direct_encoding(collector, paths, device)
        assert collector.wait_for(lambda c: bool(c.status) and c.status[-1]["state"] == "offline")
        online = next(s for s in collector.status if s["state"] == "online")
        assert online["device_id"] == device
        final = collector.status[-1]
        assert final["spool_depth"] == 0
        assert final["published_total"] == 6
        assert 0 < final["payload_bytes_total"] < final["source_bytes_total"]
        # auto payloads are compared with libjpeg's JPEG of equal quality, as their headers say.
        references = [decode(p).reference_jpeg_bytes for p in collector.payloads]
        assert final["equal_quality_jpeg_bytes_total"] == sum(r or 0 for r in references) > 0
        assert final["equal_quality_payload_bytes_total"] == final["payload_bytes_total"]
        assert final["payload_to_equal_quality_jpeg_ratio"] == round(
            final["payload_bytes_total"] / final["equal_quality_jpeg_bytes_total"], 4
        )
    finally:
        collector.close()


def test_large_payloads_are_chunked_and_reassembled_over_mqtt_311(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    device = _device()
    paths = _inputs(tmp_path / "in", 3)
    collector = Collector(mosquitto.port, f"dctlink/{device}/#")
    try:
        flags = [
            *_flags(mosquitto, device, tmp_path / "s.db", "--broker-max-message-bytes", "4096"),
            "--broker-protocol",
            "3.1.1",
            "--encode-profile",
            "lowpass",
        ]
        assert main(["send", *map(str, paths), *flags, "--timeout", "30"]) == 0
        assert collector.wait_for(lambda c: len(c.payloads) >= 3)
        assert collector.chunk_messages > 3 * 3
        _assert_equal_to_direct_encoding(collector, paths, device, lowpass=True)
        assert collector.wait_for(lambda c: bool(c.status) and c.status[-1]["state"] == "offline")
        final = collector.status[-1]
        # No lowpass payload promises a quality, so there is no equal-quality saving to report.
        assert final["equal_quality_jpeg_bytes_total"] == 0
        assert final["payload_to_equal_quality_jpeg_ratio"] is None
        assert final["payload_to_source_ratio"] is not None
    finally:
        collector.close()


def test_broker_outage_mid_stream_loses_nothing(
    mosquitto_factory: MosquittoFactory, tmp_path: Path
) -> None:
    broker = mosquitto_factory(persistence=True)
    device = _device()
    collector = Collector(broker.port, f"dctlink/{device}/image", persistent=True)
    stop = threading.Event()
    result: list[int] = []
    flags = _flags(broker, device, tmp_path / "s.db", "--broker-reconnect-max-s", "1")
    sender = threading.Thread(
        target=lambda: result.append(
            main(["demo", "--count", "16", "--interval", "0.15", *flags], stop)
        )
    )
    sender.start()
    try:
        assert collector.wait_for(lambda c: len(c.payloads) >= 3)
        broker.stop()
        # The outage lasts until the sender has spooled images it cannot deliver.
        deadline = time.monotonic() + 20
        while _spool_depth(tmp_path / "s.db") < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _spool_depth(tmp_path / "s.db") >= 3
        broker.start()
        sender.join(60)
        assert result == [0]
        assert collector.wait_for(lambda c: len(c.decoded()) == 16)
        assert len(collector.payloads) >= 16  # duplicates allowed, each with its image id
    finally:
        stop.set()
        sender.join(10)
        collector.close()


def _spool_depth(path: Path) -> int:
    try:
        with sqlite3.connect(path) as db:
            return int(db.execute("SELECT COUNT(*) FROM images").fetchone()[0])
    except sqlite3.OperationalError:
        return 0  # not created yet


def test_sigkill_with_images_in_the_spool_loses_nothing(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    device = _device()
    paths = _inputs(tmp_path / "in", 5)
    spool = tmp_path / "s.db"
    dead_broker = f"mqtt://127.0.0.1:{free_port()}"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edge_sender",
            "send",
            *map(str, paths),
            "--broker",
            dead_broker,
            "--device-id",
            device,
            "--spool-path",
            str(spool),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while _spool_depth(spool) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _spool_depth(spool) == 5
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    collector = Collector(mosquitto.port, f"dctlink/{device}/#")
    try:
        # No paths: deliver what the killed run left in the spool.
        assert main(["send", *_flags(mosquitto, device, spool), "--timeout", "30"]) == 0
        assert collector.wait_for(lambda c: len(c.payloads) >= 5)
        _assert_equal_to_direct_encoding(collector, paths, device)
        assert _spool_depth(spool) == 0
    finally:
        collector.close()


def test_watch_sends_new_files_and_deletes_them_once_spooled(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    device = _device()
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    collector = Collector(mosquitto.port, f"dctlink/{device}/image")
    stop = threading.Event()
    flags = _flags(mosquitto, device, tmp_path / "s.db")
    command = ["watch", str(inbox), "--after", "delete", "--poll-interval", "0.05", *flags]
    watcher = threading.Thread(target=main, args=(command, stop))
    watcher.start()
    try:
        Image.open(SAMPLES / "kodim05-half.png").save(inbox / ".a.png")
        (inbox / ".a.png").rename(inbox / "a.png")  # the write-then-rename a camera should use
        assert collector.wait_for(lambda c: len(c.payloads) == 1)
        deadline = time.monotonic() + 5
        while (inbox / "a.png").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not (inbox / "a.png").exists()
    finally:
        stop.set()
        watcher.join(10)
        collector.close()


def test_a_full_spool_drops_the_oldest_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = EdgeSettings(
        device_id=_device(),
        broker=BrokerSettings(url=f"mqtt://127.0.0.1:{free_port()}"),  # nobody listens
        spool=SpoolSettings(path=tmp_path / "s.db", max_bytes=25_000),
    )
    frame = frame_from_path(SAMPLES / "kodim04-half.png")  # about 12 kB encoded (auto, 75)
    with Spool(settings.spool.path, settings.spool.max_bytes) as spool:
        sender = Sender(settings, spool)
        sender.start()
        try:
            ids = [sender.accept(frame) for _ in range(4)]
            assert spool.depth()[0] == 2
            assert [e.image_id for e in spool.peek(10)] == ids[2:]
            assert sender.status()["dropped_total"] == 2
            assert caplog.text.count("spool full, dropped oldest image") == 2
        finally:
            sender.close()


def test_start_and_stop_logs_keep_lifetime_totals_apart_from_this_run(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The spool's counters outlast restarts; a new run must not look as if it had published."""
    caplog.set_level(logging.INFO, logger="edge_sender")
    settings = EdgeSettings(
        device_id=_device(),
        broker=BrokerSettings(url=f"mqtt://127.0.0.1:{free_port()}"),  # nobody listens
        spool=SpoolSettings(path=tmp_path / "s.db", max_bytes=25_000),
    )
    frame = frame_from_path(SAMPLES / "kodim04-half.png")

    def fields(message: str) -> dict[str, object]:
        record = [r for r in caplog.records if r.getMessage() == message][-1]
        logged: dict[str, object] = record.fields  # type: ignore[attr-defined]
        return logged

    for run, accepted in enumerate((4, 1)):
        with Spool(settings.spool.path, settings.spool.max_bytes) as spool:
            sender = Sender(settings, spool)
            sender.start()
            try:
                for _ in range(accepted):
                    sender.accept(frame)
            finally:
                sender.close()
        started, stopped = fields("sender started"), fields("sender stopped")
        assert "dropped_total" not in started
        assert "this_run" not in started
        assert started["spool_lifetime"]["dropped_total"] == 2 * run  # type: ignore[index]
        assert stopped["this_run"]["dropped_total"] == (2 if run == 0 else 1)  # type: ignore[index]


class _BrokenDiskSpool(Spool):
    """A spool whose disk fails when the first PUBACK is recorded."""

    def ack(self, seqs: Iterable[int]) -> int:
        raise sqlite3.OperationalError("disk I/O error")


def test_a_failing_spool_stops_the_sender_instead_of_hanging_it(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    settings = EdgeSettings(
        device_id=_device(),
        broker=BrokerSettings(url=mosquitto.url),
        spool=SpoolSettings(path=tmp_path / "s.db"),
    )
    with _BrokenDiskSpool(settings.spool.path, settings.spool.max_bytes) as spool:
        sender = Sender(settings, spool)
        sender.start()
        try:
            sender.accept(frame_from_path(SAMPLES / "kodim04-half.png"))
            started = time.monotonic()
            assert not sender.wait_drained(timeout_s=20)
            assert time.monotonic() - started < 10  # told at once, not at the timeout
            assert isinstance(sender.failure, sqlite3.OperationalError)
            assert spool.depth()[0] == 1  # and the image is still there for the next run
        finally:
            sender.close()


def _watch_until(command: list[str], stop: threading.Event, result: list[int]) -> threading.Thread:
    watcher = threading.Thread(target=lambda: result.append(main(command, stop)))
    watcher.start()
    return watcher


def test_watch_keep_does_not_send_a_folder_again_after_a_restart(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    device = _device()
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    Image.open(SAMPLES / "kodim05-half.png").save(inbox / "a.png")
    collector = Collector(mosquitto.port, f"dctlink/{device}/image")
    flags = _flags(mosquitto, device, tmp_path / "s.db")
    command = ["watch", str(inbox), "--after", "keep", "--poll-interval", "0.05", *flags]
    try:
        stop, result = threading.Event(), list[int]()
        watcher = _watch_until(command, stop, result)
        assert collector.wait_for(lambda c: len(c.payloads) == 1)
        stop.set()
        watcher.join(10)

        stop = threading.Event()
        watcher = _watch_until(command, stop, result)  # the restart
        Image.open(SAMPLES / "kodim15-half.png").save(inbox / "b.png")
        assert collector.wait_for(lambda c: len(c.payloads) >= 2)
        time.sleep(0.5)  # room for a wrong re-send of a.png to show up
        stop.set()
        watcher.join(10)
        assert result == [0, 0]
        assert len(collector.payloads) == 2  # a.png once, then b.png; never a.png again
    finally:
        collector.close()


def test_watch_refuses_an_image_bigger_than_the_spool_and_goes_on(
    mosquitto: Mosquitto, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    device = _device()
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    Image.open(SAMPLES / "kodim05-half.png").save(inbox / "a-big.png")  # about 11 kB encoded
    Image.new("RGB", (16, 16), (120, 60, 30)).save(inbox / "b-small.png")  # about 220 bytes
    collector = Collector(mosquitto.port, f"dctlink/{device}/#")
    flags = _flags(mosquitto, device, tmp_path / "s.db", "--spool-max-bytes", "2048")
    command = ["watch", str(inbox), "--poll-interval", "0.05", *flags]
    stop, result = threading.Event(), list[int]()
    watcher = _watch_until(command, stop, result)
    try:
        assert collector.wait_for(lambda c: len(c.payloads) == 1)
        assert watcher.is_alive()  # still watching after the refusal
        assert "image refused: bigger than the whole spool" in capsys.readouterr().err
    finally:
        stop.set()
        watcher.join(10)
    try:
        assert result == [0]
        assert collector.wait_for(lambda c: bool(c.status) and c.status[-1]["state"] == "offline")
        assert collector.status[-1]["refused_total"] == 1
    finally:
        collector.close()


def test_send_on_a_terminal_shows_spooling_then_delivery(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    """The bars appear only on a terminal (a pty here), and the wait for PUBACKs has one too."""
    paths = _inputs(tmp_path / "in", 3)
    command = [
        str(Path(sys.executable).with_name("edge-sender")),
        "send",
        *map(str, paths),
        *_flags(mosquitto, _device(), tmp_path / "s.db"),
        "--timeout",
        "30",
    ]
    primary, secondary = pty.openpty()
    # A new pty is 0 columns wide, and tqdm draws nothing in no columns: size it as a terminal.
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    output = bytearray()

    def read() -> None:
        with contextlib.suppress(OSError):  # EIO once the child has closed the terminal
            while chunk := os.read(primary, 4096):
                output.extend(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        result = subprocess.run(
            command, stdin=subprocess.DEVNULL, stderr=secondary, timeout=60, check=False
        )
    finally:
        os.close(secondary)
        reader.join(10)
        os.close(primary)
    text = output.decode(errors="replace")
    assert result.returncode == 0, text
    assert re.search(r"spooled: 100%.*3/3", text), text
    assert re.search(r"delivered: 100%.*3/3", text), text
