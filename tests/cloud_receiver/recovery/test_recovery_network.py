"""The network stage with a tiny real ONNX model: loading, versions, tiling, the facade."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from cloud_receiver.recovery import Recovery
from cloud_receiver.recovery.network import (
    ModelUnavailableError,
    OnnxRunner,
    conditioning,
    run_tiled,
)
from shared.codec import Layout, Profile, decode, encode


def write_model(path: Path, channels: int, *, version: str | None = None) -> Path:
    """A 3x3 depthwise box blur of ``image`` plus 0 x the summed ``condition`` (so it is used).

    Its receptive field is one pixel each side, so tiles overlapping by more agree exactly.
    """
    kernel = np.full((channels, 1, 3, 3), 1 / 9, dtype=np.float32)
    nodes = [
        helper.make_node(
            "Conv", ["image", "kernel"], ["blurred"], group=channels, pads=[1, 1, 1, 1]
        ),
        helper.make_node("ReduceSum", ["condition", "axis"], ["summed"], keepdims=1),
        helper.make_node("Mul", ["summed", "zero"], ["nothing"]),
        helper.make_node("Add", ["blurred", "nothing"], ["enhanced"]),
    ]
    graph = helper.make_graph(
        nodes,
        "box-blur",
        [
            helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, channels, "h", "w"]),
            helper.make_tensor_value_info(
                "condition", TensorProto.FLOAT, [1, 2 * channels, "h", "w"]
            ),
        ],
        [helper.make_tensor_value_info("enhanced", TensorProto.FLOAT, [1, channels, "h", "w"])],
        initializer=[
            numpy_helper.from_array(kernel, "kernel"),
            numpy_helper.from_array(np.array([1], dtype=np.int64), "axis"),
            numpy_helper.from_array(np.zeros(1, dtype=np.float32), "zero"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    if version is not None:
        helper.set_model_props(model, {"version": version})
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def colour_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("models")
    return write_model(folder / "dctlink-residual-v0.onnx", 3, version="test-blur-1")


def test_version_comes_from_metadata_or_the_file_name(colour_model: Path, tmp_path: Path) -> None:
    assert OnnxRunner(colour_model).version == "test-blur-1"
    unnamed = write_model(tmp_path / "blur-7.onnx", 1)
    runner = OnnxRunner(unnamed, threads=2)
    assert runner.version == "blur-7"
    assert runner.warmup_s >= 0


def test_missing_and_broken_models_are_unavailable_with_a_reason(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailableError, match="no model file at"):
        OnnxRunner(tmp_path / "absent.onnx")
    (tmp_path / "broken.onnx").write_bytes(b"not a model")
    with pytest.raises(ModelUnavailableError, match="cannot load"):
        OnnxRunner(tmp_path / "broken.onnx")


@pytest.mark.parametrize(("height", "width"), [(72, 96), (70, 90), (16, 200), (5, 3)])
def test_tiles_stitch_to_the_whole_image_result(
    colour_model: Path, height: int, width: int
) -> None:
    runner = OnnxRunner(colour_model)
    rng = np.random.default_rng(height * width)
    inputs = {
        "image": rng.random((1, 3, height, width), dtype=np.float32),
        "condition": rng.random((1, 6, height, width), dtype=np.float32),
    }
    tiled = run_tiled(runner, inputs, "enhanced", tile=32, overlap=4)
    # The last tile along an axis starts on the 16-pixel grid and runs to the far border,
    # edge-padded to a multiple of 8, so the reference pads the whole image the same way.
    pad = ((0, 0), (0, 0), (0, -height % 8), (0, -width % 8))
    padded = {name: np.pad(a, pad, mode="edge") for name, a in inputs.items()}
    whole = runner.run(padded)["enhanced"][:, :, :height, :width]
    assert tiled.shape == (1, 3, height, width)
    np.testing.assert_allclose(tiled, whole, atol=1e-5)


def test_conditioning_maps_cover_the_image(colour_model: Path) -> None:
    image = np.random.default_rng(1).integers(0, 256, (37, 45, 3), dtype=np.uint8)
    decoded = decode(encode(image, Profile.paper(50, 2)))
    maps = conditioning(decoded)
    assert maps.shape == (1, 6, 37, 45)
    assert maps.dtype == np.float32
    # Retention: anchor blocks (DC received) carry one more coefficient than the others.
    assert maps[0, 1, 0, 0] == 1.0
    assert maps[0, 1, 0, 8] == pytest.approx(63 / 64)


@pytest.mark.parametrize("layout", [Layout.YCBCR420, Layout.YCBCR444, Layout.GRAY])
def test_recovery_runs_the_network_when_a_model_is_present(tmp_path: Path, layout: Layout) -> None:
    model = write_model(tmp_path / "m.onnx", 3, version="test-blur-2")
    recovery = Recovery(model_path=model, threads=1)
    assert recovery.network_available
    assert recovery.network_detail == "model test-blur-2 loaded"
    image = np.random.default_rng(2).integers(0, 256, (41, 67, 3), dtype=np.uint8)
    stages = recovery.run(decode(encode(image, Profile.lowpass(90, 15, 6, layout=layout))))
    assert stages.enhanced is not None
    assert stages.enhanced.shape == stages.classical.shape
    assert stages.model_version == "test-blur-2"
    assert stages.enhanced_unavailable_reason is None
    assert set(stages.timings_s) == {"received", "classical", "enhanced"}


def test_without_a_model_the_stage_says_why(tmp_path: Path) -> None:
    recovery = Recovery(model_path=tmp_path / "dctlink-residual-v3.onnx")
    assert not recovery.network_available
    assert recovery.network_detail == f"no model file at {tmp_path / 'dctlink-residual-v3.onnx'}"
    image = np.zeros((8, 8), dtype=np.uint8)
    stages = recovery.run(decode(encode(image, Profile.lowpass())))
    assert stages.enhanced is None
    assert stages.model_version is None
    assert stages.enhanced_unavailable_reason == recovery.network_detail
