"""Broker auth, ACL and TLS: a device publishes only as itself, and errors say what to fix."""

from __future__ import annotations

import sqlite3
import time
import uuid
from pathlib import Path

import pytest
from collector import Collector
from conftest import MosquittoFactory

from edge_sender.cli import main

pytestmark = pytest.mark.integration
SAMPLE = str(Path(__file__).resolve().parents[2] / "samples" / "kodim23-half.png")
ACL = "pattern write dctlink/%u/#\n\nuser reader\ntopic read dctlink/#"


def _send(url: str, device: str, spool: Path, *extra: str) -> int:
    return main(
        [
            "send",
            SAMPLE,
            "--broker",
            url,
            "--device-id",
            device,
            "--spool-path",
            str(spool),
            "--timeout",
            "20",
            "--log-format",
            "json",
            *extra,
        ]
    )


def test_acl_keeps_a_device_to_its_own_id_and_bad_passwords_fail_clearly(
    mosquitto_factory: MosquittoFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broker = mosquitto_factory(users={"cam-a": "pw-a", "reader": "pw-r"}, acl=ACL)
    reader = Collector(broker.port, "dctlink/#", username="reader", password="pw-r")
    try:
        login = ("--broker-username", "cam-a", "--broker-password", "pw-a")
        assert _send(broker.url, "cam-a", tmp_path / "a.db", *login) == 0
        assert reader.wait_for(lambda c: len(c.payloads) == 1)

        assert _send(broker.url, "cam-b", tmp_path / "b.db", *login) == 3
        assert "broker rejected the image publish" in capsys.readouterr().err
        # The same refusal reaches a streaming source's exit code, though it arrives only
        # after the source has ended, while the sender waits for delivery.
        demo = ["demo", "--count", "1", "--interval", "0", "--device-id", "cam-b", *login]
        flags = ["--broker", broker.url, "--spool-path", str(tmp_path / "d.db")]
        assert main([*demo, *flags, "--log-format", "json"]) == 3
        assert not reader.wait_for(lambda c: len(c.payloads) > 1, timeout_s=0.5)

        wrong = ("--broker-username", "cam-a", "--broker-password", "wrong")
        assert _send(broker.url, "cam-a", tmp_path / "c.db", *wrong) == 3
        assert "check the username and password" in capsys.readouterr().err
    finally:
        reader.close()


def _spooled(spool: Path) -> int:
    with sqlite3.connect(spool) as db:
        count = int(db.execute("SELECT COUNT(*) FROM images").fetchone()[0])
    db.close()
    return count


def test_an_acl_denial_under_mqtt_5_is_permanent_stops_at_once_and_keeps_the_image(
    mosquitto_factory: MosquittoFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broker = mosquitto_factory(users={"cam-a": "pw-a"}, acl=ACL)
    login = ("--broker-username", "cam-a", "--broker-password", "pw-a")
    started = time.monotonic()
    # mosquitto answers PUBACK 0x87: no retry can change that, so no backoff either.
    assert _send(broker.url, "cam-b", tmp_path / "s.db", *login) == 3
    assert time.monotonic() - started < 10
    assert "Not authorized), which retrying cannot change" in capsys.readouterr().err
    assert _spooled(tmp_path / "s.db") == 1


def test_mqtt_311_cannot_see_an_acl_denial_and_says_so_at_start(
    mosquitto_factory: MosquittoFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broker = mosquitto_factory(users={"cam-a": "pw-a", "reader": "pw-r"}, acl=ACL)
    reader = Collector(broker.port, "dctlink/#", username="reader", password="pw-r")
    try:
        login = ("--broker-username", "cam-a", "--broker-password", "pw-a")
        flags = ("--broker-protocol", "3.1.1")
        # The gap the README states: a denied 3.1.1 publish is acknowledged like a delivery.
        assert _send(broker.url, "cam-b", tmp_path / "s.db", *login, *flags) == 0
        assert _spooled(tmp_path / "s.db") == 0
        assert not reader.wait_for(lambda c: bool(c.payloads), timeout_s=0.5)
        err = capsys.readouterr().err
        assert "MQTT 3.1.1: the broker acknowledges a publish its ACL denies" in err
    finally:
        reader.close()


def test_tls_with_the_fixture_ca(
    mosquitto_factory: MosquittoFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broker = mosquitto_factory(tls=True)
    device = f"cam-{uuid.uuid4().hex[:8]}"
    assert broker.ca_file is not None
    reader = Collector(broker.port, f"dctlink/{device}/image")
    try:
        assert (
            _send(
                broker.tls_url, device, tmp_path / "a.db", "--broker-ca-file", str(broker.ca_file)
            )
            == 0
        )
        assert reader.wait_for(lambda c: len(c.payloads) == 1)
        # Without the CA the system trust store refuses the fixture's certificate.
        assert _send(broker.tls_url, device, tmp_path / "b.db") == 3
        assert "certificate is not trusted" in capsys.readouterr().err
    finally:
        reader.close()
