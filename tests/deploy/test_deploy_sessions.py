"""Sessions on the deploy/ broker belong to logins: a device cannot take over the receiver's.

With the shipped config (``use_username_as_clientid`` on the listener) the broker replaces every
client id with the username. A device that connects with the receiver's client id, clean start,
neither wipes the receiver's persistent session (the images queued while it is away) nor
disconnects a running receiver; and the Kubernetes replicas, one login each, coexist in the
shared subscription. Before that setting a device's clean-start connect under ``dctlink-receiver``
emptied the queue, and one under a running receiver's id kicked it off.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from deploy_broker import DEVICE, Broker, Client, acl_users, deploy_broker

from cloud_receiver.config import BrokerSettings
from harness import wait_until

pytestmark = pytest.mark.integration

IMAGES = 10
SESSION_S = 600
# What a device might claim: the receiver's default client id and its username.
RECEIVER_IDS = [BrokerSettings().client_id, "receiver"]


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    with deploy_broker(tmp_path_factory.mktemp("deploy-sessions")) as running:
        yield running


def topic(name: str) -> str:
    """A topic of the demo device's own (the ACL lets it write dctlink/edge-demo/#), per test."""
    return f"dctlink/{DEVICE}/{name}-{uuid.uuid4().hex[:8]}"


def receiver(broker: Broker, user: str = "receiver") -> Client:
    """The receiver's login with its configured (default) client id, as cloud-receiver connects."""
    return Client(broker, user, client_id=BrokerSettings().client_id)


def images(count: int) -> list[bytes]:
    return [f"image {i} {uuid.uuid4()}".encode() for i in range(count)]


def takeover_attempt(broker: Broker, client_id: str) -> None:
    """A device login connecting under ``client_id`` with clean start and no session, then gone."""
    attacker = Client(broker, DEVICE, client_id=client_id)
    code = attacker.connect(clean_start=True, session_expiry_s=0)
    assert not code.is_failure, code  # a valid login: the broker lets it in, as itself
    attacker.close()


def test_device_cannot_wipe_a_stopped_receivers_session(broker: Broker) -> None:
    images_topic = topic("queued")
    first = receiver(broker)
    assert not first.connect(clean_start=True, session_expiry_s=SESSION_S).is_failure
    first.subscribe(images_topic)
    first.close()  # a normal disconnect: the session and its subscription stay

    sent = images(IMAGES)
    device = Client(broker, DEVICE)
    assert not device.connect().is_failure
    device.publish(images_topic, sent)  # queued for the stopped receiver
    device.close()
    for client_id in RECEIVER_IDS:
        takeover_attempt(broker, client_id)

    again = receiver(broker)
    assert not again.connect(clean_start=False, session_expiry_s=SESSION_S).is_failure
    wait_until(lambda: len(again.messages) >= IMAGES)
    lost = IMAGES - len(again.messages)
    assert lost == 0, f"{lost} of {IMAGES} queued images lost"
    assert again.session_present == [True]
    assert [message.payload for message in again.messages] == sent
    again.close()


def test_device_cannot_disconnect_a_running_receiver(broker: Broker) -> None:
    images_topic = topic("live")
    running = receiver(broker)
    assert not running.connect(clean_start=True, session_expiry_s=SESSION_S).is_failure
    running.subscribe(images_topic)
    for client_id in RECEIVER_IDS:
        takeover_attempt(broker, client_id)

    # Had an attempt kicked the receiver, its disconnect would be recorded before paho's
    # reconnect (a second later) let this image through.
    device = Client(broker, DEVICE)
    assert not device.connect().is_failure
    sent = images(1)
    device.publish(images_topic, sent)
    arrived = wait_until(lambda: len(running.messages) == 1)
    assert running.disconnects == [], "a device's connect disconnected the receiver"
    assert arrived
    assert running.codes == [running.codes[0]], "the receiver had to reconnect"
    assert [message.payload for message in running.messages] == sent
    device.close()
    running.close()


def test_replicas_with_their_own_logins_share_the_subscription(broker: Broker) -> None:
    """receiver-0 and receiver-1 (k8s pods), same configured client id: both stay connected."""
    replica_users = [user for user in acl_users() if user.startswith("receiver-")]
    assert replica_users[:2] == ["receiver-0", "receiver-1"]
    images_topic = topic("shared")
    replicas = [receiver(broker, user) for user in replica_users[:2]]
    for replica in replicas:
        assert not replica.connect(clean_start=True, session_expiry_s=SESSION_S).is_failure
        replica.subscribe(f"$share/receivers/{images_topic}")

    sent = images(IMAGES)
    device = Client(broker, DEVICE)
    assert not device.connect().is_failure
    device.publish(images_topic, sent)
    assert wait_until(lambda: sum(len(r.messages) for r in replicas) >= IMAGES)
    got = [message.payload for replica in replicas for message in replica.messages]
    assert sorted(got) == sorted(sent), "an image was lost or doubled"
    assert all(replica.messages for replica in replicas), "one replica got no share"
    assert all(replica.disconnects == [] for replica in replicas), "a replica was kicked off"
    device.close()
    for replica in replicas:
        replica.close()
