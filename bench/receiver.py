"""Receiver ingest: sustained rate and latency from MQTT publish to GET-able image.

    python -m bench.receiver [--count N] [--rate R] [--data DIR] [--workers W] [--model PATH]

Starts a real mosquitto (a free port, its configuration in a temporary folder) and the receiver
(``cloud-receiver serve`` in its own process, data in the same temporary folder), then publishes
``--count`` 768x512 images at a steady ``--rate`` per second, QoS 1, spread over a few device ids.
The images are the Kodak set when ``../shared/datasets/kodak`` exists, else the bundled samples
upscaled; each is encoded with the sender's default profile before the clock starts, so the
figures are the receiver's alone. An image counts as arrived when the receiver announces it on
``GET /api/v1/events`` (it does so once the image is stored); every arrival is then checked with
``GET /api/v1/images/{id}``. Without ``--model`` the network stays off: the figures are for the
received and classical stages.

Targets: a sustained rate of at least 10 images/s and a p50 latency of at most 500 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from PIL import Image

from bench.rd import default_data, images_in, load
from harness import Mosquitto, free_port, stop_process, wait_ready
from shared.codec import Profile, encode

WIDTH, HEIGHT = 768, 512
DEVICES = 4
TARGET_RATE = 10.0  # images/s
TARGET_P50_MS = 500.0


def http_ok(url: str) -> bool:
    """Whether ``url`` answers 200 now."""
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def image_events(lines: Iterable[str]) -> Iterator[dict[str, object]]:
    """The data of each ``event: image`` in the lines of a server-sent event stream."""
    event, data = "message", []
    for line in lines:
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
        elif not line:
            if event == "image" and data:
                yield json.loads("\n".join(data))
            event, data = "message", []


def receiver_command() -> list[str]:
    """The installed console script next to this interpreter, else the module."""
    script = Path(sys.executable).with_name("cloud-receiver")
    if script.exists():
        return [str(script), "serve"]
    return [sys.executable, "-m", "cloud_receiver", "serve"]


@contextmanager
def receiver(
    workdir: Path,
    broker_url: str,
    *,
    workers: int | None = None,
    iterations: int | None = None,
    model: Path | None = None,
) -> Iterator[str]:
    """``cloud-receiver serve`` on a free port; yields its base URL once it is ready."""
    port = free_port()
    env = {
        **os.environ,
        "DCTLINK_RECEIVER__BROKER__URL": broker_url,
        "DCTLINK_RECEIVER__BROKER__CLIENT_ID": f"bench-{uuid.uuid4().hex[:8]}",
        "DCTLINK_RECEIVER__STORE__DATA_DIR": str(workdir / "data"),
        "DCTLINK_RECEIVER__RECOVERY__MODEL_PATH": str(model or workdir / "no-model.onnx"),
        "DCTLINK_RECEIVER__API__HOST": "127.0.0.1",
        "DCTLINK_RECEIVER__API__PORT": str(port),
        "DCTLINK_RECEIVER__LOG_LEVEL": "WARNING",
    }
    if workers is not None:
        env["DCTLINK_RECEIVER__INGEST__WORKERS"] = str(workers)
    if iterations is not None:
        env["DCTLINK_RECEIVER__RECOVERY__ITERATIONS"] = str(iterations)
    log = (workdir / "receiver.log").open("wb")
    process = subprocess.Popen(receiver_command(), env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        # /readyz: subscribed to the broker, so nothing published from now on is missed.
        wait_ready(lambda: http_ok(f"{base}/readyz"), "the receiver", 60, process)
        yield base
    except RuntimeError as error:
        log.flush()
        tail = (workdir / "receiver.log").read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{error}; its log ends:\n{tail}") from error
    finally:
        stop_process(process)
        log.close()


class Arrivals:
    """Reads ``event: image`` from the receiver's SSE stream and times each arrival."""

    def __init__(self, base: str) -> None:
        self._url = f"{base}/api/v1/events"
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self.at: dict[uuid.UUID, float] = {}
        self.timings_ms: dict[uuid.UUID, dict[str, float]] = {}
        self.connected = threading.Event()
        self._closing = threading.Event()
        self._client = httpx.Client(timeout=httpx.Timeout(10.0, read=None))
        self._thread = threading.Thread(target=self._run, name="sse", daemon=True)

    def __enter__(self) -> Arrivals:
        self._thread.start()
        if not self.connected.wait(15):
            raise RuntimeError(f"no event stream at {self._url}")
        return self

    def __exit__(self, *exc: object) -> None:
        # Hang up, so the receiver's shutdown does not wait on an open stream.
        self._closing.set()
        self._client.close()
        self._thread.join(5)

    def _run(self) -> None:
        try:
            self._listen()
        except (httpx.HTTPError, RuntimeError, OSError):
            if not self._closing.is_set():
                raise  # the receiver went away before we were done: a real failure

    def _listen(self) -> None:
        with self._client.stream("GET", self._url) as response:
            response.raise_for_status()
            self.connected.set()
            for meta in image_events(response.iter_lines()):
                if self._closing.is_set():
                    return
                self._record(meta)

    def _record(self, meta: dict[str, object]) -> None:
        now = time.perf_counter()
        image_id = uuid.UUID(str(meta["id"]))
        timings = meta.get("timings_ms")
        with self._changed:
            self.at.setdefault(image_id, now)
            if isinstance(timings, dict):
                self.timings_ms[image_id] = {k: v for k, v in timings.items() if v is not None}
            self._changed.notify_all()

    def wait_for(self, ids: set[uuid.UUID], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while not ids <= self.at.keys():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
        return True


@dataclass(frozen=True)
class Message:
    image_id: uuid.UUID
    topic: str
    payload: bytes


def bench_images(data: Path) -> list[np.ndarray]:
    """768x512 RGB images: portrait ones turned, other sizes resized (Lanczos)."""
    images = []
    for path in images_in(data, None):
        image = Image.fromarray(load(path)).convert("RGB")
        if image.height > image.width:
            image = image.transpose(Image.Transpose.ROTATE_90)
        if image.size != (WIDTH, HEIGHT):
            image = image.resize((WIDTH, HEIGHT), Image.Resampling.LANCZOS)
        images.append(np.asarray(image))
    if not images:
        raise FileNotFoundError(f"no images in {data}")
    return images


def prepare(images: Sequence[np.ndarray], count: int, prefix: str) -> list[Message]:
    """Encode ``count`` payloads (the sender's default profile), each with its own image id."""
    messages = []
    for index in range(count):
        device = f"bench-{index % DEVICES}"
        image_id = uuid.uuid4()
        payload = encode(
            images[index % len(images)], Profile.lowpass(), device_id=device, image_id=image_id
        )
        messages.append(Message(image_id, f"{prefix}/{device}/image", payload))
    return messages


def connect(broker_url: str) -> mqtt.Client:
    host, _, port = broker_url.removeprefix("mqtt://").partition(":")
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"bench-publisher-{uuid.uuid4().hex[:8]}",
        protocol=mqtt.MQTTv5,
    )
    client.max_inflight_messages_set(100)
    client.connect(host, int(port))
    client.loop_start()
    return client


def publish(
    client: mqtt.Client, messages: Sequence[Message], rate: float
) -> dict[uuid.UUID, float]:
    """Publish at a steady rate (a schedule, so a slow call does not shift the rest)."""
    sent: dict[uuid.UUID, float] = {}
    start = time.perf_counter()
    for index, message in enumerate(messages):
        due = start + index / rate
        while (now := time.perf_counter()) < due:
            time.sleep(due - now)
        sent[message.image_id] = time.perf_counter()
        client.publish(message.topic, message.payload, qos=1)
    return sent


@dataclass(frozen=True)
class Result:
    count: int
    arrived: int
    retrievable: int
    offered_rate: float
    publish_s: float
    ingest_rate: float
    latencies_ms: list[float]
    payload_bytes: float
    stage_ms: dict[str, float]  # median time of each stage, as the receiver reports it

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")


def check_retrievable(base: str, ids: Sequence[uuid.UUID]) -> int:
    with httpx.Client(base_url=base, timeout=10) as http:
        return sum(http.get(f"/api/v1/images/{image_id}").status_code == 200 for image_id in ids)


def run(
    *,
    count: int,
    rate: float,
    data: Path,
    warmup: int,
    workers: int | None = None,
    iterations: int | None = None,
    model: Path | None = None,
) -> Result:
    images = bench_images(data)
    with tempfile.TemporaryDirectory(prefix="dctlink-bench-") as tmp:
        workdir = Path(tmp)
        messages = prepare(images, warmup + count, "dctlink")
        with (
            Mosquitto(workdir) as broker,
            receiver(
                workdir, broker.url, workers=workers, iterations=iterations, model=model
            ) as base,
            Arrivals(base) as arrivals,
        ):
            client = connect(broker.url)
            try:
                # Warm-up images (first decode, lazy imports) are not counted.
                publish(client, messages[:warmup], rate)
                arrivals.wait_for({m.image_id for m in messages[:warmup]}, 60)
                timed = messages[warmup:]
                sent = publish(client, timed, rate)
                publish_s = max(sent.values()) - min(sent.values())
                arrivals.wait_for(set(sent), 30 + 2 * count / rate)
            finally:
                client.loop_stop()
                client.disconnect()
            arrived = {i: arrivals.at[i] for i in sent if i in arrivals.at}
            timings = [arrivals.timings_ms[i] for i in arrived if i in arrivals.timings_ms]
            retrievable = check_retrievable(base, list(arrived))
    latencies = [1000 * (arrived[i] - sent[i]) for i in arrived]
    span = max(arrived.values(), default=0.0) - min(sent.values())
    return Result(
        count=count,
        arrived=len(arrived),
        retrievable=retrievable,
        offered_rate=rate,
        publish_s=publish_s,
        ingest_rate=len(arrived) / span if span > 0 else float("nan"),
        latencies_ms=latencies,
        payload_bytes=statistics.mean(len(m.payload) for m in timed),
        stage_ms={
            stage: statistics.median(t[stage] for t in timings if stage in t)
            for stage in sorted({stage for t in timings for stage in t})
        },
    )


def report(result: Result, data: Path, model: Path | None) -> str:
    p50, p99 = result.percentile(50), result.percentile(99)
    ok = "ok" if result.ingest_rate >= TARGET_RATE else "MISSED"
    ok50 = "ok" if p50 <= TARGET_P50_MS else "MISSED"
    rows = [
        ("images published", f"{result.count} at {result.offered_rate:g}/s", ""),
        ("images stored (SSE)", f"{result.arrived}", ""),
        ("GET /api/v1/images/{id} = 200", f"{result.retrievable}", ""),
        ("mean payload", f"{result.payload_bytes / 1000:.1f} kB", ""),
        ("sustained ingest rate", f"{result.ingest_rate:.1f} images/s", f">= {TARGET_RATE:g} {ok}"),
        ("latency p50", f"{p50:.0f} ms", f"<= {TARGET_P50_MS:g} ms {ok50}"),
        ("latency p99", f"{p99:.0f} ms", ""),
        ("latency max", f"{max(result.latencies_ms, default=float('nan')):.0f} ms", ""),
    ]
    rows += [
        (f"receiver {stage} (median)", f"{ms:.0f} ms", "") for stage, ms in result.stage_ms.items()
    ]
    stages = "received + classical + enhanced" if model else "received + classical"
    lines = [
        f"Receiver ingest, {WIDTH}x{HEIGHT} from {data}, lowpass default, stages: {stages}",
        "",
        f"| {'measure':<30} | {'value':>18} | {'target':<16} |",
        f"| {'-' * 30} | {'-' * 18}:| {'-' * 16} |",
    ]
    lines += [f"| {name:<30} | {value:>18} | {target:<16} |" for name, value, target in rows]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.receiver",
        description=__doc__.split("\n\n")[2] if __doc__ else None,
    )
    parser.add_argument("--count", type=int, default=200, help="images to time (default 200)")
    parser.add_argument(
        "--rate", type=float, default=12.0, help="images published per second (default 12)"
    )
    parser.add_argument("--data", type=Path, default=default_data(), help="folder of images")
    parser.add_argument("--workers", type=int, help="receiver ingest workers (its default)")
    parser.add_argument(
        "--iterations", type=int, help="classical recovery iterations (the receiver's default)"
    )
    parser.add_argument("--model", type=Path, help="ONNX network to run (default: none)")
    parser.add_argument("--warmup", type=int, default=4, help="untimed images first (default 4)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.count < 1 or args.rate <= 0:
        print("--count must be >= 1 and --rate > 0", file=sys.stderr)
        return 2
    result = run(
        count=args.count,
        rate=args.rate,
        data=args.data,
        workers=args.workers,
        iterations=args.iterations,
        model=args.model,
        warmup=args.warmup,
    )
    print(report(result, args.data, args.model))
    delivered = result.arrived == result.retrievable == result.count
    if not delivered:
        print(f"\n{result.count - result.arrived} images did not arrive", file=sys.stderr)
    return 0 if delivered else 1


if __name__ == "__main__":
    sys.exit(main())
