"""``edge-sender``: send files, watch a folder, poll a snapshot URL, read a camera, or demo.

Exit codes (stable, for scripts):

    0  every image accepted and acknowledged by the broker
    1  unexpected error (a bug, or the spool file cannot be opened)
    2  bad command line or settings
    3  the broker refused us in a way retrying cannot change: credentials, TLS trust, or the
       ACL rejected a publish (a temporary refusal, such as quota exceeded, is retried)
    4  not delivered yet: timed out or interrupted with images left in the spool (they are
       sent by the next run; nothing is lost). A signal that stops watch, http, camera or
       demo is their normal end and exits 0; what is spooled waits for the next run
    5  some inputs could not be read or were too big for the spool (the others were sent),
       or the source is unavailable
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from enum import IntEnum
from pathlib import Path
from types import FrameType

from tqdm import tqdm

from edge_sender.config import EdgeSettings
from edge_sender.sender import Sender
from edge_sender.sent_files import SentFiles
from edge_sender.sources import (
    Frame,
    SourceError,
    camera_source,
    frame_from_path,
    http_source,
    synthetic_source,
    watch_source,
)
from edge_sender.spool import Spool, SpoolError
from service_common.logs import setup_logging
from service_common.settings_cli import CommandParser, SettingsCli

log = logging.getLogger("edge_sender")


class ExitCode(IntEnum):
    OK = 0
    ERROR = 1
    USAGE = 2
    BROKER = 3
    UNDELIVERED = 4
    SOURCE = 5


OPTIONS = SettingsCli(EdgeSettings, aliases={("broker", "url"): "--broker"})


def build_parser() -> argparse.ArgumentParser:
    cli = CommandParser(
        "edge-sender",
        "Encode camera images with a DCTLink profile, spool them durably and publish them over"
        " MQTT.",
        __doc__,
        OPTIONS,
    )
    send = cli.command(
        "send",
        "send image files (any format Pillow reads), then wait for delivery;"
        " with no files, deliver what the spool still holds",
    )
    send.add_argument("paths", nargs="*", type=Path, help="image files")
    send.add_argument(
        "--timeout",
        type=float,
        default=0.0,
        help="seconds to wait for delivery; 0 waits until delivered (default 0)",
    )
    send.add_argument("--no-progress", action="store_true", help="no progress bar")

    watch = cli.command("watch", "send each file that appears in a folder, once fully written")
    watch.add_argument("folder", type=Path, help="folder to watch")
    watch.add_argument(
        "--after",
        choices=["keep", "move", "delete"],
        default="keep",
        help="what to do with a file once it is spooled (default keep)",
    )
    watch.add_argument("--move-to", type=Path, help="destination folder for --after move")
    watch.add_argument(
        "--poll-interval", type=float, default=1.0, help="seconds between folder scans (default 1)"
    )
    watch.add_argument(
        "--stable-polls",
        type=int,
        default=2,
        help="scans a file's size and mtime must hold still (default 2)",
    )

    http = cli.command("http", "poll a snapshot URL (IP cameras) and send each image")
    http.add_argument("url", help="snapshot URL, e.g. http://camera/snapshot.jpg")
    http.add_argument("--interval", type=float, default=5.0, help="seconds between polls")
    http.add_argument("--http-timeout", type=float, default=10.0, help="seconds per request")
    http.add_argument("--count", type=int, default=0, help="stop after N images (0: never)")

    camera = cli.command("camera", "capture stills with picamera2 and send them")
    camera.add_argument("--interval", type=float, default=5.0, help="seconds between stills")
    camera.add_argument("--count", type=int, default=0, help="stop after N images (0: never)")
    camera.add_argument("--size", default="1920x1080", help="capture size WxH")

    demo = cli.command("demo", "send the bundled sample images in a loop (demos, load tests)")
    demo.add_argument("--count", type=int, default=8, help="images to send (0: until stopped)")
    demo.add_argument("--interval", type=float, default=1.0, help="seconds between images")
    return cli.parser


def _frames(
    args: argparse.Namespace, stop: threading.Event, sent: SentFiles | None
) -> Iterator[Frame]:
    match args.command:
        case "watch":
            return watch_source(
                args.folder,
                after=args.after,
                move_to=args.move_to,
                poll_interval_s=args.poll_interval,
                stable_polls=args.stable_polls,
                stop=stop,
                sent=sent,
            )
        case "http":
            return http_source(
                args.url,
                interval_s=args.interval,
                timeout_s=args.http_timeout,
                count=args.count,
                stop=stop,
            )
        case "camera":
            width, _, height = args.size.partition("x")
            return camera_source(args.count, args.interval, (int(width), int(height)), stop)
        case _:
            return synthetic_source(args.count, args.interval, stop=stop)


def _accept(sender: Sender, frame: Frame) -> bool:
    """Spool one frame; False (logged and counted, not fatal) when the spool refuses it."""
    try:
        sender.accept(frame)
    except SpoolError as error:
        # One image bigger than the whole spool must not stop a camera that sends many.
        log.error(
            "image refused: bigger than the whole spool; skipped. Raise --spool-max-bytes,"
            " or lower --encode-quality or use --encode-profile adaptive",
            extra={
                "fields": {
                    "source": frame.source,
                    "error": error.reason,
                    "refused_total": sender.status()["refused_total"],
                }
            },
        )
        return False
    return True


def _wait_delivered(
    sender: Sender, timeout_s: float | None, stop: threading.Event, *, total: int | None
) -> bool:
    """:meth:`Sender.wait_drained`, with a "delivered" bar of ``total`` images (None: no bar).

    Spooling is quick; the wait for the broker's acknowledgements is where a user sits.
    ``total`` counts what this run spooled and what the spool held before it, so delivered
    is that less what the spool still holds.
    """
    if total is None:
        return sender.wait_drained(timeout_s, stop)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    with tqdm(total=total, desc="delivered", unit="img") as bar:
        while True:
            step = 0.2 if deadline is None else max(0.0, min(0.2, deadline - time.monotonic()))
            drained = sender.wait_drained(step, stop)
            bar.update(max(0, total - sender.spool.depth()[0] - bar.n))
            if drained or sender.stopped or stop.is_set():
                return drained
            if deadline is not None and time.monotonic() >= deadline:
                return False


def _send_files(sender: Sender, args: argparse.Namespace, stop: threading.Event) -> ExitCode:
    unreadable = 0
    paths: Sequence[Path] = args.paths
    show = not args.no_progress and sys.stderr.isatty()
    pending = sender.spool.depth()[0]
    for path in tqdm(paths, desc="spooled", unit="img", disable=not show):
        if stop.is_set() or sender.stopped:
            break
        try:
            frame = frame_from_path(path)
        except SourceError as error:
            unreadable += 1
            log.error("skipped unreadable input", extra={"fields": {"error": str(error)}})
            continue
        if _accept(sender, frame):
            pending += 1
        else:
            unreadable += 1
    delivered = _wait_delivered(sender, args.timeout or None, stop, total=pending if show else None)
    if sender.fatal is not None:
        return ExitCode.BROKER
    if sender.failure is not None:
        return ExitCode.ERROR
    if not delivered:
        return ExitCode.UNDELIVERED
    return ExitCode.SOURCE if unreadable else ExitCode.OK


def _stream(
    sender: Sender, args: argparse.Namespace, stop: threading.Event, sent: SentFiles | None
) -> ExitCode:
    for frame in _frames(args, stop, sent):
        if sender.stopped:
            break
        _accept(sender, frame)
    # A finite source (demo/http/camera --count) waits for delivery; a stop request does not.
    drained = stop.is_set() or sender.stopped or sender.wait_drained(None, stop)
    # Checked after the wait: a refusal (say the ACL) often arrives only while waiting.
    if sender.fatal is not None:
        return ExitCode.BROKER
    if sender.failure is not None:
        return ExitCode.ERROR
    if stop.is_set():
        return ExitCode.OK  # asked to stop: what is spooled waits for the next run
    return ExitCode.OK if drained else ExitCode.UNDELIVERED


def _install_signal_handlers(stop: threading.Event) -> None:
    if threading.current_thread() is not threading.main_thread():
        return  # tests call main() from worker threads; signals only reach the main thread

    def handle(signum: int, frame: FrameType | None) -> None:
        log.info("stopping", extra={"fields": {"signal": signal.Signals(signum).name}})
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


def run_command(
    settings: EdgeSettings, args: argparse.Namespace, stop: threading.Event
) -> ExitCode:
    try:
        spool = Spool(settings.spool.path, settings.spool.max_bytes)
    except (sqlite3.Error, OSError) as error:
        log.error(
            "cannot open the spool",
            extra={"fields": {"path": str(settings.spool.path), "error": str(error)}},
        )
        return ExitCode.ERROR
    with spool, contextlib.ExitStack() as stack:
        # watch remembers what it spooled, in the spool's own file, so a restart skips it.
        sent = stack.enter_context(SentFiles(spool.path)) if args.command == "watch" else None
        sender = Sender(settings, spool)
        sender.start()
        try:
            if args.command == "send":
                return _send_files(sender, args, stop)
            return _stream(sender, args, stop, sent)
        except SourceError as error:
            log.error(str(error), extra={"fields": {"source": error.source}})
            return ExitCode.SOURCE
        finally:
            sender.close()


def main(argv: Sequence[str] | None = None, stop: threading.Event | None = None) -> int:
    """Run the CLI; ``stop`` lets a caller (tests, an embedding program) end it cleanly."""
    args = build_parser().parse_args(argv)
    settings = OPTIONS.load(args, "edge-sender")
    if settings is None:
        return ExitCode.USAGE
    setup_logging(settings.log_level, settings.log_format)
    stop = stop or threading.Event()
    _install_signal_handlers(stop)
    return run_command(settings, args, stop)


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
