"""/api/v1/images: list, metadata, each stage's pixels as PNG, JPEG or WebP, and the payload.

The payload as the device sent it is for admin keys only: it is the evidence behind the
stored pixels (``cloud-receiver decode`` re-runs recovery on it offline) and carries more than
a viewer needs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Response

from cloud_receiver.api.deps import AdminScope, ReadScope, ReceiverDep, StoreDep
from cloud_receiver.api.schemas import API, ErrorOut, ImageOut, ImagePage
from cloud_receiver.errors import (
    InvalidRequestError,
    NotAcceptableError,
    NotFoundError,
    StageUnavailableError,
)
from cloud_receiver.imaging import MEDIA_TYPES, Format, convert, negotiate
from cloud_receiver.store import ImageQuery

router = APIRouter(
    prefix=f"{API}/images",
    tags=["images"],
    dependencies=[ReadScope],
    responses={401: {"model": ErrorOut}, 403: {"model": ErrorOut}},
)


@router.get("", summary="Stored images, newest capture first")
def list_images(
    *,
    store: StoreDep,
    receiver: ReceiverDep,
    limit: Annotated[int, Query(ge=1, description="Items per page")] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    device: Annotated[str | None, Query(description="Only this device's images")] = None,
    since: Annotated[datetime | None, Query(description="Captured at or after (ISO 8601)")] = None,
    until: Annotated[datetime | None, Query(description="Captured before (ISO 8601)")] = None,
) -> ImagePage:
    if limit > receiver.settings.api.page_limit:
        raise InvalidRequestError(f"limit must be at most {receiver.settings.api.page_limit}")
    page = store.images(ImageQuery(limit, cursor, device, since, until))
    return ImagePage(items=[ImageOut.of(r) for r in page.items], next_cursor=page.next_cursor)


@router.get("/{image_id}", responses={404: {"model": ErrorOut}}, summary="One image's metadata")
def get_image(image_id: str, store: StoreDep) -> ImageOut:
    record = store.get(image_id)
    if record is None:
        raise NotFoundError(f"no image {image_id}")
    return ImageOut.of(record)


@router.get(
    "/{image_id}/content",
    response_class=Response,
    responses={
        200: {"content": {media: {} for media in MEDIA_TYPES.values()}},
        404: {"model": ErrorOut},
        406: {"model": ErrorOut},
    },
    summary="A stage's pixels; format from `format`, else from the Accept header, else PNG",
)
def get_content(
    image_id: str,
    store: StoreDep,
    stage: Literal["received", "classical", "enhanced"] = "classical",
    format: Format | None = None,
    accept: Annotated[str | None, Header()] = None,
) -> Response:
    record = store.get(image_id)
    if record is None:
        raise NotFoundError(f"no image {image_id}")
    reason = record.stages.get(stage, "not recorded")
    if reason is not None:
        raise StageUnavailableError(f"stage {stage} of image {image_id} is unavailable: {reason}")
    fmt = format
    if fmt is None:
        fmt = negotiate(accept) if accept else "png"
        if fmt is None:
            raise NotAcceptableError(
                f"Accept {accept!r} names none of {', '.join(MEDIA_TYPES.values())}"
            )
    png = store.stage_png(image_id, stage)
    if png is None:
        raise NotFoundError(f"stage {stage} of image {image_id} is missing from the store")
    headers = {"Vary": "Accept"} if format is None else {}
    return Response(convert(png, fmt), media_type=MEDIA_TYPES[fmt], headers=headers)


@router.get(
    "/{image_id}/payload",
    response_class=Response,
    dependencies=[AdminScope],
    responses={
        200: {"content": {"application/octet-stream": {}}},
        404: {"model": ErrorOut},
    },
    summary="The payload as the device sent it (admin keys); `cloud-receiver decode` reads it",
)
def get_payload(image_id: str, store: StoreDep) -> Response:
    # The row first: only a stored image's id (a UUID the codec checked) reaches the files,
    # and so the header below.
    if store.get(image_id) is None:
        raise NotFoundError(f"no image {image_id}")
    payload = store.payload(image_id)
    if payload is None:
        raise NotFoundError(f"the payload of image {image_id} is missing from the store")
    disposition = f'attachment; filename="{image_id}.dctl"'
    return Response(
        payload, media_type="application/octet-stream", headers={"Content-Disposition": disposition}
    )
