"""/livez, /readyz and /metrics: for orchestrators and Prometheus, so never behind API keys.

Readiness needs the broker connected (when MQTT ingest is on) and the store writable. A missing
network model is reported under ``model`` but does not make the service unready: without it the
receiver still stores and serves the received and classical stages.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from cloud_receiver.api.deps import ReceiverDep
from cloud_receiver.api.schemas import ReadyOut

router = APIRouter(tags=["health"])


@router.get("/livez", summary="The process is up")
def livez() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=ReadyOut,
    responses={503: {"model": ReadyOut, "description": "Not ready; `checks` says why"}},
    summary="Broker connected and store writable (model state reported, not required)",
)
def readyz(receiver: ReceiverDep) -> JSONResponse:
    checks: dict[str, dict[str, Any]] = {}
    connected = receiver.ingest.broker_connected
    if connected is None:
        checks["broker"] = {"ok": True, "detail": "MQTT ingest is switched off"}
    else:
        subscriber = receiver.ingest.subscriber
        detail = receiver.settings.broker.url if connected else None
        if not connected and subscriber is not None:
            detail = subscriber.last_error or "connecting"
        checks["broker"] = {"ok": connected, "detail": detail}
    # The probe can pass while real writes fail (a full disk with room for a probe, a damaged
    # page the probe never touches), so the last real write counts too.
    problem = receiver.ingest.store_problem or receiver.store.check_writable()
    checks["store"] = {"ok": problem is None, "detail": problem or "writable"}
    recovery = receiver.recovery
    checks["model"] = {
        "ok": True,
        "loaded": recovery.network_available,
        "detail": recovery.network_detail,
    }
    ready = all(check["ok"] for check in checks.values())
    body = ReadyOut(ready=ready, checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


@router.get("/metrics", response_class=Response, summary="Prometheus text format")
def metrics(receiver: ReceiverDep) -> Response:
    return Response(receiver.metrics.render(), media_type=CONTENT_TYPE_LATEST)
