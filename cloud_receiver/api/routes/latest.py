"""GET /api/v1/devices/{device_id}/latest: the newest image of a camera, as an image.

This is the URL a still-image client polls: Home Assistant's generic camera, Frigate or an
NVR. Such clients take a URL and nothing else, so a read key may come as ``?key=`` (the
receiver never logs it). ``ETag`` and ``Last-Modified`` let a poller ask "anything new?" for
the price of a 304: both are answered from the metadata, before any pixel is read.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Response

from cloud_receiver.api.deps import ReadScopeOrQueryKey, StoreDep
from cloud_receiver.api.schemas import API, ErrorOut
from cloud_receiver.errors import NotFoundError, StageUnavailableError
from cloud_receiver.imaging import MEDIA_TYPES, Format, convert
from cloud_receiver.store import ImageQuery, ImageRecord

router = APIRouter(
    prefix=f"{API}/devices",
    tags=["devices"],
    dependencies=[ReadScopeOrQueryKey],
    responses={401: {"model": ErrorOut}, 403: {"model": ErrorOut}},
)

#: Largest side a client may ask to scale to; the stored image is never scaled up anyway.
MAX_SIDE = 8192


def _etag(record: ImageRecord, stage: str, fmt: str, box: tuple[int | None, int | None]) -> str:
    # The image, what is asked of it, and what reprocessing changes (model, timings).
    identity = f"{record.id}|{stage}|{fmt}|{box}|{record.model_version}|{record.timings_s}"
    return '"' + hashlib.sha256(identity.encode()).hexdigest()[:32] + '"'


def _not_modified(
    etag: str, modified: datetime, if_none_match: str | None, if_modified_since: str | None
) -> bool:
    """RFC 9110 section 13.2.2: If-None-Match decides when sent; else If-Modified-Since."""
    if if_none_match is not None:
        tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
        return "*" in tags or etag in tags
    if if_modified_since is None:
        return False
    try:
        since = parsedate_to_datetime(if_modified_since)
    except (TypeError, ValueError):
        return False  # an unparseable date is ignored, as the RFC says
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    return modified.replace(microsecond=0) <= since


@router.get(
    "/{device_id}/latest",
    response_class=Response,
    responses={
        200: {"content": {media: {} for media in MEDIA_TYPES.values()}},
        304: {"description": "Not modified since the ETag or date the client sent"},
        404: {"model": ErrorOut, "description": "Unknown device, or none of its images stored"},
    },
    summary="The newest image of a device, as an image (for still-image clients)",
)
def latest_image(
    device_id: str,
    *,
    store: StoreDep,
    format: Format = "jpeg",
    stage: Annotated[
        Literal["received", "classical", "enhanced"] | None,
        Query(description="Default: the most recovered stage the image has"),
    ] = None,
    width: Annotated[int | None, Query(ge=1, le=MAX_SIDE, description="Scale down to")] = None,
    height: Annotated[int | None, Query(ge=1, le=MAX_SIDE, description="Scale down to")] = None,
    if_none_match: Annotated[str | None, Header()] = None,
    if_modified_since: Annotated[str | None, Header()] = None,
) -> Response:
    page = store.images(ImageQuery(1, None, device_id, None, None))
    if not page.items:
        raise NotFoundError(f"no image of device {device_id!r} is stored")
    record = page.items[0]
    chosen = stage or record.best_stage()
    reason = record.stages.get(chosen, "not recorded")
    if reason is not None:
        raise StageUnavailableError(f"stage {chosen} of image {record.id} is unavailable: {reason}")
    box = (width, height)
    etag = _etag(record, chosen, format, box)
    modified = record.received_at
    headers = {
        "ETag": etag,
        "Last-Modified": format_datetime(modified.astimezone(UTC), usegmt=True),
        # Revalidate every time: the next poll must see a newer image at once.
        "Cache-Control": "no-cache",
        "X-DCTLink-Image-Id": record.id,
    }
    if _not_modified(etag, modified, if_none_match, if_modified_since):
        return Response(status_code=304, headers=headers)
    png = store.stage_png(record.id, chosen)
    if png is None:
        raise NotFoundError(f"stage {chosen} of image {record.id} is missing from the store")
    return Response(convert(png, format, box), media_type=MEDIA_TYPES[format], headers=headers)
