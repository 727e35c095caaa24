"""A device's retained status message, checked before it is stored or served.

The edge sender publishes ``<prefix>/<device>/status`` (``edge_sender/publisher.py``, figures
from ``Sender.status``): one JSON object, retained, also the Last Will. Anyone who may publish
there can put anything in it, and whatever is stored is later served by ``GET /api/v1/devices``
to every client, so a status is accepted only when it is:

* at most :data:`MAX_STATUS_BYTES` of UTF-8, a JSON object nested at most :data:`MAX_DEPTH`
  deep (checked before parsing, so a deep document cannot exhaust the parser's recursion);
* free of what JSON allows but a JSON response cannot carry: lone surrogates (``"\\ud800"``)
  in keys or values, ``NaN``/``Infinity``, and numbers too large to be finite floats;
* right in the type of every field of :data:`FIELDS`; ``state`` is required.

Unknown fields are dropped, not refused: a newer sender may report a figure this receiver does
not know yet, and refusing its whole status would show the device offline. They pass the checks
above first, so a hostile field is refused with the status rather than silently dropped.

:func:`parse_status` is for a message as received; :func:`load_stored_status` reads back what a
store holds, which an older receiver may have written without these checks.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

#: Largest status message accepted. The sender's is about 600 bytes.
MAX_STATUS_BYTES = 4096
#: Deepest nesting of objects and arrays accepted; the sender's status is flat (depth 1).
MAX_DEPTH = 4
#: Longest string in a known field (a version, a reason, a device id, an ISO time).
MAX_STRING_CHARS = 256
#: Stored text is ``json.dumps`` output, whose ``\\uXXXX`` escapes can take six characters per
#: byte received; past this no status that passed :func:`parse_status` could have been stored.
MAX_STORED_CHARS = 6 * MAX_STATUS_BYTES

_INT_LIMIT = 2**63  # any SQL column or JSON consumer downstream can hold what is below it


def _state(value: object) -> bool:
    return value in ("online", "offline")


def _text(value: object) -> bool:
    return isinstance(value, str) and len(value) <= MAX_STRING_CHARS


def _optional_text(value: object) -> bool:
    return value is None or _text(value)


def _count(value: object) -> bool:
    # bool is an int in Python, but True is not a count.
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < _INT_LIMIT


def _optional_ratio(value: object) -> bool:
    if value is None or _count(value):
        return True
    return isinstance(value, float) and 0 <= value < _INT_LIMIT


#: Every field the edge sender publishes, with the check its value must pass.
FIELDS: dict[str, Callable[[object], bool]] = {
    "state": _state,
    "device_id": _text,
    "reason": _text,
    "version": _text,
    "last_publish_at": _optional_text,
    "spool_depth": _count,
    "spool_bytes": _count,
    "published_total": _count,
    "payload_bytes_total": _count,
    "source_bytes_total": _count,
    "equal_quality_payload_bytes_total": _count,
    "equal_quality_jpeg_bytes_total": _count,
    "dropped_total": _count,
    "refused_total": _count,
    "payload_to_source_ratio": _optional_ratio,
    "payload_to_equal_quality_jpeg_ratio": _optional_ratio,
}


def parse_status(body: bytes, *, device_id: str | None = None) -> dict[str, Any]:
    """The checked status in ``body``, known fields only; raises ValueError saying what is wrong.

    ``device_id`` is the topic's: a status naming another device is refused, as a payload is.
    """
    if len(body) > MAX_STATUS_BYTES:
        raise ValueError(f"{len(body)} bytes, more than the {MAX_STATUS_BYTES} a status may have")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"not UTF-8 at byte {error.start}") from None
    status = _known_fields(_servable(text))
    named = status.get("device_id")
    if device_id is not None and named is not None and named != device_id:
        raise ValueError(f"status device id {named!r} differs from the topic's")
    return status


def load_stored_status(text: object) -> dict[str, Any]:
    """A status as a store holds it (JSON text), if a JSON response can carry it; else ValueError.

    Only what serving needs is checked (text, size, depth, surrogates, finite numbers), not the
    fields: those are what the receiver let through when it stored the status.
    """
    if not isinstance(text, str):
        raise ValueError(f"stored status is {type(text).__name__}, not text")
    if len(text) > MAX_STORED_CHARS:
        raise ValueError(f"stored status has {len(text)} characters")
    return _servable(text)


def _servable(text: str) -> dict[str, Any]:
    """The JSON object in ``text``, refused unless a JSON response can carry all of it."""
    if _nesting(text) > MAX_DEPTH:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
    try:
        status = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as error:
        raise ValueError(f"not JSON: {error.msg} at character {error.pos}") from None
    except RecursionError:  # _nesting bounds the depth; this is only a second line
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels") from None
    if not isinstance(status, dict):
        raise ValueError('expected a JSON object {"state": "online" | "offline", ...}')
    _check_value(status, 1)
    return status


def _known_fields(status: dict[str, Any]) -> dict[str, Any]:
    if "state" not in status:
        raise ValueError('"state" is missing; expected "online" or "offline"')
    known: dict[str, Any] = {}
    for name, check in FIELDS.items():
        if name in status:
            if not check(status[name]):
                raise ValueError(f"field {name!r} has a bad value {_preview(status[name])}")
            known[name] = status[name]
    return known


def _nesting(text: str) -> int:
    """How deep the arrays and objects of JSON ``text`` go, stopping once past the limit."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_DEPTH:
                break
        elif char in "]}":
            depth -= 1
    return deepest


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number a JSON response can carry")


def _check_value(value: object, depth: int) -> None:
    """Refuse what a JSON response cannot encode, anywhere in ``value`` (at ``depth``)."""
    if isinstance(value, (dict, list)) and depth > MAX_DEPTH:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, str):
        _check_text(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("a number is too large to be finite")
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError("object keys must be text")
            _check_text(key)
            _check_value(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_value(item, depth + 1)
    elif value is not None and not isinstance(value, (bool, int)):
        raise ValueError(f"{type(value).__name__} is not a JSON value")


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        # JSON escapes can spell half of a surrogate pair; no UTF-8 response can hold one.
        raise ValueError(f"a lone surrogate at character {error.start} of a string") from None


def _preview(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
