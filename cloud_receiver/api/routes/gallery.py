"""GET /: the gallery page (cloud_receiver/api/static/index.html); its assets under /static."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from cloud_receiver.errors import NotFoundError

STATIC = Path(__file__).resolve().parents[1] / "static"

router = APIRouter(tags=["gallery"])


@router.get("/", response_class=FileResponse, include_in_schema=False)
def gallery() -> FileResponse:
    index = STATIC / "index.html"
    if not index.is_file():
        raise NotFoundError("the gallery page is not installed")
    return FileResponse(index, media_type="text/html")
