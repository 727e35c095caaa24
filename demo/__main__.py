"""The local DCTLink demo: broker, receiver and an edge sender on this machine.

Starts a private broker (mosquitto when installed, else the embedded pure-Python amqtt, over
MQTT 3.1.1; --broker chooses), ``cloud-receiver serve`` and, once its /readyz says ready,
``edge-sender demo`` publishing the sample images in a loop. Prints the gallery URL and a live
summary; Ctrl-C (or --duration) stops the sender, the receiver and the broker, in that order.
``python -m demo codec`` is the offline codec round trip instead.

DCTLINK_EDGE__... and DCTLINK_RECEIVER__... variables still apply (for example
DCTLINK_EDGE__ENCODE__PROFILE=paper), except the addresses, ports and paths the demo sets (and,
with the embedded broker, the protocol and user names).
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from demo import codec
from demo.broker import start_broker
from demo.processes import (
    Child,
    DemoError,
    child_env,
    get_text,
    pick_port,
    stop_all,
    wait_for_ready,
    wait_for_tcp,
)
from demo.summary import format_totals, parse_totals

HOST = "127.0.0.1"
DEVICE_ID = "demo-cam"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m demo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="stop after SECONDS of sending (default: run until Ctrl-C)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=8000,
        help="HTTP port of the receiver, or the next free one above it; 0: any (default 8000)",
    )
    parser.add_argument(
        "--broker-port",
        type=int,
        default=0,
        metavar="PORT",
        help="MQTT port of the broker (default: any free)",
    )
    parser.add_argument(
        "--broker",
        choices=["auto", "mosquitto", "embedded"],
        default="auto",
        help="auto: mosquitto when installed, else the embedded amqtt (MQTT 3.1.1; default auto)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="folder for the broker, the receiver's store, the spool and the logs; it is kept"
        " (default: a temporary folder, removed at the end unless --keep-data)",
    )
    parser.add_argument(
        "--keep-data", action="store_true", help="keep the temporary data folder at the end"
    )
    parser.add_argument(
        "--interval", type=float, default=1.0, help="seconds between images sent (default 1)"
    )
    parser.add_argument(
        "--summary-every",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="seconds between summary lines (default 5)",
    )
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", help="optional: codec runs the offline round trip"
    )
    codec.add_arguments(
        commands.add_parser(
            "codec",
            help="offline codec round trip on images: payload vs JPEG bytes, PSNR",
            description=codec.__doc__,
        )
    )
    return parser


def _install_signal_handlers(stop: threading.Event) -> None:
    def handle(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)


def _say(text: str) -> None:
    print(text, flush=True)


def _start_services(
    args: argparse.Namespace, data_dir: Path, stop: threading.Event, children: list[Child]
) -> str | None:
    """Broker, receiver (ready) and sender, appended to ``children``; the receiver's base URL.

    None when a signal arrived while starting (what started is stopped by the caller).
    """
    logs = data_dir / "logs"
    broker_port = pick_port(args.broker_port)
    broker = start_broker(args.broker, broker_port, data_dir / "broker", logs / "broker.log")
    children.append(broker.child)
    wait_for_tcp(broker.child, HOST, broker_port, 20.0, stop)
    if stop.is_set():
        return None
    broker_url = f"mqtt://{HOST}:{broker_port}"
    _say(f"broker    {broker.description} on {broker_url}")

    http_port = pick_port(args.port)
    base_url = f"http://{HOST}:{http_port}"
    receiver_env = {
        "DCTLINK_RECEIVER__BROKER__URL": broker_url,
        "DCTLINK_RECEIVER__BROKER__ENABLED": "true",
        "DCTLINK_RECEIVER__STORE__DATA_DIR": str(data_dir / "receiver"),
        "DCTLINK_RECEIVER__API__HOST": HOST,
        "DCTLINK_RECEIVER__API__PORT": str(http_port),
        "DCTLINK_RECEIVER__LOG_FORMAT": "text",
        **broker.client_env("DCTLINK_RECEIVER__", username="dctlink-receiver"),
    }
    receiver = Child(
        "receiver",
        [sys.executable, "-m", "cloud_receiver", "serve"],
        logs / "receiver.log",
        child_env(receiver_env),
    )
    children.append(receiver)
    _say(f"receiver  starting on {base_url} ...")
    wait_for_ready(receiver, base_url, 90.0, stop)
    if stop.is_set():
        return None
    _say(f"receiver  ready (GET {base_url}/readyz)")

    sender_env = {
        "DCTLINK_EDGE__BROKER__URL": broker_url,
        "DCTLINK_EDGE__DEVICE_ID": DEVICE_ID,
        "DCTLINK_EDGE__SPOOL__PATH": str(data_dir / "edge-spool.sqlite3"),
        "DCTLINK_EDGE__LOG_FORMAT": "text",
        **broker.client_env("DCTLINK_EDGE__", username=DEVICE_ID),
    }
    sender_argv = [sys.executable, "-m", "edge_sender", "demo", "--count", "0"]
    sender_argv += ["--interval", str(args.interval)]
    children.append(Child("sender", sender_argv, logs / "sender.log", child_env(sender_env)))
    _say(f"sender    {DEVICE_ID} publishes the sample images every {args.interval:g} s")
    return base_url


def _summary(base_url: str, elapsed_s: float) -> str:
    try:
        return format_totals(elapsed_s, parse_totals(get_text(f"{base_url}/metrics")))
    except (OSError, ValueError) as error:
        return f"[{elapsed_s:5.0f} s] summary unavailable: {error}"


def _run(
    args: argparse.Namespace, data_dir: Path, stop: threading.Event, children: list[Child]
) -> None:
    base_url = _start_services(args, data_dir, stop, children)
    if base_url is None:
        return
    _say("")
    _say(f"gallery   {base_url}/")
    _say(f"API       {base_url}/api/v1/images   (docs: {base_url}/docs)")
    _say(f"logs      {data_dir / 'logs'}")
    until = f"for {args.duration:g} s" if args.duration > 0 else "until Ctrl-C"
    _say(f"running {until}\n")
    started = time.monotonic()
    deadline = started + args.duration if args.duration > 0 else float("inf")
    next_summary = started + args.summary_every
    while not stop.is_set():
        now = time.monotonic()
        if now >= deadline:
            break
        for child in children:
            if not child.running:
                raise child.died()
        if now >= next_summary:
            _say(_summary(base_url, now - started))
            next_summary += args.summary_every
        stop.wait(min(0.5, max(0.0, min(deadline, next_summary) - now)))
    _say(_summary(base_url, time.monotonic() - started))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "codec":
        return codec.run(args)
    stop = threading.Event()
    _install_signal_handlers(stop)
    temporary = args.data_dir is None
    data_dir = Path(tempfile.mkdtemp(prefix="dctlink-demo-")) if temporary else args.data_dir
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    children: list[Child] = []
    code = 0
    try:
        _run(args, data_dir, stop, children)
    except DemoError as error:
        print(f"demo: {error}", file=sys.stderr, flush=True)
        code = 1
    finally:
        if children:
            _say("stopping: " + ", ".join(child.name for child in reversed(children)))
        for child in stop_all(children):
            _say(f"note: {child.name} exited with code {child.process.returncode}")
        if temporary and not args.keep_data:
            shutil.rmtree(data_dir, ignore_errors=True)
        else:
            _say(f"data kept in {data_dir}")
    if code == 0:
        _say("stopped")
    return code


if __name__ == "__main__":
    sys.exit(main())
