"""Payloads written by earlier encoders (v1 before the auto profile, v2 before coder 2 was
sped up) still decode to exactly what they carried."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from shared.codec import decode
from shared.codec.payload import decode_header, encode_coefficients

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
GOLDEN = Path(__file__).resolve().parents[1] / "expected" / "payloads"
INDEX: dict[str, Any] = json.loads((GOLDEN / "index.json").read_text())["payloads"]


@pytest.mark.parametrize("name", sorted(INDEX))
def test_an_old_payload_decodes_unchanged(name: str) -> None:
    expected = INDEX[name]
    payload = (GOLDEN / f"{name}.dctl").read_bytes()
    decoded = decode(payload)

    assert len(payload) == expected["bytes"]
    assert decoded.profile.name == expected["profile"]
    assert decoded.quality == expected["quality"]
    assert [k.keep for k in decoded.retention] == expected["keep"]
    assert decoded.reference_jpeg_bytes == expected.get("reference_jpeg_bytes")
    digest = hashlib.sha256(b"".join(c.tobytes() for c in decoded.coefficients)).hexdigest()
    assert digest == expected["coefficients_sha256"]
    assert decoded.to_rgb().shape[:2] == (decoded.height, decoded.width)


@pytest.mark.parametrize("name", sorted(n for n in INDEX if n.endswith("-coder2")))
def test_today_s_coder_2_writes_an_old_v2_payload_byte_for_byte(name: str) -> None:
    """Coder 2 may get faster, never different: spools hold what it wrote before."""
    payload = (GOLDEN / f"{name}.dctl").read_bytes()
    decoded = decode(payload)
    header = decode_header(payload)
    again = encode_coefficients(
        decoded.coefficient_image,
        decoded.profile,
        quality=decoded.quality or 0,
        explicit_tables=header.explicit_tables,
        device_id=decoded.device_id,
        image_id=decoded.image_id,
        captured_at_us=(decoded.captured_at - EPOCH) // timedelta(microseconds=1),
        reference_jpeg_bytes=decoded.reference_jpeg_bytes,
        coder=header.coder,
    )
    assert again == payload
