"""The app factory: ``create_app(settings)`` builds the receiver; its lifespan runs ingest.

Everything with a life (store, orphan sweeper, quarantine, recovery, MQTT subscriber, worker
threads) is made in the lifespan, not at import or in the factory, so building an app has no
side effects and tests can build many from small settings.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from cloud_receiver.api import redact
from cloud_receiver.api.deps import Receiver
from cloud_receiver.api.errors import install_error_handlers
from cloud_receiver.api.routes import (
    devices,
    docs,
    events,
    gallery,
    health,
    images,
    latest,
    payloads,
)
from cloud_receiver.api.schemas import ImageOut
from cloud_receiver.config import ReceiverSettings
from cloud_receiver.homeassistant import HomeAssistantBridge
from cloud_receiver.ingest import Event, EventHub, Ingest, Pipeline, Quarantine
from cloud_receiver.ingest.quarantine import BucketShelf, FolderShelf, Shelf
from cloud_receiver.metrics import Metrics
from cloud_receiver.recovery import Recovery
from cloud_receiver.store import (
    ImageRecord,
    OrphanSweeper,
    Store,
    SweepsOrphans,
    open_objects,
    open_store,
)

log = logging.getLogger("cloud_receiver")


def build_quarantine(settings: ReceiverSettings) -> Quarantine:
    """The quarantine on the store's backend: the bucket with s3, else ``data_dir``."""
    shelf: Shelf
    if settings.store.backend == "s3":
        shelf = BucketShelf(open_objects(settings.store))
    else:
        shelf = FolderShelf(settings.store.data_dir / "quarantine")
    try:
        return Quarantine(
            shelf, settings.ingest.quarantine_max_files, settings.ingest.quarantine_max_bytes
        )
    except BaseException:
        shelf.close()
        raise


def start_sweeper(settings: ReceiverSettings, store: Store) -> OrphanSweeper | None:
    """The orphan sweep of ``store``, started (None when it is off or the store has none)."""
    interval = settings.store.sweep_interval_s
    if interval <= 0 or not isinstance(store, SweepsOrphans):
        return None
    sweeper = OrphanSweeper(store, grace_s=settings.store.orphan_grace_s, interval_s=interval)
    sweeper.start()
    return sweeper


def create_app(
    settings: ReceiverSettings, *, store: Store | None = None, recovery: Recovery | None = None
) -> FastAPI:
    """The receiver app; ``store`` and ``recovery`` replace the ones the settings would build."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        own_store = store is None
        the_store = store if store is not None else open_store(settings.store)
        the_recovery = (
            recovery if recovery is not None else Recovery.from_settings(settings.recovery)
        )
        metrics = Metrics()
        hub = EventHub(settings.api.sse_queue, on_drop=metrics.events_dropped.inc)

        bridges: list[HomeAssistantBridge] = []  # set once ingest's MQTT client exists

        def on_stored(record: ImageRecord) -> None:
            # Worker thread -> event loop: the hub's queues belong to the loop.
            event = Event("image", ImageOut.of(record).model_dump_json())
            loop.call_soon_threadsafe(hub.publish, event)
            for bridge in bridges:
                bridge.stored(record)

        quarantine = build_quarantine(settings)
        pipeline = Pipeline(
            settings,
            the_store,
            the_recovery,
            metrics=metrics,
            quarantine=quarantine,
            on_stored=on_stored,
        )
        metrics.devices_online.set(sum(d.online for d in the_store.list_devices()))
        ingest = Ingest(settings, pipeline)
        if settings.homeassistant.enabled and ingest.subscriber is not None:
            bridges.append(HomeAssistantBridge(settings, the_store, ingest.subscriber.publish))
        app.state.receiver = Receiver(
            settings,
            the_store,
            the_recovery,
            metrics,
            hub,
            ingest,
            homeassistant=bridges[0] if bridges else None,
        )
        for bridge in bridges:
            bridge.start()
        ingest.start()
        sweeper = start_sweeper(settings, the_store)
        log.info(
            "receiver started",
            extra={
                "fields": {
                    "data_dir": str(settings.store.data_dir),
                    "broker": settings.broker.url if settings.broker.enabled else None,
                    "model": the_recovery.network_detail,
                }
            },
        )
        try:
            yield
        finally:
            hub.close()
            # Off the loop: waiting for workers to finish must not stall open responses.
            await asyncio.to_thread(ingest.close)
            for bridge in bridges:
                await asyncio.to_thread(bridge.close)
            await asyncio.to_thread(quarantine.close)  # drains writes still queued to a bucket
            if sweeper is not None:
                await asyncio.to_thread(sweeper.close)
            if own_store:
                the_store.close()
            log.info("receiver stopped")

    app = FastAPI(
        title="DCTLink receiver",
        version="1",
        summary="Receives DCTLink payloads over MQTT or HTTP, recovers and serves the images.",
        lifespan=lifespan,
        # /docs is served from the package (routes/docs.py); ReDoc would need a CDN.
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    install_error_handlers(app)
    redact.install()
    for module in (images, payloads, devices, latest, events, health, gallery, docs):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=gallery.STATIC, check_dir=False), name="static")
    return app
