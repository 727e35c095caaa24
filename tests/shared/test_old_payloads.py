"""Payloads written by earlier encoders (v1 before the auto profile, v2 before coder 2 was
sped up) still decode to exactly what they carried."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from shared.codec import decode

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
