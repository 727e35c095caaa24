"""JSON shapes of the REST API (v1); they are also what /docs shows."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from cloud_receiver.store import STAGES, DeviceRecord, ImageRecord

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
    quality: int | None
    layout: str
    payload_bytes: int
    jpeg_bytes: int | None = Field(
        description="Equivalent-JPEG estimate: size of a libjpeg (Pillow) JPEG of the best"
        " available stage at the payload's quality with 4:2:0 chroma"
    )
    stages: dict[str, StageAvailable | StageMissing]
    timings_ms: dict[str, float]
    model_version: str | None

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
            layout=record.layout,
            payload_bytes=record.payload_bytes,
            jpeg_bytes=record.jpeg_bytes,
            stages=stages,
            timings_ms={k: round(v * 1000, 3) for k, v in record.timings_s.items()},
            model_version=record.model_version,
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
