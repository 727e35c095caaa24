"""Storage: the :class:`Store` interface, its records, and the backend the settings choose."""

from __future__ import annotations

from cloud_receiver.config import StoreSettings
from cloud_receiver.store.base import (
    STAGES,
    DeviceRecord,
    ImageQuery,
    ImageRecord,
    Page,
    Store,
)
from cloud_receiver.store.local import LocalStore


def open_store(settings: StoreSettings) -> Store:
    """The backend named by ``settings.backend`` (only ``local`` so far)."""
    match settings.backend:
        case "local":
            return LocalStore(settings.data_dir)


__all__ = [
    "STAGES",
    "DeviceRecord",
    "ImageQuery",
    "ImageRecord",
    "LocalStore",
    "Page",
    "Store",
    "open_store",
]
