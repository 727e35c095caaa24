"""Dependency aliases the routes declare (``StoreDep``, ``ReadScope``, ...), all in one place."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr

from cloud_receiver.config import ReceiverSettings
from cloud_receiver.errors import ForbiddenError, UnauthorizedError
from cloud_receiver.homeassistant import HomeAssistantBridge
from cloud_receiver.ingest import EventHub, Ingest
from cloud_receiver.metrics import Metrics
from cloud_receiver.recovery import Recovery
from cloud_receiver.store import Store


@dataclass
class Receiver:
    """Everything the lifespan builds; routes reach it through the aliases below."""

    settings: ReceiverSettings
    store: Store
    recovery: Recovery
    metrics: Metrics
    hub: EventHub
    ingest: Ingest
    #: The Home Assistant bridge, when it is on (settings.homeassistant.enabled).
    homeassistant: HomeAssistantBridge | None = None


def get_receiver(request: Request) -> Receiver:
    receiver: Receiver = request.app.state.receiver
    return receiver


ReceiverDep = Annotated[Receiver, Depends(get_receiver)]


def get_store(receiver: ReceiverDep) -> Store:
    return receiver.store


StoreDep = Annotated[Store, Depends(get_store)]

_bearer = HTTPBearer(auto_error=False, description="API key (read or admin scope)")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def _as_sent(token: str) -> bytes:
    """The token's bytes as the client sent them: Starlette decodes header bytes as latin-1."""
    try:
        return token.encode("latin-1")
    except UnicodeEncodeError:  # not from an HTTP header; any stable encoding will do
        return token.encode("utf-8", "surrogatepass")


def _key_bytes(key: SecretStr) -> bytes:
    # A client sends a non-ASCII key as UTF-8; surrogatepass keeps this from ever raising.
    return key.get_secret_value().encode("utf-8", "surrogatepass")


def _scope_of(token: str, receiver: Receiver) -> Literal["read", "admin"] | None:
    api = receiver.settings.api
    # Bytes, not str: compare_digest raises TypeError on non-ASCII text, and any client can
    # send a non-ASCII header. Every key is compared in constant time, so timing does not
    # reveal a prefix.
    sent = _as_sent(token)
    admin = any(hmac.compare_digest(sent, _key_bytes(k)) for k in api.admin_keys)
    read = any(hmac.compare_digest(sent, _key_bytes(k)) for k in api.read_keys)
    return "admin" if admin else "read" if read else None


def _check(receiver: Receiver, credentials: HTTPAuthorizationCredentials | None, need: str) -> None:
    _check_token(receiver, None if credentials is None else credentials.credentials, need)


def _check_token(receiver: Receiver, token: str | None, need: str) -> None:
    if not receiver.settings.api.auth_enabled:
        return
    if token is None:
        raise UnauthorizedError("this API needs a key: send 'Authorization: Bearer <key>'")
    scope = _scope_of(token, receiver)
    if scope is None:
        raise UnauthorizedError("the API key is not known")
    if need == "admin" and scope != "admin":
        raise ForbiddenError("this needs an admin key; the key given can only read")


def require_read(receiver: ReceiverDep, credentials: Credentials) -> None:
    _check(receiver, credentials, "read")


def require_admin(receiver: ReceiverDep, credentials: Credentials) -> None:
    _check(receiver, credentials, "admin")


def require_read_header_or_query(
    receiver: ReceiverDep,
    credentials: Credentials,
    key: Annotated[
        str | None,
        Query(
            description="A read key, for still-image clients that cannot send headers (Home"
            " Assistant's generic camera, an NVR); the Authorization header wins when both are"
            " sent. The receiver never logs it",
        ),
    ] = None,
) -> None:
    _check_token(receiver, credentials.credentials if credentials is not None else key, "read")


ReadScope = Depends(require_read)
#: For the routes a still-image client polls: the key may also come as ``?key=``.
ReadScopeOrQueryKey = Depends(require_read_header_or_query)
AdminScope = Depends(require_admin)
