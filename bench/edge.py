"""Edge sender benchmark: ``python -m bench.edge [--count N]``.

Prints, for 768x512 and 1920x1080 JPEG inputs sent through a real local mosquitto:
images per second and CPU seconds per image of the whole sender (JPEG decode, encode, spool
commit, publish, PUBACK, spool delete), the same for the bare ``encode`` call, payload bytes
against the source JPEG, and the sender's resident memory idle and while sending (a separate
``edge-sender watch`` process, so the figures are the sender's own, not this script's).
Targets (issue #4): at most 80 MB RSS idle; CPU per image within 1.5x of bare ``encode``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import psutil
from PIL import Image

from edge_sender.config import BrokerSettings, EdgeSettings, SpoolSettings
from edge_sender.sender import Sender
from edge_sender.sources import frame_from_path
from edge_sender.spool import Spool
from harness import Mosquitto
from shared.codec import Profile, encode

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
SIZES = ((768, 512), (1920, 1080))


def _inputs(folder: Path, size: tuple[int, int], count: int) -> list[Path]:
    folder.mkdir(parents=True)
    samples = sorted(SAMPLES.glob("*.png"))
    paths = []
    for index in range(count):
        image = Image.open(samples[index % len(samples)]).convert("RGB").resize(size)
        path = folder / f"{index:03d}.jpg"
        image.save(path, quality=90)
        paths.append(path)
    return paths


def _bare(paths: list[Path], decode_too: bool) -> float:
    images = [Image.open(p).convert("RGB") for p in paths]
    started = time.process_time()
    for path, preloaded in zip(paths, images, strict=True):
        image = Image.open(path).convert("RGB") if decode_too else preloaded
        encode(image, Profile.lowpass(), device_id="bench")
    return (time.process_time() - started) / len(paths)


def _through_sender(paths: list[Path], port: int, workdir: Path) -> tuple[float, float, int]:
    settings = EdgeSettings(
        device_id=f"bench-{os.getpid()}",
        broker=BrokerSettings(url=f"mqtt://127.0.0.1:{port}"),
        spool=SpoolSettings(path=workdir / "spool.db"),
        log_level="WARNING",
    )
    with Spool(settings.spool.path, settings.spool.max_bytes) as spool:
        sender = Sender(settings, spool)
        sender.start()
        sender.publisher.connected.wait(10)
        wall, cpu = time.perf_counter(), time.process_time()
        for path in paths:
            sender.accept(frame_from_path(path))
        sender.wait_drained(120)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        payload = sender.status()["payload_bytes_total"]
        sender.close()
    return len(paths) / wall, cpu / len(paths), int(payload)


def _rss_mb(process: psutil.Process) -> float:
    return float(process.memory_info().rss) / 1e6


def _memory(paths: list[Path], port: int, workdir: Path) -> tuple[float, float]:
    """(idle, peak while sending) RSS of an ``edge-sender watch`` process, in MB."""
    inbox = workdir / "inbox"
    inbox.mkdir()
    command = [
        sys.executable,
        "-m",
        "edge_sender",
        "watch",
        str(inbox),
        "--after",
        "delete",
        "--poll-interval",
        "0.1",
        "--broker",
        f"mqtt://127.0.0.1:{port}",
        "--device-id",
        f"bench-rss-{os.getpid()}",
        "--spool-path",
        str(workdir / "rss.db"),
        "--log-level",
        "WARNING",
    ]
    child = subprocess.Popen(command)
    try:
        process = psutil.Process(child.pid)
        time.sleep(3)
        idle = _rss_mb(process)
        for path in paths:
            staged = inbox / f".{path.name}"
            shutil.copy(path, staged)
            staged.rename(inbox / path.name)
        peak, deadline = idle, time.monotonic() + 120
        while any(inbox.iterdir()) and time.monotonic() < deadline:
            peak = max(peak, _rss_mb(process))
            time.sleep(0.02)
        return idle, peak
    finally:
        child.terminate()
        child.wait(10)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.edge", description=__doc__)
    parser.add_argument("--count", type=int, default=24, help="images per size")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        broker = Mosquitto(workdir)
        broker.start()
        port = broker.port
        try:
            print(
                "| size | img/s | CPU s/img sender | CPU s/img encode | CPU s/img decode+encode"
                " | payload/JPEG bytes | RSS MB idle | RSS MB sending |"
            )
            print("| --- | --- | --- | --- | --- | --- | --- | --- |")
            for width, height in SIZES:
                run_dir = workdir / f"{width}x{height}"
                paths = _inputs(run_dir / "in", (width, height), args.count)
                jpeg = sum(p.stat().st_size for p in paths)
                encode_cpu, full_cpu = _bare(paths, False), _bare(paths, True)
                rate, cpu, payload = _through_sender(paths, port, run_dir)
                idle, peak = _memory(paths, port, run_dir)
                print(
                    f"| {width}x{height} | {rate:.1f} | {cpu:.4f} | {encode_cpu:.4f} |"
                    f" {full_cpu:.4f} | {payload}/{jpeg} = {payload / jpeg:.3f} |"
                    f" {idle:.0f} | {peak:.0f} |"
                )
        finally:
            broker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
