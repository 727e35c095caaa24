"""Hostile payloads against a real receiver: memory, time and the delay they cause others.

    python -m bench.hostile [--scenarios NAME ...]

For each scenario a fresh mosquitto and ``cloud-receiver serve`` (default settings: two workers,
the network loaded, the default limits and budgets) in their own processes; the attack is
published, then a good 768x512 image from another device, and the bench prints the receiver's
peak memory (``VmHWM``), how each attack ended, and how long after it was sent the good image
was stored. Targets (issue 12): at most 1 GB and 10 s per attack, the good image within 5 s.

The payloads are valid (checksums right) and within the wire format; each is the worst of its
kind an attacker holding a device login could send:

- ``claim``: 76 bytes claiming 8192x4096 in 4:4:4 (the decoder used to allocate 2 GB for it);
- ``anchors``: ``paper`` at 4096x4096 with a DC anchor every 255 blocks (190 s of DC solve)
  and the same at 4096x3072, inside the default pixel limit;
- ``flood``: 20 of the costliest payloads the limits admit from one device;
- ``chunked``: three costly payloads through the chunk topic;
- ``claims``: 100 device ids, each one 42-byte chunk claiming 16 MiB;
- ``post``: two ``claim`` payloads POSTed to /api/v1/payloads, then a good one POSTed.
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
import uuid
import zlib
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np

from bench.receiver import connect, receiver
from cloud_receiver.recovery import DEFAULT_MODEL_PATH
from harness import Mosquitto, cpu_seconds, peak_rss_mb, rss_mb
from shared.chunking import ChunkHeader, pack_chunk, split_payload
from shared.codec import Layout, Profile, encode, wire

#: Where the image id sits in a payload header.
_IMAGE_ID = slice(wire.OFFSET.image_id, wire.OFFSET.captured_at)


def image_id_of(payload: bytes) -> uuid.UUID:
    return uuid.UUID(bytes=payload[_IMAGE_ID])


def with_image_id(payload: bytes, image_id: uuid.UUID) -> bytes:
    """The same payload under another image id, re-sealed (so a flood is not deduplicated)."""
    body = payload[:-4]
    body = body[: _IMAGE_ID.start] + image_id.bytes + body[_IMAGE_ID.stop :]
    return body + zlib.crc32(body).to_bytes(4, "big")


def flat(
    device: str, width: int, height: int, layout: Layout = Layout.YCBCR420, keep: int = 1
) -> bytes:
    """An all-zero lowpass payload: a few dozen bytes that claim ``width`` x ``height``."""
    shape = (height, width) if layout is Layout.GRAY else (height, width, 3)
    return encode(
        np.zeros(shape, np.uint8), Profile.lowpass(50, keep, keep, layout=layout), device_id=device
    )


def sparse_anchors(device: str, width: int, height: int) -> bytes:
    """A ``paper`` payload with one DC anchor every 255 blocks: the costliest DC solve."""
    return encode(np.zeros((height, width), np.uint8), Profile.paper(50, 255), device_id=device)


def noisy(device: str, width: int, height: int, layout: Layout = Layout.YCBCR444) -> bytes:
    """A payload full of real bytes (noise at quality 90), as large as its claim."""
    pixels = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return encode(pixels, Profile.lowpass(90, 64, 64, layout=layout), device_id=device)


def good(device: str) -> bytes:
    """An ordinary image: 768x512 of smooth gradients at the sender's default profile."""
    y, x = np.mgrid[0:512, 0:768]
    pixels = np.stack([x % 256, y % 256, (x + y) % 256], axis=-1).astype(np.uint8)
    return encode(pixels, Profile.auto(75), device_id=device)


def costliest(device: str) -> bytes:
    """The costliest payload the default limits admit with classical recovery: 2592x1944."""
    return flat(device, 2592, 1944)


class Target:
    """One running receiver: its URL, process id and topic prefix."""

    def __init__(self, base: str, broker_url: str) -> None:
        self.base = base
        self.broker_url = broker_url
        self.client = connect(broker_url)

    def publish(self, topic: str, payloads: list[bytes]) -> None:
        infos = [self.client.publish(topic, p, qos=1) for p in payloads]
        for info in infos:
            info.wait_for_publish(60)

    def stored(self, image_id: uuid.UUID) -> bool:
        return httpx.get(f"{self.base}/api/v1/images/{image_id}").status_code == 200

    def wait_stored(self, image_id: uuid.UUID, timeout_s: float = 120) -> float | None:
        """Seconds until ``image_id`` is stored, from now; None past the timeout."""
        start = time.monotonic()
        while time.monotonic() - start < timeout_s:
            if self.stored(image_id):
                return time.monotonic() - start
            time.sleep(0.05)
        return None

    def refusals(self) -> dict[str, float]:
        text = httpx.get(f"{self.base}/metrics").text
        pattern = r'^dctlink_malformed_payloads_total\{reason="([^"]+)"\} (\S+)$'
        return {m.group(1): float(m.group(2)) for m in re.finditer(pattern, text, re.M)}

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _receiver_pid(base: str) -> int:
    port = base.rsplit(":", 1)[1]
    for status in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            command = status.read_bytes()
        except OSError:
            continue
        if b"serve" in command and b"cloud" in command:
            environ = (status.parent / "environ").read_bytes()
            if f"DCTLINK_RECEIVER__API__PORT={port}".encode() in environ:
                return int(status.parent.name)
    raise RuntimeError("receiver process not found")


def _then_good(target: Target, settle_s: float = 1.0) -> float | None:
    """Publish a good image from another device after ``settle_s``; its delay to stored."""
    time.sleep(settle_s)
    payload = good("cam-good")
    target.publish("dctlink/cam-good/image", [payload])
    return target.wait_stored(image_id_of(payload))


def scenario_claim(target: Target) -> str:
    attack = flat("cam-evil", 8192, 4096, Layout.YCBCR444)
    target.publish("dctlink/cam-evil/image", [attack])
    delay = _then_good(target)
    return f"{len(attack)}-byte payload; good image stored after {delay:.2f} s"


def scenario_anchors(target: Target) -> str:
    huge = sparse_anchors("cam-evil", 4096, 4096)
    inside = sparse_anchors("cam-evil", 4096, 3072)
    sent = time.monotonic()
    target.publish("dctlink/cam-evil/image", [huge, inside])
    took = target.wait_stored(image_id_of(inside))
    total = time.monotonic() - sent
    record = httpx.get(f"{target.base}/api/v1/images/{image_id_of(inside)}").json()
    classical = record["stages"]["classical"].get("reason", "stored")
    delay = _then_good(target, 0)
    return (
        f"{len(huge)} B 4096x4096 refused; {len(inside)} B 4096x3072 stored in {total:.2f} s"
        f" ({took and round(took, 2)} s wait), classical: {classical!r};"
        f" good image after {delay:.2f} s"
    )


def scenario_flood(target: Target) -> str:
    base = costliest("cam-evil")
    flood = [with_image_id(base, uuid.uuid4()) for _ in range(20)]
    target.publish("dctlink/cam-evil/image", flood)
    delay = _then_good(target)
    last = target.wait_stored(image_id_of(flood[-1]), 300)
    return (
        f"20 x {len(base)} B at 2592x1944; good image after {delay:.2f} s; flood done +{last:.1f} s"
    )


def scenario_chunked(target: Target) -> str:
    payloads = [with_image_id(costliest("cam-evil"), uuid.uuid4()) for _ in range(3)]
    for payload in payloads:
        target.publish("dctlink/cam-evil/chunk", split_payload(payload, image_id_of(payload), 64))
    delay = _then_good(target)
    return f"3 chunked 2592x1944 payloads; good image after {delay:.2f} s"


def scenario_claims(target: Target) -> str:
    pid = _receiver_pid(target.base)
    before = rss_mb(pid)
    for device in range(100):
        claim = pack_chunk(ChunkHeader(uuid.uuid4(), 0, 2, 16 * 2**20 - 1, 0), b"x" * 10)
        target.publish(f"dctlink/dev-{device}/chunk", [claim])
    delay = _then_good(target)
    return f"RSS {before:.0f} -> {rss_mb(pid):.0f} MB; good image after {delay:.2f} s"


def scenario_post(target: Target) -> str:
    attack = flat("cam-evil", 8192, 4096, Layout.YCBCR444)
    codes = []
    for _ in range(2):
        response = httpx.post(
            f"{target.base}/api/v1/payloads",
            content=with_image_id(attack, uuid.uuid4()),
            headers={"Content-Type": "application/octet-stream"},
            timeout=120,
        )
        codes.append(response.status_code)
    started = time.monotonic()
    response = httpx.post(
        f"{target.base}/api/v1/payloads",
        content=good("cam-good"),
        headers={"Content-Type": "application/octet-stream"},
        timeout=120,
    )
    return (
        f"attacks answered {codes}; good POST answered {response.status_code}"
        f" after {time.monotonic() - started:.2f} s"
    )


SCENARIOS: dict[str, Callable[[Target], str]] = {
    "claim": scenario_claim,
    "anchors": scenario_anchors,
    "flood": scenario_flood,
    "chunked": scenario_chunked,
    "claims": scenario_claims,
    "post": scenario_post,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=SCENARIOS)
    args = parser.parse_args(argv)
    for name in args.scenarios:
        with tempfile.TemporaryDirectory() as folder:
            work = Path(folder)
            with (
                Mosquitto(work) as mosquitto,
                receiver(work, mosquitto.url, model=DEFAULT_MODEL_PATH) as base,
            ):
                target = Target(base, mosquitto.url)
                try:
                    pid = _receiver_pid(base)
                    idle, cpu = peak_rss_mb(pid), cpu_seconds(pid)
                    outcome = SCENARIOS[name](target)
                    peak, cpu = peak_rss_mb(pid), cpu_seconds(pid) - cpu
                    refused = target.refusals()
                finally:
                    target.close()
            print(
                f"{name:<8} peak {peak:5.0f} MB (idle {idle:.0f})  CPU {cpu:.1f} s"
                f"  refused {refused}  {outcome}",
                flush=True,
            )


if __name__ == "__main__":
    main()
