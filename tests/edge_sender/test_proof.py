"""The proof rule: only the answer to a publish made after an entry's PUBACK proves it saved."""

from __future__ import annotations

from edge_sender.proof import Proof


def test_an_entrys_own_puback_and_publishes_already_on_the_wire_prove_nothing() -> None:
    proof = Proof()
    proof.published(1)  # entry 10
    proof.published(2)  # entry 11, on the wire before entry 10's PUBACK
    assert proof.answered(1) == []
    proof.delivered(10)
    assert proof.answered(2) == []  # with TLS one broker pass may have read both
    proof.delivered(11)
    assert proof.needs_barrier
    assert sorted(proof.acked) == [10, 11]


def test_a_later_publish_or_a_barrier_proves_every_entry_acked_before_it() -> None:
    proof = Proof()
    proof.published(1)
    proof.answered(1)
    proof.delivered(10)
    proof.published(2)  # the next image, after entry 10's PUBACK
    proof.published(3, barrier=True)
    assert not proof.needs_barrier  # one barrier at a time
    assert proof.answered(2) == [10]
    assert proof.answered(3) == []
    assert proof.barrier is None
    assert not proof.acked


def test_a_chunked_entry_waits_for_its_last_puback() -> None:
    proof = Proof()
    for mid in (1, 2, 3):
        proof.published(mid)
    proof.answered(1)
    proof.answered(2)
    proof.answered(3)
    proof.delivered(10)  # the sender calls this once all three are acked
    proof.published(4, barrier=True)
    assert proof.answered(4) == [10]


def test_unknown_and_stale_message_ids_are_ignored_and_a_new_connection_forgets() -> None:
    proof = Proof()
    proof.published(1)
    proof.answered(1)
    proof.delivered(10)
    assert proof.answered(99) == []  # a status message, or from a connection that is gone
    proof.clear()
    assert not proof.acked
    assert not proof.needs_barrier
    assert proof.count == 0
