"""The demo's pure parts: the summary line, the broker config, port choice, a missing broker."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import cast

import pytest
from PIL import Image

from demo import broker, codec
from demo.__main__ import build_parser
from demo.processes import Child, DemoError, pick_port
from demo.summary import Bytes, Totals, format_totals, parse_totals
from shared.codec import Profile, decode, encode

METRICS = """\
# HELP dctlink_images_received_total Images decoded, recovered and stored
# TYPE dctlink_images_received_total counter
dctlink_images_received_total 3.0
dctlink_images_created 1.7e9
dctlink_payload_bytes_received_total{basis="equal_quality"} 30000.0
dctlink_payload_bytes_received_total{basis="same_quality_setting"} 21903.0
dctlink_equivalent_jpeg_bytes_total{basis="equal_quality"} 50000.0
dctlink_equivalent_jpeg_bytes_total{basis="same_quality_setting"} 23600.0
"""


def test_totals_are_read_from_prometheus_text_per_basis() -> None:
    assert parse_totals(METRICS) == Totals(
        images=3,
        by_basis={
            "equal_quality": Bytes(payload=30000, jpeg=50000),
            "same_quality_setting": Bytes(payload=21903, jpeg=23600),
        },
    )
    # A receiver from before the basis label: its bytes are kept, as of unknown basis.
    old = "dctlink_payload_bytes_received_total 5.0\ndctlink_equivalent_jpeg_bytes_total 9.0\n"
    assert parse_totals(old).by_basis == {"unknown": Bytes(5, 9)}


def test_summary_line_claims_a_saving_only_against_the_jpeg_of_equal_quality() -> None:
    line = format_totals(5.2, parse_totals(METRICS))
    assert line == (
        "[    5 s] 3 images received: 51.9 kB of payloads,"
        " 1.7x smaller than the JPEG of equal quality (30.0 kB vs 50.0 kB),"
        " 21.9 kB vs 23.6 kB as JPEG at the same quality setting (quality not matched)"
    )
    only_auto = Totals(2, {"equal_quality": Bytes(10_000, 21_000)})
    assert format_totals(1, only_auto) == (
        "[    1 s] 2 images received: 10.0 kB of payloads,"
        " 2.1x smaller than the JPEG of equal quality (10.0 kB vs 21.0 kB)"
    )
    assert format_totals(0, Totals(0)) == "[    0 s] 0 images received"


def test_codec_round_trip_compares_auto_with_the_jpeg_of_equal_quality(
    capsys: pytest.CaptureFixture[str],
) -> None:
    sample = sorted((Path(__file__).resolve().parents[2] / "samples").glob("*.png"))[0]
    args = build_parser().parse_args(["codec", str(sample)])
    assert (args.profile, args.quality) == ("auto", 75)
    assert codec.run(args) == 0
    heading, _columns, row = capsys.readouterr().out.splitlines()
    assert heading == "JPEG q75 (equal quality)"
    name, payload, jpeg, ratio, _ = row.split()
    with Image.open(sample) as image:
        encoded = encode(image.convert("RGB"), Profile.auto(75), device_id="demo")
    # The JPEG column is the sender's measurement that travels in the payload.
    assert (name, int(payload), int(jpeg)) == (
        sample.name,
        len(encoded),
        decode(encoded).reference_jpeg_bytes,
    )
    assert float(ratio) == round(int(payload) / int(jpeg), 2)


def test_mosquitto_config_listens_on_loopback_with_persistence(tmp_path: Path) -> None:
    lines = broker.broker_config(1884, tmp_path).splitlines()
    assert "listener 1884 127.0.0.1" in lines
    assert "persistence true" in lines
    assert f"persistence_location {tmp_path}/" in lines


def test_a_missing_mosquitto_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(broker, "find_mosquitto", lambda: None)
    with pytest.raises(DemoError, match="apt-get install mosquitto"):
        broker.start_mosquitto(1884, tmp_path, tmp_path / "broker.log")


def test_without_mosquitto_or_amqtt_auto_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(broker, "find_mosquitto", lambda: None)
    monkeypatch.setattr(broker, "embedded_available", lambda: False)
    with pytest.raises(DemoError, match=r"amqtt.*\[demo\].*apt-get install mosquitto"):
        broker.start_broker("auto", 1884, tmp_path, tmp_path / "broker.log")


def test_amqtt_config_listens_on_loopback_and_names_its_clients() -> None:
    config = json.loads(broker.amqtt_config(1884))  # JSON is YAML
    assert config["listeners"]["default"] == {"type": "tcp", "bind": "127.0.0.1:1884"}
    auth = config["plugins"]["amqtt.plugins.authentication.AnonymousAuthPlugin"]
    assert auth == {"allow_anonymous": False}  # named clients get offline queues


def test_only_the_embedded_broker_changes_the_services_protocol_and_user() -> None:
    child = cast(Child, None)  # client_env does not look at the process
    assert broker.Broker(child, "mosquitto").client_env("DCTLINK_EDGE__", username="cam") == {}
    assert broker.Broker(child, "embedded").client_env("DCTLINK_EDGE__", username="cam") == {
        "DCTLINK_EDGE__BROKER__PROTOCOL": "3.1.1",
        "DCTLINK_EDGE__BROKER__USERNAME": "cam",
    }


def test_a_taken_port_moves_to_the_next_free_one() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        port = int(taken.getsockname()[1])
        chosen = pick_port(port)
    assert chosen != port
    assert chosen > port
    assert pick_port(0) > 0


@pytest.mark.parametrize(
    ("choice", "mosquitto_found", "expected"),
    [
        ("auto", True, "mosquitto"),
        ("auto", False, "embedded"),
        ("embedded", True, "embedded"),
        ("mosquitto", True, "mosquitto"),
    ],
)
def test_auto_prefers_mosquitto_and_falls_back_to_the_embedded_broker(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    choice: broker.BrokerChoice,
    mosquitto_found: bool,
    expected: str,
) -> None:
    found = Path("/usr/sbin/mosquitto") if mosquitto_found else None
    monkeypatch.setattr(broker, "find_mosquitto", lambda: found)
    monkeypatch.setattr(broker, "embedded_available", lambda: True)
    child = cast(Child, None)
    monkeypatch.setattr(broker, "start_mosquitto", lambda *args: child)
    monkeypatch.setattr(broker, "start_embedded", lambda *args: child)
    started = broker.start_broker(choice, 1884, tmp_path, tmp_path / "broker.log")
    assert started.kind == expected
