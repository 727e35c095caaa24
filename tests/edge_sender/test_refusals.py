"""Broker refusals: temporary ones keep the image spooled and back off, permanent ones stop.

A real mosquitto can refuse a publish only with 0x87 (its ACL; the live tests are in
test_security.py), so the temporary path is driven here through the pump's own PUBACK queue,
over a real spool, with no broker listening.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_sender.config import BrokerSettings, EdgeSettings, SpoolSettings
from edge_sender.publisher import PublisherError
from edge_sender.reasons import connack_is_permanent, is_failure, puback_is_permanent
from edge_sender.sender import Backoff, Sender
from edge_sender.spool import Spool
from harness import free_port

# Every PUBACK reason code of MQTT 5.0 (section 3.4.2.1), sorted by what retrying can change.
TEMPORARY_PUBACK = [0x80, 0x83, 0x91, 0x97]
PERMANENT_PUBACK = [0x87, 0x90, 0x99]


@pytest.mark.parametrize("code", TEMPORARY_PUBACK)
def test_pubacks_a_broker_may_answer_differently_later_are_temporary(code: int) -> None:
    assert is_failure(code)
    assert not puback_is_permanent(code)


@pytest.mark.parametrize("code", PERMANENT_PUBACK)
def test_pubacks_that_only_a_configuration_change_can_fix_are_permanent(code: int) -> None:
    assert puback_is_permanent(code)


def test_success_codes_are_not_refusals() -> None:
    assert not is_failure(0x00)
    assert not is_failure(0x10)  # no matching subscribers: delivered to the broker all the same


@pytest.mark.parametrize("code", [0x80, 0x83, 0x88, 0x89, 0x97, 0x9C, 0x9F, 0xA0])
def test_busy_unavailable_quota_rate_and_unknown_connacks_are_retried(code: int) -> None:
    assert not connack_is_permanent(code)


@pytest.mark.parametrize("code", [0x84, 0x85, 0x86, 0x87, 0x8A, 0x8C, 0x9A, 0x9B])
def test_credentials_ban_client_id_and_protocol_connacks_are_permanent(code: int) -> None:
    assert connack_is_permanent(code)


def test_backoff_doubles_up_to_its_cap_and_a_delivery_resets_it() -> None:
    backoff = Backoff(first_s=1.0, max_s=4.0)
    assert backoff.refused(now=100.0) == 1.0
    assert backoff.holding(100.5)
    # The rest of a window refused during the same hold does not lengthen it.
    assert backoff.refused(now=100.5) == 0.5
    assert not backoff.holding(101.0)
    assert [backoff.refused(now) for now in (101.0, 103.0, 107.0, 111.0)] == [2.0, 4.0, 4.0, 4.0]
    backoff.delivered()
    assert backoff.refused(now=200.0) == 1.0


@pytest.fixture
def idle_sender(tmp_path: Path) -> Iterator[Sender]:
    """A sender over a real spool that is never started: the test plays the pump's part."""
    settings = EdgeSettings(
        device_id=f"cam-{uuid.uuid4().hex[:8]}",
        broker=BrokerSettings(
            url=f"mqtt://127.0.0.1:{free_port()}", reconnect_min_s=0.5, reconnect_max_s=2.0
        ),
        spool=SpoolSettings(path=tmp_path / "s.db"),
    )
    with Spool(settings.spool.path, settings.spool.max_bytes) as spool:
        yield Sender(settings, spool)


def _refuse(sender: Sender, code: int, mids: list[int]) -> int:
    seq, _ = sender.spool.put(uuid.uuid4(), 1, "test", 0, bytes(100))
    sender._inflight.add(seq, mids)
    sender._queue_ack(mids[0], code)
    sender._process_acks()
    return seq


def test_quota_exceeded_keeps_the_image_spooled_and_holds_publishing_back(
    idle_sender: Sender, caplog: pytest.LogCaptureFixture
) -> None:
    seq = _refuse(idle_sender, 0x97, [7, 8])  # a chunked image: one refused chunk is enough
    assert idle_sender.fatal is None
    assert [e.seq for e in idle_sender.spool.peek(10)] == [seq]
    assert idle_sender._inflight.messages == 0  # out of the window, so it is published again
    assert idle_sender._backoff.holding(time.monotonic())
    assert "refused the image publish for now" in caplog.text
    # The other chunk's late PUBACK neither completes nor removes the image.
    idle_sender._queue_ack(8, 0)
    idle_sender._process_acks()
    assert idle_sender.spool.depth()[0] == 1


def test_not_authorized_stops_with_what_to_fix_and_keeps_the_image(idle_sender: Sender) -> None:
    with pytest.raises(PublisherError, match="retrying cannot change: the ACL must let") as error:
        _refuse(idle_sender, 0x87, [7])
    assert error.value.code == 0x87
    assert idle_sender.spool.depth()[0] == 1


@pytest.mark.parametrize("code", [0x80, 0x83, 0x91, 0xA0])
def test_other_temporary_and_unknown_refusals_keep_the_sender_going(
    idle_sender: Sender, code: int
) -> None:
    _refuse(idle_sender, code, [7])
    assert idle_sender.fatal is None
    assert idle_sender.spool.depth()[0] == 1
