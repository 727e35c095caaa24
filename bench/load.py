"""A fleet through the whole delivery chain, with a receiver kill -9 and a broker restart.

    python -m bench.load [--devices 50] [--seconds 120] [--size 160x120]

``--devices`` real edge ``Sender``s (each with its own SQLite spool and MQTT session) in this
process each accept one frame a second for ``--seconds``, through a real mosquitto (persistence
on, in a temporary folder) to one ``cloud-receiver serve``. A third of the way in the receiver
is killed with SIGKILL and started again; two thirds in the broker is stopped and started again
on the same persistence folder. Then the senders drain their spools and the bench waits for the
receiver to store the rest.

It prints images accepted by the senders, stored, lost (accepted, never stored) and doubled
(stored twice: two ``event: image`` for one id), the latency from capture (the frame's accept)
to stored (its ``event: image``) at p50 and p99, over all images and outside the restarts
(images captured from 2 s before to 10 s after a restart began are left out of the second;
images stored while the event stream was reconnecting have no latency), and the receiver's
peak RSS and CPU seconds, per process. Loopback only; bounded in count (devices x seconds) and
in time (the run, plus at most two minutes of draining).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import statistics
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
from PIL import Image

from bench.receiver import http_ok, image_events, receiver_command
from edge_sender.config import EdgeSettings
from edge_sender.sender import Sender
from edge_sender.sources.base import Frame
from edge_sender.spool import Spool
from harness import Mosquitto, cpu_seconds, free_port, peak_rss_mb, wait_ready

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
#: Images captured this long after a restart began count as "during the restarts".
RESTART_WINDOW_S = 10.0
PREFIX = "dctlink"


@dataclass(frozen=True)
class Outcome:
    accepted: int
    stored: int
    lost: int
    doubled: int


class Receiver:
    """``cloud-receiver serve`` that can be killed with SIGKILL and started again."""

    def __init__(self, workdir: Path, broker_url: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "DCTLINK_RECEIVER__BROKER__URL": broker_url,
            "DCTLINK_RECEIVER__BROKER__CLIENT_ID": "bench-load-receiver",
            "DCTLINK_RECEIVER__STORE__DATA_DIR": str(workdir / "data"),
            "DCTLINK_RECEIVER__API__HOST": "127.0.0.1",
            "DCTLINK_RECEIVER__API__PORT": str(self.port),
            "DCTLINK_RECEIVER__LOG_LEVEL": "WARNING",
        }
        self.log = workdir / "receiver.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.figures: list[tuple[float, float]] = []  # (peak RSS MB, CPU s) per process
        self._latest: tuple[float, float] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                receiver_command(), env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        wait_ready(lambda: http_ok(f"{self.base}/readyz"), "the receiver", 60, self.process)

    def sample(self) -> None:
        """Record this process's figures; call often, since a kill -9 takes them along."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            self._latest = (peak_rss_mb(self.process.pid), cpu_seconds(self.process.pid))
        except (OSError, ValueError):
            return  # exited between the check and the read

    def end_process(self) -> None:
        if self._latest is not None:
            self.figures.append(self._latest)
            self._latest = None

    def kill(self) -> None:
        assert self.process is not None
        self.sample()
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)
        self.end_process()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.sample()
            self.process.terminate()
            self.process.wait(30)
            self.end_process()


class Events:
    """``event: image`` from the receiver's SSE stream, reconnecting across its restarts."""

    def __init__(self, base: str) -> None:
        self._url = f"{base}/api/v1/events"
        self.seen: Counter[str] = Counter()
        self.at: dict[str, float] = {}
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="events", daemon=True)
        self.connected = threading.Event()

    def start(self) -> None:
        self._thread.start()
        if not self.connected.wait(15):
            raise RuntimeError(f"no event stream at {self._url}")

    def close(self) -> None:
        self._closing.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._closing.is_set():
            try:
                self._listen()
            except (httpx.HTTPError, OSError):
                time.sleep(0.2)  # the receiver is restarting

    def _listen(self) -> None:
        timeout = httpx.Timeout(5.0, read=1.0)
        with httpx.stream("GET", self._url, timeout=timeout) as response:
            response.raise_for_status()
            self.connected.set()
            try:
                for meta in image_events(response.iter_lines()):
                    if self._closing.is_set():
                        return
                    self._record(meta)
            except httpx.ReadTimeout:
                return  # a quiet second: reconnect, which also notices a dead receiver

    def _record(self, meta: dict[str, object]) -> None:
        image_id = str(meta["id"])
        with self._lock:
            self.seen[image_id] += 1
            self.at.setdefault(image_id, time.time())


def _frames(size: tuple[int, int]) -> list[Image.Image]:
    images = []
    for path in sorted(SAMPLES.glob("*.png")):
        with Image.open(path) as image:
            images.append(image.convert("RGB").resize(size, Image.Resampling.LANCZOS))
    return images


def _senders(workdir: Path, broker_url: str, devices: int) -> list[Sender]:
    senders = []
    for index in range(devices):
        settings = EdgeSettings.model_validate(
            {
                "device_id": f"load-{index:03d}",
                "topic_prefix": PREFIX,
                "log_level": "WARNING",
                "broker": {"url": broker_url, "reconnect_min_s": 0.5, "reconnect_max_s": 2},
                "spool": {"path": workdir / f"spool-{index:03d}.db"},
                "encode": {"profile": "lowpass"},
            }
        )
        sender = Sender(settings, Spool(settings.spool.path, settings.spool.max_bytes))
        sender.start()
        senders.append(sender)
    return senders


def _percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def run(devices: int, seconds: float, size: tuple[int, int]) -> Outcome:
    """The whole run; prints the figures and returns the counts."""
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        # Persistence on, so a restart keeps the sessions and what they queued.
        broker = Mosquitto(workdir, persistence=True, extra=("max_queued_messages 100000",))
        broker.start()
        receiver = Receiver(workdir, broker.url)
        receiver.start()
        events = Events(receiver.base)
        events.start()
        frames = _frames(size)
        senders = _senders(workdir, broker.url, devices)
        captured: dict[str, float] = {}
        restarts: list[tuple[str, float, float]] = []
        try:
            start = time.time()
            kill_at, broker_at = start + seconds / 3, start + 2 * seconds / 3
            tick = 0
            while (now := time.time()) < start + seconds:
                for index, sender in enumerate(senders):
                    frame = Frame(
                        frames[(tick + index) % len(frames)],
                        datetime.now(UTC),
                        source=f"load-{index}",
                    )
                    captured[str(sender.accept(frame))] = time.time()
                receiver.sample()
                tick += 1
                if kill_at and now >= kill_at:
                    began = time.time()
                    receiver.kill()
                    receiver.start()
                    restarts.append(("receiver kill -9", began, time.time()))
                    kill_at = 0.0
                if broker_at and now >= broker_at:
                    began = time.time()
                    broker.stop()
                    broker.start()
                    restarts.append(("broker restart", began, time.time()))
                    broker_at = 0.0
                time.sleep(max(0.0, start + tick - time.time()))
            drained = all(s.wait_drained(timeout_s=120) for s in senders)
            deadline = time.monotonic() + 120
            stored = _stored_ids(receiver.base)
            while time.monotonic() < deadline and not captured.keys() <= stored:
                receiver.sample()
                time.sleep(1)
                stored = _stored_ids(receiver.base)
            time.sleep(1)  # the last events on their way
            receiver.sample()
        finally:
            for sender in senders:
                sender.close()
                sender.spool.close()
            events.close()
            receiver.stop()
            broker.stop()
        return _report(
            devices,
            seconds,
            size,
            captured=captured,
            stored=stored,
            events=events,
            restarts=restarts,
            receiver=receiver,
            drained=drained,
        )


def _stored_ids(base: str) -> set[str]:
    ids: set[str] = set()
    cursor: str | None = None
    while True:
        params = {"limit": "100", **({"cursor": cursor} if cursor else {})}
        page = httpx.get(f"{base}/api/v1/images", params=params, timeout=30).json()
        ids.update(item["id"] for item in page["items"])
        cursor = page["next_cursor"]
        if not cursor:
            return ids


def _report(
    devices: int,
    seconds: float,
    size: tuple[int, int],
    *,
    captured: dict[str, float],
    stored: set[str],
    events: Events,
    restarts: list[tuple[str, float, float]],
    receiver: Receiver,
    drained: bool,
) -> Outcome:
    lost = captured.keys() - stored
    doubled = [image_id for image_id, count in events.seen.items() if count > 1]
    latency = {i: events.at[i] - t for i, t in captured.items() if i in events.at}
    quiet = {
        i: seconds_
        for i, seconds_ in latency.items()
        if not any(began - 2 <= captured[i] <= began + RESTART_WINDOW_S for _, began, _ in restarts)
    }
    print(f"{devices} devices x 1 image/s for {seconds:.0f} s, {size[0]}x{size[1]} lowpass")
    for what, began, ready in restarts:
        print(f"  {what}: ready again after {ready - began:.1f} s")
    print(
        f"accepted {len(captured)}  stored {len(captured.keys() & stored)}  lost {len(lost)}"
        f"  doubled {len(doubled)}  spools drained: {drained}"
    )
    for name, values in (("all", latency), ("outside restarts", quiet)):
        seconds_list = list(values.values())
        print(
            f"capture -> stored, {name} ({len(seconds_list)} images): p50"
            f" {statistics.median(seconds_list) if seconds_list else float('nan'):.2f} s,"
            f" p99 {_percentile(seconds_list, 0.99):.2f} s, max"
            f" {max(seconds_list, default=float('nan')):.2f} s"
        )
    for number, (peak, cpu) in enumerate(receiver.figures):
        print(f"receiver process {number + 1}: peak RSS {peak:.0f} MB, CPU {cpu:.1f} s")
    if lost:
        print(f"lost, first ids: {sorted(lost)[:5]}")
    return Outcome(len(captured), len(captured.keys() & stored), len(lost), len(doubled))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--size", default="160x120", help="frame size WxH")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.split("x"))
    # Each sender logs every reconnect; fifty of them would bury the figures.
    logging.getLogger("edge_sender").setLevel(logging.ERROR)
    run(args.devices, args.seconds, (width, height))


if __name__ == "__main__":
    main()
