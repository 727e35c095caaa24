"""/api/v1/devices: every device that has published a status, with its online state."""

from __future__ import annotations

from fastapi import APIRouter

from cloud_receiver.api.deps import ReadScope, StoreDep
from cloud_receiver.api.schemas import API, DeviceList, DeviceOut, ErrorOut

router = APIRouter(
    prefix=f"{API}/devices",
    tags=["devices"],
    dependencies=[ReadScope],
    responses={401: {"model": ErrorOut}, 403: {"model": ErrorOut}},
)


@router.get("", summary="Devices with online state, last seen time and last status")
def list_devices(store: StoreDep) -> DeviceList:
    return DeviceList(items=[DeviceOut.of(d) for d in store.list_devices()])
