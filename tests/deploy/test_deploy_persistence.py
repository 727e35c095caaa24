"""A kill -9 of the deploy/ broker keeps the images it acknowledged for a stopped receiver.

The receiver's persistent session (MQTT 5, clean start off, a session expiry) is subscribed and
away; a device publishes QoS 1 images and has every PUBACK; the broker is killed with SIGKILL
(no shutdown save) and started again on the same persistence folder; the receiver comes back
under the same login and must get them. With the former ``autosave_interval 60`` (a save every
60 s) all 40 were lost here.

mosquitto 2.0 cannot promise all of them with any setting: with ``autosave_on_changes true`` and
``autosave_interval 1`` it saves at the end of each pass of its event loop, after it has already
sent that pass's PUBACKs (handle__publish sends it; the save follows in mosquitto_main_loop). A
pass reads one packet per connection, so a kill right after the last PUBACK can lose at most the
last image of each connection, and a later round trip on the same connection (the PUBACK of the
next publish) proves the one before it is on disk. The first two tests assert exactly that, no
more; deploy/README.md ("Broker persistence") says the same to operators. The edge sender
closes the gap on its side (``edge_sender.proof``): an image leaves its spool only once a publish
made after its PUBACK is answered, and the last test kills the broker the moment the spool is
empty.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from deploy_broker import CONFIG, DEVICE, ROOT, Broker, Client, deploy_broker
from pydantic import SecretStr

from cloud_receiver.config import BrokerSettings
from edge_sender.config import BrokerSettings as EdgeBroker
from edge_sender.config import EdgeSettings, SpoolSettings
from edge_sender.sender import Sender
from edge_sender.sources import frame_from_path
from edge_sender.spool import Spool
from harness import wait_until

pytestmark = pytest.mark.integration

IMAGES = 40
IMAGE_BYTES = 20_000
SESSION_S = 600
IMAGES_SENT = 3
SAMPLES = ROOT / "samples"


def receiver(broker: Broker) -> Client:
    return Client(broker, "receiver", client_id=BrokerSettings().client_id)


@contextmanager
def connected(client: Client) -> Iterator[Client]:
    code = client.connect(clean_start=False, session_expiry_s=SESSION_S)
    assert not code.is_failure, code
    try:
        yield client
    finally:
        client.close()


def images(count: int) -> list[bytes]:
    """Distinct payloads of about an image's size (mosquitto saves them whole, every time)."""
    return [f"image {i} {uuid.uuid4()} ".encode().ljust(IMAGE_BYTES, b".") for i in range(count)]


def kill_after_publishing(work: Path, *, round_trip_after: bool) -> tuple[list[bytes], int]:
    """Queue IMAGES for the stopped receiver, kill -9 the broker; the images and its port.

    ``round_trip_after``: one more QoS 1 publish (to a topic nobody reads) after the last
    image's PUBACK, as a sender would to know the last image is on the broker's disk.
    """
    topic = f"dctlink/{DEVICE}/persist-{uuid.uuid4().hex[:8]}"
    sent = images(IMAGES)
    with deploy_broker(work) as broker:
        with connected(receiver(broker)) as away:
            away.subscribe(topic)  # then a normal disconnect: the session stays, and its queue
        with connected(Client(broker, DEVICE)) as device:
            device.publish(topic, sent)  # returns once every image has its PUBACK
            if round_trip_after:
                device.publish(f"{topic}-barrier", [b"barrier"])
            broker.kill()
        return sent, broker.port


def delivered_after_restart(work: Path, port: int) -> tuple[list[bytes], list[bool]]:
    """Start the broker again on the same folder; what the receiver's session gets."""
    with deploy_broker(work, port=port) as broker, connected(receiver(broker)) as back:
        wait_until(lambda: len(back.messages) >= IMAGES)
        return [bytes(message.payload) for message in back.messages], back.session_present


def test_a_round_trip_after_the_puback_proves_the_images_are_on_disk(tmp_path: Path) -> None:
    sent, port = kill_after_publishing(tmp_path, round_trip_after=True)
    got, session_present = delivered_after_restart(tmp_path, port)
    lost = [payload for payload in sent if payload not in got]
    assert not lost, f"{len(lost)} of {IMAGES} acknowledged images lost by a broker kill -9"
    assert session_present == [True]
    assert got == sent


def test_a_kill_right_after_the_last_puback_loses_at_most_that_image(tmp_path: Path) -> None:
    """No round trip after the last PUBACK: that image may still be unsaved, none before it."""
    sent, port = kill_after_publishing(tmp_path, round_trip_after=False)
    got, session_present = delivered_after_restart(tmp_path, port)
    lost = [payload for payload in sent if payload not in got]
    assert lost in ([], sent[-1:]), f"{len(lost)} of {IMAGES} acknowledged images lost"
    assert session_present == [True]
    assert got == sent[: len(got)]


BALLAST_MESSAGES = 80  # x 1 MiB queued for the receiver: every save then takes a while


def ballast_config(work: Path) -> Path:
    """The shipped config saving only at a clean stop, to queue the ballast in one save."""
    lines = CONFIG.read_text().splitlines()
    saves = {"autosave_on_changes": "false", "autosave_interval": "3600"}
    text = "\n".join(
        f"{key} {saves[key]}" if (key := line.partition(" ")[0]) in saves else line
        for line in lines
    )
    path = work / "ballast.conf"
    path.write_text(text + "\n")
    return path


def test_a_running_sender_keeps_an_image_until_the_broker_saved_it(tmp_path: Path) -> None:
    """The spool drains, the broker is killed -9 at once, the sender runs on: nothing is lost.

    mosquitto answers an image's PUBACK before its save, and with 80 MiB queued for the stopped
    receiver a save takes hundreds of milliseconds. A sender that let an image go on the PUBACK
    alone had an empty spool inside that save, and the kill lost the image for good (a
    ``send`` that exits is safe anyway: its offline status is one more round trip).
    """
    work = tmp_path / "broker"
    work.mkdir()
    ballast = [bytes([i]) * (1024 * 1024 - 256) for i in range(BALLAST_MESSAGES)]
    with deploy_broker(work, config=ballast_config(work)) as broker:
        with connected(receiver(broker)) as away:
            away.subscribe(f"dctlink/{DEVICE}/image")
            away.subscribe(f"dctlink/{DEVICE}/ballast")
        with connected(Client(broker, DEVICE)) as device:
            device.publish(f"dctlink/{DEVICE}/ballast", ballast)
        port = broker.port
    # The clean stop saved the ballast; from here on every save is long.
    settings = EdgeSettings(
        device_id=DEVICE,
        broker=EdgeBroker(
            url=f"mqtt://127.0.0.1:{port}",
            username=DEVICE,
            password=SecretStr((work / "secrets" / f"{DEVICE}.password").read_text().strip()),
            reconnect_min_s=0.2,
            reconnect_max_s=0.5,
        ),
        spool=SpoolSettings(path=tmp_path / "spool.db"),
    )
    samples = sorted(SAMPLES.glob("*.png"))[:IMAGES_SENT]
    with Spool(settings.spool.path, settings.spool.max_bytes) as spool:
        sender = Sender(settings, spool)
        sender.start()
        try:
            with deploy_broker(work, port=port) as broker:
                for path in samples:
                    sender.accept(frame_from_path(path))
                assert sender.wait_drained(60)
                broker.kill()
            with deploy_broker(work, port=port) as broker:
                assert sender.wait_drained(60)
                sender.close()
                with connected(receiver(broker)) as back:
                    expected = BALLAST_MESSAGES + len(samples)
                    wait_until(lambda: len(back.messages) >= expected, timeout_s=30)
                    images = {bytes(m.payload) for m in back.messages if "/image" in m.topic}
        finally:
            sender.close()
    assert back.session_present == [True]
    assert len(images) == len(samples), f"{len(samples) - len(images)} image(s) lost"
