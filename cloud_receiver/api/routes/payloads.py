"""POST /api/v1/payloads: ingest a payload over HTTP, through the same pipeline as MQTT."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response

from cloud_receiver.api.deps import AdminScope, ReceiverDep
from cloud_receiver.api.schemas import API, ErrorOut, IngestOut
from cloud_receiver.errors import InvalidRequestError, ReceiverError
from cloud_receiver.ingest import Outcome


class PayloadTooLargeError(ReceiverError):
    code = "too_large"
    status = 413


router = APIRouter(
    prefix=f"{API}/payloads",
    tags=["payloads"],
    dependencies=[AdminScope],
    responses={401: {"model": ErrorOut}, 403: {"model": ErrorOut}},
)


@router.post(
    "",
    status_code=201,
    responses={
        200: {"model": IngestOut, "description": "A duplicate: this image id is already stored"},
        413: {"model": ErrorOut},
        422: {"model": ErrorOut, "description": "Malformed payload (quarantined)"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/octet-stream": {"schema": {"type": "string"}}},
        }
    },
    summary="Ingest one payload (body: the raw payload bytes)",
)
async def post_payload(request: Request, response: Response, receiver: ReceiverDep) -> IngestOut:
    limit = receiver.settings.ingest.max_payload_bytes
    # Read with a bound: Content-Length can be absent or lie, and the body is the client's claim.
    body = bytearray()
    async for part in request.stream():
        body += part
        if len(body) > limit:
            raise PayloadTooLargeError(f"payload exceeds the limit of {limit} bytes")
    if not body:
        raise InvalidRequestError("the request body must be the payload bytes")
    result = await asyncio.wrap_future(receiver.ingest.submit(bytes(body)))
    if result.outcome is Outcome.DUPLICATE:
        response.status_code = 200
    return IngestOut(
        id=result.image_id,
        outcome=result.outcome.value,
        url=f"{API}/images/{result.image_id}",
    )
