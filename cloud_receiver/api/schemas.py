"""JSON shapes of the REST API (v1); they are also what /docs shows."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from cloud_receiver.store import STAGES, DeviceRecord, ImageRecord, JpegBasis

API = "/api/v1"


class StageAvailable(BaseModel):
    available: Literal[True] = True
    url: str = Field(description="Its pixels: PNG, or ?format=jpeg|webp, or by Accept")


class StageMissing(BaseModel):
    available: Literal[False] = False
    reason: str = Field(description="Why this stage is missing (say, no network loaded)")


class ImageOut(BaseModel):
    id: str
    device_id: str
    captured_at: datetime
    received_at: datetime
    width: int
    height: int
    profile: str
    quality: int | None = Field(
        description="libjpeg quality of the payload's tables (for auto: the quality promised);"
        " null for tables that promise none (a JPEG input's own tables, adaptive)"
    )
    tables_quality: int | None = Field(
        default=None,
        description="When quality is null: the libjpeg quality whose tables are nearest the"
        " payload's own, what they amount to (null for images stored before it was recorded)",
    )
    layout: str
    payload_bytes: int
    jpeg_bytes: int | None = Field(
        description="Size of the JPEG this payload is compared with; jpeg_bytes_basis says"
        " which JPEG that is"
    )
    jpeg_bytes_basis: JpegBasis | None = Field(
        description="equal_quality: libjpeg's JPEG (4:2:0, optimised Huffman) of the original"
        " at the quality an auto payload promises, measured by the sender; the received picture"
        " is at least as good as it. same_quality_setting: the receiver's estimate, a libjpeg"
        " JPEG (4:2:0) of the best stage at the payload's table quality; settings are compared,"
        " not pictures (lowpass and paper look worse than that JPEG). assumed_quality_90: the"
        " same estimate at quality 90, for tables that promise no quality (adaptive, a JPEG"
        " input's own tables). null when no JPEG size is known"
    )
    stages: dict[str, StageAvailable | StageMissing]
    timings_ms: dict[str, float]
    model_version: str | None
    enhanced_note: str | None = Field(
        default=None,
        description="Why the enhanced stage is the classical image: the model's gate keeps the"
        " network off for this kind of payload, where it measured worse than classical"
        " (model_version still names the loaded model). null when the network ran",
    )

    @classmethod
    def of(cls, record: ImageRecord) -> ImageOut:
        stages: dict[str, StageAvailable | StageMissing] = {}
        for stage in STAGES:
            reason = record.stages.get(stage, "not recorded")
            stages[stage] = (
                StageAvailable(url=f"{API}/images/{record.id}/content?stage={stage}")
                if reason is None
                else StageMissing(reason=reason)
            )
        return cls(
            id=record.id,
            device_id=record.device_id,
            captured_at=record.captured_at,
            received_at=record.received_at,
            width=record.width,
            height=record.height,
            profile=record.profile,
            quality=record.quality,
            tables_quality=record.tables_quality,
            layout=record.layout,
            payload_bytes=record.payload_bytes,
            jpeg_bytes=record.jpeg_bytes,
            jpeg_bytes_basis=record.jpeg_bytes_basis,
            stages=stages,
            timings_ms={k: round(v * 1000, 3) for k, v in record.timings_s.items()},
            model_version=record.model_version,
            enhanced_note=record.enhanced_note,
        )


class ImagePage(BaseModel):
    items: list[ImageOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null at end")


class DeviceOut(BaseModel):
    device_id: str
    online: bool
    last_seen: datetime
    status: dict[str, Any]

    @classmethod
    def of(cls, device: DeviceRecord) -> DeviceOut:
        return cls(
            device_id=device.device_id,
            online=device.online,
            last_seen=device.last_seen,
            status=device.status,
        )


class DeviceList(BaseModel):
    items: list[DeviceOut]


class IngestOut(BaseModel):
    id: str
    outcome: Literal["stored", "duplicate"]
    url: str


class ErrorOut(BaseModel):
    code: str = Field(description="Stable, for programs")
    message: str = Field(description="For people")


class ReadyOut(BaseModel):
    ready: bool
    checks: dict[str, dict[str, Any]]
