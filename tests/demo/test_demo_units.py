"""The demo's pure parts: the summary line, the broker config, port choice, a missing broker."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import cast

import pytest

from demo import broker
from demo.processes import Child, DemoError, pick_port
from demo.summary import Totals, format_totals, parse_totals

METRICS = """\
# HELP dctlink_images_received_total Images decoded, recovered and stored
# TYPE dctlink_images_received_total counter
dctlink_images_received_total 3.0
dctlink_images_created 1.7e9
dctlink_payload_bytes_received_total 51903.0
dctlink_equivalent_jpeg_bytes_total{device="a"} 50000.0
dctlink_equivalent_jpeg_bytes_total{device="b"} 23600.0
"""


def test_totals_are_read_from_prometheus_text_and_labelled_series_summed() -> None:
    assert parse_totals(METRICS) == Totals(images=3, payload_bytes=51903, jpeg_bytes=73600)


def test_summary_line_compares_payload_bytes_with_jpeg() -> None:
    line = format_totals(5.2, Totals(3, 51903, 73600))
    assert line == (
        "[    5 s] 3 images received: 51.9 kB of payloads"
        " vs 73.6 kB as JPEG (71% of the JPEG bytes)"
    )
    assert format_totals(0, Totals(0, 0, 0)) == "[    0 s] 0 images received"


def test_mosquitto_config_listens_on_loopback_with_persistence(tmp_path: Path) -> None:
    lines = broker.mosquitto_config(1884, tmp_path).splitlines()
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
