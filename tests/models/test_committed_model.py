"""The model a fresh clone ships: its contract, its budget, and that it does its job."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image

from cloud_receiver.recovery import DEFAULT_MODEL_PATH, Recovery
from models.degrade import target_pixels
from shared.codec import Profile, decode, encode
from shared.metrics import psnr

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


@pytest.fixture(scope="module")
def recovery() -> Recovery:
    return Recovery(threads=1)


def test_the_committed_model_fits_the_contract_and_the_budget() -> None:
    assert DEFAULT_MODEL_PATH.stat().st_size <= 10 * 2**20
    model = onnx.load(str(DEFAULT_MODEL_PATH))
    assert model.opset_import[0].version >= 17
    props = {p.key: p.value for p in model.metadata_props}
    assert props["version"] == "dctlink-residual-v3"
    assert int(props["multiply_adds_768x512"]) <= 20e9  # issue 15's budget
    assert json.loads(props["config"])
    inputs = {i.name: i.type.tensor_type.shape.dim for i in model.graph.input}
    assert set(inputs) == {"image", "condition"}
    assert [d.dim_value for d in inputs["image"][:2]] == [1, 3]
    assert [d.dim_value for d in inputs["condition"][:2]] == [1, 6]
    # Height and width are symbolic: any image size.
    assert all(d.dim_param for name in inputs for d in inputs[name][2:])
    assert [o.name for o in model.graph.output] == ["enhanced"]


@pytest.mark.parametrize(
    "profile",
    # What v2 was trained on: the edge's default profile (MODEL_CARD.md).
    [Profile.auto(40), Profile.auto(75), Profile.adaptive(6000)],
    ids=["auto-q40", "auto-q75", "adaptive-6000B"],
)
def test_the_receiver_enhances_beyond_classical_recovery(
    recovery: Recovery, profile: Profile
) -> None:
    assert recovery.model_version == "dctlink-residual-v3"
    gains = []
    for path in sorted(SAMPLES.glob("*.png")):
        pixels = np.asarray(Image.open(path).convert("RGB"))
        decoded = decode(encode(pixels, profile))
        stages = recovery.run(decoded)
        assert stages.enhanced is not None
        assert stages.enhanced.shape == stages.classical.shape
        reference = target_pixels(pixels, decoded.layout)
        gains.append(psnr(reference, stages.enhanced) - psnr(reference, stages.classical))
    assert np.mean(gains) > 0
