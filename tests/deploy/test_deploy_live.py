"""The deploy/ configuration run for real, without Docker: mosquitto with our config, password
file and ACL; the receiver's HEALTHCHECK program against a live ``cloud-receiver serve``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import yaml
from deploy_broker import DEPLOY, ROOT, Broker, Client, deploy_broker
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from harness import free_port, tcp_open, wait_ready, wait_until

COMPOSE = ROOT / "docker-compose.yml"
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.integration


def receiver_healthcheck() -> list[str]:
    """The exec-form HEALTHCHECK command of deploy/cloud.Dockerfile."""
    text = (DEPLOY / "cloud.Dockerfile").read_text().replace("\\\n", " ")
    match = re.search(r"^HEALTHCHECK .*? CMD (\[.*\])$", text, re.MULTILINE)
    assert match is not None
    command: list[str] = json.loads(match.group(1))
    assert command[:2] == ["python", "-c"]
    return [sys.executable, *command[1:]]


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """deploy/mosquitto/mosquitto.conf with only its paths and port moved into a temp folder."""
    try:
        with deploy_broker(tmp_path_factory.mktemp("deploy-mosquitto")) as running:
            yield running
    except RuntimeError as error:
        pytest.fail(str(error))


def connect(broker: Broker, user: str, password: str) -> tuple[mqtt.Client, ReasonCode]:
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"{user}-{uuid.uuid4().hex[:8]}",
        protocol=mqtt.MQTTv5,
    )
    client.username_pw_set(user, password)
    connected = threading.Event()
    codes: list[ReasonCode] = []

    def on_connect(c: mqtt.Client, u: object, f: object, code: ReasonCode, p: object) -> None:
        codes.append(code)
        connected.set()

    client.on_connect = on_connect
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    assert connected.wait(10), "no CONNACK"
    return client, codes[0]


def test_devices_publish_only_under_their_own_id(broker: Broker) -> None:
    receiver, code = connect(broker, "receiver", broker.password("receiver"))
    assert not code.is_failure
    received: list[str] = []
    subscribed = threading.Event()
    receiver.on_message = lambda c, u, message: received.append(message.topic)
    receiver.on_subscribe = lambda *args: subscribed.set()
    receiver.subscribe("dctlink/#", qos=1)
    assert subscribed.wait(10)

    # The forged publish first, answered (refusal PUBACK or disconnect) before ours is sent:
    # had the broker routed it, the receiver would get it before ours.
    forger, code = connect(broker, "edge-demo", broker.password("edge-demo"))
    assert not code.is_failure
    answered = threading.Event()
    forger.on_publish = lambda *args: answered.set()
    forger.on_disconnect = lambda *args: answered.set()
    forger.publish("dctlink/cam-b/image", b"forged", qos=1)
    assert answered.wait(10)
    forger.disconnect()  # one connection per login: the next one would take over this one
    forger.loop_stop()
    device, code = connect(broker, "edge-demo", broker.password("edge-demo"))
    assert not code.is_failure
    device.publish("dctlink/edge-demo/image", b"mine", qos=1).wait_for_publish(10)
    deadline = time.monotonic() + 10
    while "dctlink/edge-demo/image" not in received and time.monotonic() < deadline:
        time.sleep(0.02)
    assert received == ["dctlink/edge-demo/image"]
    for client in (device, receiver):
        client.disconnect()
        client.loop_stop()


def test_wrong_password_is_refused(broker: Broker) -> None:
    client, code = connect(broker, "edge-demo", "not-the-password")
    assert code.is_failure
    client.loop_stop()


def test_compose_broker_healthcheck_command(broker: Broker, tmp_path: Path) -> None:
    """The broker healthcheck passes, and leaves a connected receiver connected (its own login)."""
    if shutil.which("mosquitto_sub") is None:
        pytest.skip("mosquitto_sub is not installed (apt-get install mosquitto-clients)")
    test = yaml.safe_load(COMPOSE.read_text())["services"]["mosquitto"]["healthcheck"]["test"]
    command = (
        test[1]
        .replace("$$", "$")
        .replace("-p 1883", f"-p {broker.port}")
        .replace("/mosquitto/secrets", str(broker.secrets))
    )
    user = re.search(r"-u (\S+)", command)
    assert user is not None
    assert user.group(1) not in {"receiver", "edge-demo"}
    receiver = Client(broker, "receiver")
    assert not receiver.connect(clean_start=True, session_expiry_s=60).is_failure
    topic = f"dctlink/edge-demo/hc-{uuid.uuid4().hex[:8]}"
    receiver.subscribe(topic)

    subprocess.run(["sh", "-c", command], check=True, timeout=15)
    wrong = command.replace(f"-u {user.group(1)}", "-u nobody")
    assert (
        subprocess.run(["sh", "-c", wrong], check=False, capture_output=True, timeout=15).returncode
        != 0
    )
    device = Client(broker, "edge-demo")
    assert not device.connect().is_failure
    device.publish(topic, [b"after the healthcheck"])
    arrived = wait_until(lambda: len(receiver.messages) == 1)
    assert receiver.disconnects == [], "the healthcheck disconnected the receiver"
    assert arrived
    for client in (device, receiver):
        client.close()


def test_receiver_healthcheck_against_a_live_receiver(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "DCTLINK_RECEIVER__BROKER__ENABLED": "false",
        "DCTLINK_RECEIVER__STORE__DATA_DIR": str(tmp_path / "data"),
        "DCTLINK_RECEIVER__API__PORT": str(port),
    }
    process = subprocess.Popen(
        [str(BIN / "cloud-receiver"), "serve", "--host", "127.0.0.1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_ready(lambda: tcp_open(port), "cloud-receiver", 60, process)
        check = receiver_healthcheck()
        subprocess.run(check, env=env, check=True, timeout=10)
    finally:
        process.terminate()
        process.wait(20)
    failed = subprocess.run(check, check=False, env=env, capture_output=True, timeout=10)
    assert failed.returncode != 0  # nothing listens any more: unhealthy
