"""Quantisation-aware fine-tuning: int8 rounding as ONNX Runtime does it, and a run that
export turns into the float and int8 models."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import onnx
import pytest
import torch
from onnx import numpy_helper

from models import export, qat, train
from models.architecture import DctLinkNet, build

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
TINY = ["--patch", "32", "--region", "64", "--regions", "2", "--batch", "2", "--holdout", "2"]
TINY += ["--validation-size", "64", "--threads", "1", "--epoch-steps", "2", "--steps", "2"]


def test_weights_land_on_each_channels_int8_grid() -> None:
    weight = (
        torch.randn(5, 3, 3, 3) * torch.tensor([0.01, 0.1, 1.0, 10.0, 0.0])[:, None, None, None]
    )
    rounded = qat.int8_weights(weight)
    for channel in range(4):
        step = weight[channel].abs().max() / 127
        levels = rounded[channel] / step
        assert torch.allclose(levels, torch.round(levels), atol=1e-3)
        assert levels.abs().max() <= 127 + 1e-3
        assert (rounded[channel] - weight[channel]).abs().max() <= step / 2 + 1e-6
    assert not rounded[4].any()  # an all-zero channel stays zero


def test_ranges_hold_zero_and_round_to_256_levels() -> None:
    rounding = qat.Range()
    rounding.calibrating = True
    rounding(torch.tensor([0.5, 3.0]))  # never below zero: the range still starts at 0
    rounding.calibrating = False
    rounding.eval()  # ranges stay as calibrated (in training they follow each batch)
    out = rounding(torch.linspace(-1, 4, 1000))
    assert out.min() == 0  # below the range: clipped to it
    assert out.max() == pytest.approx(3.0)
    assert len(torch.unique(out)) <= 256
    assert rounding(torch.zeros(3)).eq(0).all()
    rounding.train()
    rounding(torch.full((4,), 13.0))
    assert float(rounding.high) == pytest.approx(3.0 + qat.MOMENTUM * 10.0)


def test_wrapping_rounds_all_but_the_residual_and_keeps_the_plain_weights() -> None:
    torch.manual_seed(0)
    model = build("dctlink")
    plain = {k: v.clone() for k, v in model.state_dict().items()}
    places = qat.wrap(model)
    wrappers = [wrapper for *_, wrapper in places]
    assert [w.float_output for w in wrappers] == [False] * (len(wrappers) - 1) + [True]
    assert wrappers[-1].conv is places[-1][2]
    assert isinstance(model, DctLinkNet)
    assert model.tail[2] is wrappers[-1]  # the float one makes the residual
    state = qat.float_state(model, places)
    assert state.keys() == plain.keys()
    assert all(torch.equal(state[k], plain[k]) for k in plain)
    assert all(
        isinstance(parent.get_submodule(name), qat.QuantisedConv) for parent, name, *_ in places
    )


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("train")
    for path in SAMPLES.glob("*.png"):
        shutil.copy(path, data)
    out = tmp_path_factory.mktemp("run")
    cache = tmp_path_factory.mktemp("cache")
    assert train.main([*TINY, "--data", str(data), "--cache", str(cache), "--out", str(out)]) == 0
    return out


def test_a_fine_tune_saves_a_checkpoint_that_exports_to_float_and_int8(
    tiny_run: Path, tmp_path: Path
) -> None:
    out = tmp_path / "qat"
    source = tiny_run / "last.pt"
    assert (
        qat.main(["--source", str(source), "--steps", "2", "--epoch-steps", "1", "--out", str(out)])
        == 0
    )
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2]
    state = torch.load(out / "best.pt", weights_only=False)
    assert state["command"].startswith("python -m models.qat --source last.pt --steps 2")
    assert state["quantisation_aware"] == {"source": "last.pt", "source_step": 2}
    assert state["step"] in (3, 4)  # the source's steps plus the fine-tune's best
    build(state["arch"], state["config"]).load_state_dict(state["model"])  # strict: same keys

    onnx_path, int8_path = tmp_path / "tiny-qat.onnx", tmp_path / "tiny-qat-int8.onnx"
    data = str(Path(state["options"]["data"]))
    argv = [str(out / "best.pt"), str(onnx_path), "--int8", "--int8-out", str(int8_path)]
    assert export.main([*argv, "--data", data]) == 0
    props = {p.key: p.value for p in onnx.load(str(onnx_path)).metadata_props}
    assert props["training_command"] == state["command"]
    # Static int8 keeps the residual's last convolution, its shuffle and the addition float,
    # and rounds the image with a step of exactly 1/255, so it reaches the addition unchanged.
    tail = export.float_tail(onnx.load(str(onnx_path)))
    float_ops = {n.name: n.op_type for n in onnx.load(str(onnx_path)).graph.node}
    assert [float_ops[name] for name in tail] == ["Add", "DepthToSpace", "Conv"]
    int8 = onnx.load(str(int8_path))
    assert {p.key: p.value for p in int8.metadata_props}["weights"] == "int8"
    nodes = {n.name: n for n in int8.graph.node}
    producers = {o: n for n in int8.graph.node for o in n.output}
    conv_weight = producers.get(nodes[tail[2]].input[1])
    assert conv_weight is None or conv_weight.op_type != "DequantizeLinear"  # float weights
    assert nodes[tail[0]].op_type == "Add"  # not replaced by a quantised addition
    image_step = next(
        numpy_helper.to_array(i)
        for i in int8.graph.initializer
        if i.name == next(n.input[1] for n in int8.graph.node if n.input[:1] == ["image"])
    )
    assert float(image_step) == pytest.approx(1 / 255, rel=1e-7)
