"""Storage: the :class:`Store` interface, its records, and the backend the settings choose."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cloud_receiver.config import StoreSettings
from cloud_receiver.store.base import (
    JPEG_BASES,
    STAGES,
    DeviceRecord,
    ImageQuery,
    ImageRecord,
    JpegBasis,
    Page,
    Store,
    StoreUnavailableError,
)
from cloud_receiver.store.local import LocalStore
from cloud_receiver.store.sweep import OrphanSweeper, SweepsOrphans

if TYPE_CHECKING:
    from cloud_receiver.store.s3 import S3Objects


def open_store(settings: StoreSettings) -> Store:
    """The backend named by ``settings.backend``; raises StoreUnavailableError when unreachable."""
    match settings.backend:
        case "local":
            return LocalStore(settings.data_dir)
        case "s3":
            # Imported here: boto3 and psycopg load slowly and only this backend needs them.
            from cloud_receiver.store.postgres import PostgresStore  # noqa: PLC0415

            assert settings.postgres_dsn is not None, "checked by StoreSettings"
            objects = open_objects(settings)
            try:
                return PostgresStore(
                    objects,
                    settings.postgres_dsn.get_secret_value(),
                    pool_size=settings.postgres_pool_size,
                    timeout_s=settings.timeout_s,
                )
            except BaseException:
                objects.close()
                raise


def open_objects(settings: StoreSettings) -> S3Objects:
    """A client of the s3 backend's bucket (for the store, and for the quarantine there)."""
    from cloud_receiver.store.s3 import S3Objects  # noqa: PLC0415  # boto3 loads slowly

    assert settings.s3_bucket is not None, "checked by StoreSettings"
    secret = settings.s3_secret_key
    return S3Objects(
        settings.s3_bucket,
        endpoint_url=settings.s3_endpoint_url,
        region=settings.s3_region,
        access_key=settings.s3_access_key,
        secret_key=None if secret is None else secret.get_secret_value(),
        prefix=settings.s3_prefix,
        timeout_s=settings.timeout_s,
    )


__all__ = [
    "JPEG_BASES",
    "STAGES",
    "DeviceRecord",
    "ImageQuery",
    "ImageRecord",
    "JpegBasis",
    "LocalStore",
    "OrphanSweeper",
    "Page",
    "Store",
    "StoreUnavailableError",
    "SweepsOrphans",
    "open_objects",
    "open_store",
]
