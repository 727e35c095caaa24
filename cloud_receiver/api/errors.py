"""Every error the API returns is ``{"code": ..., "message": ...}``; the mapping lives here."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from cloud_receiver.errors import ReceiverError

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}


#: Headers that tell a client what to do next: who to be, or when to come back. A device's
#: bucket refills within a second at the default rates, and a worker frees a slot sooner.
_HINTS = {401: {"WWW-Authenticate": "Bearer"}, 429: {"Retry-After": "1"}, 503: {"Retry-After": "1"}}


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"code": code, "message": message}, status, headers=_HINTS.get(status))


async def _domain(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, ReceiverError)
    return _error(error.status, error.code, error.message)


async def _validation(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    problems = "; ".join(
        f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()
    )
    return _error(422, "invalid_request", problems)


async def _http(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, HTTPException)
    return _error(error.status_code, _HTTP_CODES.get(error.status_code, "error"), error.detail)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ReceiverError, _domain)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(HTTPException, _http)
