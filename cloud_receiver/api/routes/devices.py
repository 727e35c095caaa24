"""/api/v1/devices: every device that has published a status, with its online state; an
admin may remove one (and, with the Home Assistant bridge on, its entities)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from cloud_receiver.api.deps import AdminScope, ReadScope, ReceiverDep, StoreDep
from cloud_receiver.api.schemas import API, DeviceList, DeviceOut, ErrorOut
from cloud_receiver.errors import NotFoundError

router = APIRouter(
    prefix=f"{API}/devices",
    tags=["devices"],
    dependencies=[ReadScope],
    responses={401: {"model": ErrorOut}, 403: {"model": ErrorOut}},
)


@router.get("", summary="Devices with online state, last seen time and last status")
def list_devices(store: StoreDep) -> DeviceList:
    return DeviceList(items=[DeviceOut.of(d) for d in store.list_devices()])


@router.delete(
    "/{device_id}",
    status_code=204,
    response_class=Response,
    dependencies=[AdminScope],
    responses={404: {"model": ErrorOut}},
    summary="Forget a device: its status row, and its Home Assistant entities (images stay)",
)
def delete_device(device_id: str, receiver: ReceiverDep) -> Response:
    known = receiver.store.delete_device(device_id)
    bridge = receiver.homeassistant
    if not known and bridge is None:
        raise NotFoundError(f"no device {device_id!r}")
    if bridge is not None:
        # Even for a device without a status row: its entities may outlive a lost store.
        bridge.forget(device_id)
    return Response(status_code=204)
