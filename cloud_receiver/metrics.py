"""Prometheus metrics: names prefixed ``dctlink_``, base units, counters end in ``_total``.

Each app gets its own registry (not the process-global one), so several apps in one process
(tests) never collide and ``/metrics`` shows exactly this receiver.

The two byte counters carry the ``basis`` of each image's ``jpeg_bytes`` (``equal_quality``,
``same_quality_setting``, ``assumed_quality_90``), so a saving is computed within one basis:
``payload_bytes_received_total{basis="equal_quality"}`` over
``equivalent_jpeg_bytes_total{basis="equal_quality"}`` is the saving at equal picture quality;
a sum over all bases mixes it with comparisons of settings. The ``device_`` series split the
same bytes per device (Grafana's bytes-saved panels), and ``device_promised_quality`` is the
quality an auto payload promises, the one picture quality the receiver knows.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# Recovery on a small board image takes tens of milliseconds to seconds.
_LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.images = Counter(
            "dctlink_images_received_total", "Images decoded, recovered and stored", registry=r
        )
        self.payload_bytes = Counter(
            "dctlink_payload_bytes_received_total",
            "Payload bytes of stored images (as received), by the basis of their JPEG size",
            ["basis"],
            registry=r,
        )
        self.jpeg_bytes = Counter(
            "dctlink_equivalent_jpeg_bytes_total",
            "Bytes of the JPEGs the same images are compared with, by basis: equal_quality"
            " (measured by the sender at the promised quality) or an estimate at the quality"
            " setting",
            ["basis"],
            registry=r,
        )
        # Per device: one series per camera (the broker's logins bound how many there are).
        self.device_payload_bytes = Counter(
            "dctlink_device_payload_bytes",
            "Payload bytes of stored images per device, by the basis of their JPEG size",
            ["device", "basis"],
            registry=r,
        )
        self.device_jpeg_bytes = Counter(
            "dctlink_device_jpeg_bytes",
            "Bytes of the JPEGs each device's images are compared with, by basis",
            ["device", "basis"],
            registry=r,
        )
        self.device_promised_quality = Gauge(
            "dctlink_device_promised_quality",
            "The libjpeg quality the device's newest auto picture is at least as good as",
            ["device"],
            registry=r,
        )
        self.malformed = Counter(
            "dctlink_malformed_payloads_total",
            "Messages rejected and quarantined, by reason class",
            ["reason"],
            registry=r,
        )
        self.duplicates = Counter(
            "dctlink_duplicate_images_total",
            "Images whose id was already stored (acknowledged, not stored again)",
            registry=r,
        )
        self.stage_seconds = Histogram(
            "dctlink_stage_duration_seconds",
            "Time spent in each pipeline stage",
            ["stage"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.devices_online = Gauge(
            "dctlink_devices_online", "Devices whose last status is online", registry=r
        )
        self.events_dropped = Counter(
            "dctlink_sse_events_dropped_total",
            "Events a slow SSE client missed because its queue was full",
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
