"""GET /api/v1/events: server-sent events, ``event: image`` for every newly stored image."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from cloud_receiver.api.deps import ReadScope, ReceiverDep
from cloud_receiver.api.schemas import API, ErrorOut
from cloud_receiver.ingest import EventHub

#: A comment line this often keeps proxies from closing an idle stream.
KEEPALIVE_S = 15.0

router = APIRouter(
    prefix=f"{API}/events",
    tags=["events"],
    dependencies=[ReadScope],
    responses={401: {"model": ErrorOut}, 403: {"model": ErrorOut}},
)


async def _stream(hub: EventHub) -> AsyncIterator[str]:
    async with hub.subscribe() as queue:
        yield ": connected\n\n"  # lets a client know the subscription is in place
        while True:
            try:
                event = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
            except TimeoutError:
                yield ": keepalive\n\n"
                continue
            if event is None:  # the service is shutting down
                return
            yield f"event: {event.name}\ndata: {event.data}\n\n"


@router.get(
    "",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
    summary="Live stream: `event: image` with the image metadata JSON as data",
)
async def events(receiver: ReceiverDep) -> StreamingResponse:
    return StreamingResponse(
        _stream(receiver.hub),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
