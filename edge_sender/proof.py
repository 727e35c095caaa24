"""Which acknowledged images the broker has provably saved (deploy/README.md, "Broker persistence").

mosquitto 2.0 sends a PUBACK while it handles the PUBLISH and saves its persistence file between
passes of its event loop. So an image's own PUBACK says the image reached the broker, not the
broker's disk. A packet the device sends *after it has that PUBACK* is read in a later pass,
after the save, and the broker's answer to it says the image is on disk. (A publish that was
already on the wire with the image proves nothing: with TLS one pass may read both.)

An entry therefore stays in the spool, acknowledged but unproven, until a publish made after its
last PUBACK is answered: the next image's PUBACK or, when nothing else is in flight, a barrier's
(an empty QoS 1 publish to ``<prefix>/<device>/barrier``, a topic the receiver never subscribes
to). A refusal is an answer too. A new connection forgets every proof in progress, so the
unproven entries are published again; the receiver drops the duplicates by image id.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Proof:
    """Publish order, and the acknowledged entries waiting for a later answer."""

    sent: dict[int, int] = field(default_factory=dict)  # message id -> number, until answered
    acked: dict[int, int] = field(default_factory=dict)  # spool seq -> publishes when acked
    barrier: int | None = None  # message id of the barrier waiting for its PUBACK
    count: int = 0  # publishes made on this connection, numbered from 1

    def published(self, mid: int, *, barrier: bool = False) -> None:
        """One message onto the connection: part of an image, or the barrier."""
        self.count += 1
        self.sent[mid] = self.count
        if barrier:
            self.barrier = mid

    def answered(self, mid: int) -> list[int]:
        """A PUBACK (success or refusal) for ``mid``: the entries it proves saved."""
        number = self.sent.pop(mid, None)
        if number is None:
            return []  # a status message, or one from before the last reconnect
        if mid == self.barrier:
            self.barrier = None
        proven = [seq for seq, before in self.acked.items() if number > before]
        for seq in proven:
            del self.acked[seq]
        return proven

    def delivered(self, seq: int) -> None:
        """Every message of entry ``seq`` is acknowledged: only a later publish can prove it."""
        self.acked[seq] = self.count

    @property
    def needs_barrier(self) -> bool:
        return bool(self.acked) and self.barrier is None

    def clear(self) -> None:
        self.sent.clear()
        self.acked.clear()
        self.barrier = None
        self.count = 0
