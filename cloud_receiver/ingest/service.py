"""Ingest as a running service: MQTT messages routed onto the pipeline's worker threads.

paho's network thread only parses the topic, reassembles chunks and records status (all cheap);
whole payloads go to a thread pool, because recovery is CPU-bound and must block neither paho
nor the event loop. Each image message is acknowledged after its worker is done with it, so
the broker's in-flight window (about 20 messages in mosquitto) is also our backpressure.

The pool is the parallelism: numpy, zlib and Pillow release the GIL in the heavy steps, so
``ingest.workers`` threads (one per core) keep every core busy. BLAS is held to one thread per
call while ingest runs; left at its default (a thread per core on every matrix product of every
worker) it oversubscribed the cores and two workers were slower than one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

# threadpoolctl ships no type information.
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from cloud_receiver.config import ReceiverSettings
from cloud_receiver.errors import PayloadRejectedError
from cloud_receiver.ingest.messages import parse_topic
from cloud_receiver.ingest.mqtt import MqttSubscriber
from cloud_receiver.ingest.pipeline import Pipeline, Result

log = logging.getLogger(__name__)


class Ingest:
    def __init__(self, settings: ReceiverSettings, pipeline: Pipeline) -> None:
        self._settings = settings
        self.pipeline = pipeline
        self._executor = ThreadPoolExecutor(
            settings.ingest.workers, thread_name_prefix="dctlink-ingest"
        )
        self._restore_blas: Callable[[], object] | None = None
        self.subscriber: MqttSubscriber | None = None
        if settings.broker.enabled:
            self.subscriber = MqttSubscriber(settings.broker, settings.subscriptions(), self.handle)

    def start(self) -> None:
        self._restore_blas = threadpool_limits(1, user_api="blas").restore_original_limits
        if self.subscriber is not None:
            self.subscriber.start()

    def close(self) -> None:
        """Stop taking messages, finish (and acknowledge) those in hand, then disconnect."""
        if self.subscriber is not None:
            self.subscriber.stop_receiving()
        self._executor.shutdown(wait=True, cancel_futures=False)
        if self.subscriber is not None:
            self.subscriber.close()
        if self._restore_blas is not None:
            self._restore_blas()
            self._restore_blas = None

    @property
    def broker_connected(self) -> bool | None:
        """None when MQTT ingest is switched off."""
        return None if self.subscriber is None else self.subscriber.connected.is_set()

    def submit(self, payload: bytes) -> Future[Result]:
        """Run one payload (HTTP ingest: no topic) through the pipeline on a worker thread."""
        return self._executor.submit(self.pipeline.ingest, payload, topic=None, topic_device=None)

    # -- paho's thread ---------------------------------------------------------------------

    def handle(self, topic: str, payload: bytes, ack: Callable[[], None]) -> None:
        # Nothing may escape: an exception here would stop paho's loop, and with it ingest.
        try:
            self._route(topic, payload, ack)
        except PayloadRejectedError:
            ack()  # already logged, counted and quarantined; redelivery would not help
        except Exception:
            log.exception("message handling failed", extra={"fields": {"topic": topic}})
            ack()

    def _route(self, topic: str, payload: bytes, ack: Callable[[], None]) -> None:
        route = parse_topic(self._settings.topic_prefix, topic)
        if route is None:
            raise self.pipeline.reject(
                payload, "unexpected topic", "topic", offset=None, topic=topic, device_id=None
            )
        match route.kind:
            case "status":
                self.pipeline.update_status(payload, topic=topic, device_id=route.device_id)
                ack()
            case "chunk":
                whole = self.pipeline.add_chunk(payload, topic=topic, device_id=route.device_id)
                # Chunks are acknowledged as they come: holding them until the image completes
                # would fill the broker's in-flight window with a large image's chunks and stall.
                ack()
                if whole is not None:
                    self._executor.submit(self._work, whole, topic, route.device_id, None)
            case "image":
                self._executor.submit(self._work, payload, topic, route.device_id, ack)

    def _work(
        self, payload: bytes, topic: str, device_id: str, ack: Callable[[], None] | None
    ) -> None:
        try:
            self.pipeline.ingest(payload, topic=topic, topic_device=device_id)
        except PayloadRejectedError:
            pass  # logged, counted and quarantined by the pipeline
        except Exception:
            log.exception(
                "pipeline failed", extra={"fields": {"topic": topic, "device_id": device_id}}
            )
        finally:
            if ack is not None:
                ack()
