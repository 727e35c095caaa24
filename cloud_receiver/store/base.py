"""What the receiver stores, and the small interface every storage backend implements.

The default backend keeps files under a folder and metadata in SQLite (``store/local.py``); an
S3-compatible + PostgreSQL backend implements the same :class:`Store` and is chosen by the
``store.backend`` setting, so nothing above this interface changes (docs/architecture.md section 7).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol, get_args

from cloud_receiver.errors import InvalidRequestError, ReceiverError

STAGES = ("received", "classical", "enhanced")

#: What an image's ``jpeg_bytes`` is the size of (README, "Cloud receiver"):
#: ``equal_quality``: libjpeg's JPEG of the original at the quality an auto payload promises,
#: measured by the sender (the received picture is at least as good as it);
#: ``same_quality_setting``: the receiver's libjpeg JPEG of the best stage at the payload's
#: table quality (the picture's quality is not matched: lowpass and paper drop coefficients);
#: ``assumed_quality_90``: the same estimate at quality 90, for tables that promise no quality.
JpegBasis = Literal["equal_quality", "same_quality_setting", "assumed_quality_90"]
JPEG_BASES: tuple[JpegBasis, ...] = get_args(JpegBasis)


class StoreUnavailableError(ReceiverError):
    """A remote backend (bucket, database) failed or cannot be reached; retrying later may work."""

    code = "store_unavailable"
    status = 503


@dataclass(frozen=True, kw_only=True)
class ImageRecord:
    """One stored image's metadata.

    ``stages`` maps each stage of :data:`STAGES` to None when its PNG is stored, else to the
    reason it is not. ``jpeg_bytes`` is the size of the JPEG the payload is compared with and
    ``jpeg_bytes_basis`` says which JPEG that is (:data:`JpegBasis`; None for an image stored
    without a JPEG size). ``enhanced_note`` says why the enhanced stage is the classical
    image (the model's gate kept the network off); None when the network ran or there is none.
    ``tables_quality`` names custom tables by the nearest libjpeg quality.
    """

    id: str
    device_id: str
    captured_at: datetime
    received_at: datetime
    width: int
    height: int
    profile: str
    quality: int | None
    layout: str
    payload_bytes: int
    jpeg_bytes: int | None
    jpeg_bytes_basis: JpegBasis | None
    stages: dict[str, str | None]
    timings_s: dict[str, float]
    model_version: str | None
    enhanced_note: str | None = None
    #: For tables that promise no libjpeg quality (``quality`` None: a JPEG input's own tables,
    #: adaptive), the libjpeg quality whose tables are nearest; None when ``quality`` is set.
    tables_quality: int | None = None

    def best_stage(self) -> str:
        """The most recovered stage that is available."""
        return next(s for s in reversed(STAGES) if s in self.stages and self.stages[s] is None)


@dataclass(frozen=True)
class DeviceRecord:
    device_id: str
    online: bool
    last_seen: datetime
    status: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ImageQuery:
    """Newest captured first; ``since`` inclusive, ``until`` exclusive (capture time)."""

    limit: int = 50
    cursor: str | None = None
    device: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class Page:
    items: list[ImageRecord]
    next_cursor: str | None


class Store(Protocol):
    def put(
        self,
        record: ImageRecord,
        payload: bytes,
        stage_pngs: Mapping[str, bytes],
        *,
        replace: bool = False,
    ) -> bool:
        """Store an image; False (and nothing written) when its id exists and not ``replace``."""

    def exists(self, image_id: str) -> bool: ...

    def get(self, image_id: str) -> ImageRecord | None: ...

    def images(self, query: ImageQuery) -> Page: ...

    def stage_png(self, image_id: str, stage: str) -> bytes | None: ...

    def payload(self, image_id: str) -> bytes | None: ...

    def upsert_device(self, device: DeviceRecord) -> None: ...

    def list_devices(self) -> list[DeviceRecord]: ...

    def delete_device(self, device_id: str) -> bool:
        """Forget a device's status row (its images stay); False when there was none."""

    def check_writable(self) -> str | None:
        """None when writes work, else what is wrong (for /readyz)."""

    def close(self) -> None: ...


def encode_cursor(captured_us: int, image_id: str) -> str:
    """Opaque to clients: the position after the last item of a page (capture time, id)."""
    return base64.urlsafe_b64encode(f"{captured_us}:{image_id}".encode()).decode().rstrip("=")


#: Capture times a cursor may carry: a signed 64-bit column (SQLite INTEGER, PostgreSQL BIGINT)
#: holds them, and a larger number would fail in the database instead of as a bad request.
_CURSOR_MICROS = range(-(2**63), 2**63)


def decode_cursor(cursor: str) -> tuple[int, str]:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        micros_text, image_id = text.split(":", 1)
        micros = int(micros_text)
        if micros not in _CURSOR_MICROS or "\x00" in image_id:  # PostgreSQL text refuses NUL
            raise ValueError("out of range")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidRequestError(
            "cursor is not one this API returned; pass next_cursor unchanged"
        ) from None
    return micros, image_id
