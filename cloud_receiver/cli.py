"""``cloud-receiver``: serve the receiver, decode one payload offline, or reprocess the store.

Exit codes (stable, for scripts):

    0  done
    1  unexpected error
    2  bad command line or settings, or the file given to ``decode`` cannot be read
    3  the payload given to ``decode`` is malformed (the reason is printed)
    4  ``reprocess`` could not re-run some images (the others were updated)
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from enum import IntEnum
from pathlib import Path

from cloud_receiver.config import ReceiverSettings
from cloud_receiver.imaging import png_bytes
from service_common.logs import setup_logging
from service_common.settings_cli import CommandParser, SettingsCli

log = logging.getLogger("cloud_receiver")


class ExitCode(IntEnum):
    OK = 0
    ERROR = 1
    USAGE = 2
    MALFORMED = 3
    INCOMPLETE = 4


OPTIONS = SettingsCli(
    ReceiverSettings,
    aliases={
        ("broker", "url"): "--broker",
        ("store", "data_dir"): "--data-dir",
        ("api", "host"): "--host",
        ("api", "port"): "--port",
    },
)


def build_parser() -> argparse.ArgumentParser:
    cli = CommandParser(
        "cloud-receiver",
        "Receive DCTLink payloads over MQTT and HTTP, recover and serve the images.",
        __doc__,
        OPTIONS,
    )
    cli.command("serve", "run the HTTP API and the MQTT subscriber (uvicorn)")
    decode = cli.command("decode", "decode one payload file and write every stage as PNG")
    decode.add_argument("payload", type=Path, help="payload file (as published)")
    decode.add_argument("--out", type=Path, required=True, help="folder for <stage>.png")
    reprocess = cli.command(
        "reprocess", "re-run recovery over stored images (e.g. after a new model)"
    )
    reprocess.add_argument("--device", help="only this device's images")
    return cli.parser


def _serve(settings: ReceiverSettings) -> ExitCode:
    import uvicorn  # noqa: PLC0415 - only serve needs the server

    from cloud_receiver.api import create_app  # noqa: PLC0415 - keeps decode light

    uvicorn.run(
        create_app(settings),
        host=settings.api.host,
        port=settings.api.port,
        log_config=None,  # our logging setup, not uvicorn's
        access_log=settings.log_level == "DEBUG",
        # uvicorn waits for open responses before the lifespan shutdown that would end the
        # event streams, so without a bound one open browser tab holds SIGTERM forever.
        timeout_graceful_shutdown=settings.api.shutdown_timeout_s,
    )
    return ExitCode.OK


def _decode(settings: ReceiverSettings, payload: Path, out: Path) -> ExitCode:
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]  # noqa: PLC0415

    from cloud_receiver.recovery import Recovery  # noqa: PLC0415
    from shared.codec import PayloadError, decode  # noqa: PLC0415

    try:
        data = payload.read_bytes()
    except OSError as error:  # missing, a folder, unreadable: the user's argument, not a bug
        print(f"cloud-receiver: cannot read {payload}: {error.strerror}", file=sys.stderr)
        return ExitCode.USAGE
    try:
        decoded = decode(data, limits=settings.ingest.limits)
    except PayloadError as error:
        print(f"{payload}: malformed payload: {error}", file=sys.stderr)
        return ExitCode.MALFORMED
    with threadpool_limits(1, user_api="blas"):  # as the service runs recovery (see below)
        stages = Recovery.from_settings(settings.recovery).run(decoded)
    out.mkdir(parents=True, exist_ok=True)
    pixels = stages.pixels()
    for stage, array in pixels.items():
        (out / f"{stage}.png").write_bytes(png_bytes(array))
    summary = {
        "image_id": str(decoded.image_id),
        "device_id": decoded.device_id,
        "width": decoded.width,
        "height": decoded.height,
        "profile": decoded.profile.name.lower(),
        "stages": sorted(pixels),
        "enhanced_unavailable_reason": stages.enhanced_unavailable_reason,
        "enhanced_note": stages.enhanced_note,
        "timings_ms": {k: round(v * 1000, 1) for k, v in stages.timings_s.items()},
    }
    print(json.dumps(summary))
    return ExitCode.OK


def _reprocess(settings: ReceiverSettings, device: str | None) -> ExitCode:
    from threadpoolctl import threadpool_limits  # noqa: PLC0415

    from cloud_receiver.recovery import Recovery  # noqa: PLC0415
    from cloud_receiver.reprocess import reprocess  # noqa: PLC0415
    from cloud_receiver.store import open_store  # noqa: PLC0415

    store = open_store(settings.store)
    # One BLAS thread, as the ingest service holds it: OpenBLAS threads spinning after the
    # classical stage's small products take the cores from ONNX Runtime's, and recovery runs
    # 1.5-1.9x slower (bench.recovery).
    try:
        with threadpool_limits(1, user_api="blas"):
            report = reprocess(
                store,
                Recovery.from_settings(settings.recovery),
                settings.ingest.limits,
                device=device,
            )
    finally:
        store.close()
    print(json.dumps({"reprocessed": report.done, "failed": report.failed}))
    return ExitCode.INCOMPLETE if report.failed else ExitCode.OK


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = OPTIONS.load(args, "cloud-receiver")
    if settings is None:
        return ExitCode.USAGE
    setup_logging(settings.log_level, settings.log_format)
    try:
        match args.command:
            case "serve":
                return _serve(settings)
            case "decode":
                return _decode(settings, args.payload, args.out)
            case _:
                return _reprocess(settings, args.device)
    except Exception:
        log.exception("unexpected error")
        return ExitCode.ERROR


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
