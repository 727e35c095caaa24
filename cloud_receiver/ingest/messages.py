"""Pure helpers for what arrives: topic parsing and the reason classes rejections are counted by."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from shared.codec import PayloadError

Kind = Literal["image", "chunk", "status"]
_KINDS: tuple[Kind, ...] = ("image", "chunk", "status")


@dataclass(frozen=True)
class Route:
    device_id: str
    kind: Kind


def parse_topic(prefix: str, topic: str) -> Route | None:
    """``<prefix>/<device_id>/<kind>`` -> Route; None for anything else."""
    parts = topic.split("/")
    if len(parts) != 3 or parts[0] != prefix or not parts[1]:
        return None
    for kind in _KINDS:
        if parts[2] == kind:
            return Route(parts[1], kind)
    return None


def reason_class(error: PayloadError) -> str:
    """The metrics label: the error's kind, set where it was raised, never read from its text.

    A small fixed set (:class:`PayloadErrorKind`); the full reason goes to the log and
    quarantine.
    """
    return str(error.kind)
