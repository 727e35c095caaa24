"""Which broker refusals retrying can fix (MQTT 5 reason codes, OASIS MQTT 5.0 section 2.4).

A refusal is permanent when nothing but a change of configuration (credentials, ACL, topic,
protocol) can make the same request succeed: the sender stops and says what to fix, and the
image stays in the spool for the run after the fix. Every other refusal (quota exceeded,
server busy, an unspecified or implementation-specific error, and any code this table does
not know) is treated as temporary: the image stays spooled and is published again after a
capped, growing delay. Guessing "temporary" for an unknown code costs a log line per retry;
guessing "permanent" would stop a device that the broker only meant to slow down.

PUBACK can carry only 0x80, 0x83, 0x87, 0x90, 0x91, 0x97 and 0x99 (paho refuses any other
code there as a protocol error and reconnects). paho maps MQTT 3.1.1 CONNACK return codes 1-5
onto 0x84, 0x85, 0x88, 0x86 and 0x87; a 3.1.1 PUBACK has no reason code at all.
"""

from __future__ import annotations

#: PUBACK codes that the same publish will get again, with what to change.
PERMANENT_PUBACK: dict[int, str] = {
    0x87: "not authorized: the broker's ACL must let this user write the device's topics",
    0x90: "topic name invalid: check --topic-prefix and --device-id against the broker's rules",
    0x99: "payload format invalid: the broker refuses binary payloads on this topic",
}

_CREDENTIALS = (
    "check the username and password (--broker-username/--broker-password) and the broker's ACL"
)

#: CONNACK codes that the same CONNECT will get again, with what to change.
PERMANENT_CONNACK: dict[int, str] = {
    0x81: "the broker found our CONNECT malformed; this is a bug, please report it",
    0x82: "the broker reports a protocol error in our CONNECT; this is a bug, please report it",
    0x84: "the broker does not speak this MQTT version; try --broker-protocol 3.1.1",
    0x85: "the broker refuses the client id; check --device-id",
    0x86: _CREDENTIALS,
    0x87: _CREDENTIALS,
    0x8A: "this client is banned by the broker; " + _CREDENTIALS,
    0x8C: _CREDENTIALS,
    0x90: "the broker refuses the status topic (our Last Will); check --topic-prefix",
    0x95: "the broker refuses our CONNECT as too large; check the Last Will and credentials",
    0x99: "the broker refuses the Last Will's payload format",
    0x9A: "the broker does not support retained messages, which the status topic needs",
    0x9B: "the broker does not support QoS 1, which delivery needs",
    0x9D: "the broker has moved; update --broker",
}


def is_failure(code: int) -> bool:
    """MQTT 5: codes of 0x80 and above are refusals; below are successes (0x10 included)."""
    return code >= 0x80


def puback_is_permanent(code: int) -> bool:
    return code in PERMANENT_PUBACK


def connack_is_permanent(code: int) -> bool:
    return code in PERMANENT_CONNACK
