"""Export a trained checkpoint to the ONNX model the receiver loads, and check it.

    python -m models.export out/train/dctlink-v3-qat/best.pt \
        out/export/dctlink-residual-v3-float.onnx --version dctlink-residual-v3 \
        --int8 --int8-out models/dctlink-residual-v3.onnx
    python -m models.export CHECKPOINT OUT.onnx --int8 [--int8-out INT8.onnx] [--data DIR]

The graph has the inputs and output of cloud_receiver/recovery/network.py's contract, opset 17,
dynamic height and width. After writing it, the export runs ONNX Runtime and torch on the
sample images (degraded by the real codec) and fails unless they agree to ``--tolerance``.
``--int8`` also measures ONNX Runtime's dynamic and static int8 quantisations on the held-out
validation photographs: PSNR against the float model and latency; it writes nothing it does
not report unless ``--int8-out`` names where the static int8 model goes (with the float
model's metadata, plus ``weights: int8``). Static int8 is per-channel QDQ with activation
ranges at the 99.999th percentile of the calibration photographs (the input image's step
exactly 1/255, so it rounds to itself), and keeps the residual's last convolution and the
addition to the image float (:func:`float_tail`). The receiver ships
int8 only where it loses at most 0.05 dB on Kodak (``bench.rd --baseline int8=INT8.onnx``
scores both side by side); since v2.2 it ships the int8 model of a quantisation-aware
fine-tune (:mod:`models.qat`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort  # type: ignore[import-untyped]  # ships no type information
import torch
from onnxruntime.quantization import (  # type: ignore[import-untyped]
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_dynamic,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import (  # type: ignore[import-untyped]
    quant_pre_process,
)
from PIL import Image
from torch import nn

from models.architecture import CONDITION_CHANNELS, IMAGE_CHANNELS, build, multiply_adds, parameters
from models.degrade import DEFAULT_DATA, Pair, degrade, load_images
from models.train import validation_set
from shared.codec import Profile
from shared.metrics import psnr

REPO = Path(__file__).resolve().parents[1]
OPSET = 17


def load_checkpoint(path: Path) -> tuple[nn.Module, dict[str, Any]]:
    state = torch.load(path, weights_only=False, map_location="cpu")
    model = build(state["arch"], state["config"])
    model.load_state_dict(state["model"])
    return model.eval(), state


def export(model: nn.Module, path: Path, metadata: dict[str, str]) -> None:
    """Write ``model`` as ONNX with dynamic height and width and ``metadata`` as model props."""
    example = (
        torch.zeros(1, IMAGE_CHANNELS, 64, 64),
        torch.zeros(1, CONDITION_CHANNELS, 64, 64),
    )
    axes = {2: "height", 3: "width"}
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "model.onnx"
        torch.onnx.export(
            model,
            example,
            str(raw),
            input_names=["image", "condition"],
            output_names=["enhanced"],
            dynamic_axes={"image": axes, "condition": axes, "enhanced": axes},
            opset_version=OPSET,
            dynamo=False,
        )
        graph = onnx.load(str(raw))
    onnx.helper.set_model_props(graph, metadata)
    onnx.checker.check_model(graph)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(graph, str(path))


def session(path: Path, threads: int = 1) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def sample_pairs() -> Iterator[Pair]:
    """The committed samples through the edge's default profile and a lowpass one."""
    for path in sorted((REPO / "samples").glob("*.png")):
        pixels = np.asarray(Image.open(path).convert("RGB"))
        for profile in (Profile.auto(50), Profile.lowpass()):
            yield degrade(pixels, profile)


def max_difference(model: nn.Module, onnx_path: Path, pairs: Sequence[Pair]) -> float:
    """Largest |ONNX Runtime - torch| over the outputs for ``pairs`` (whole images, odd sizes)."""
    runtime = session(onnx_path)
    worst = 0.0
    for pair in pairs:
        h, w = pair.image.shape[1:]
        h8, w8 = h // 8 * 8, w // 8 * 8
        image, condition = pair.image[None, :, :h8, :w8], pair.condition[None, :, :h8, :w8]
        with torch.no_grad():
            expected = model(torch.from_numpy(image), torch.from_numpy(condition)).numpy()
        (actual,) = runtime.run(["enhanced"], {"image": image, "condition": condition})
        worst = max(worst, float(np.max(np.abs(actual - expected))))
    return worst


def _pixels(chw: np.ndarray[Any, Any]) -> np.ndarray[Any, np.dtype[np.uint8]]:
    return np.asarray(np.clip(np.rint(chw.transpose(1, 2, 0) * 255), 0, 255), dtype=np.uint8)


def mean_psnr(path: Path, pairs: Sequence[Pair]) -> float:
    runtime = session(path)
    scores = []
    for pair in pairs:
        (out,) = runtime.run(
            ["enhanced"], {"image": pair.image[None], "condition": pair.condition[None]}
        )
        scores.append(psnr(_pixels(pair.target), _pixels(out[0])))
    return float(np.mean(scores))


def latency_ms(path: Path, threads: int, repeats: int = 5) -> float:
    """Median ONNX Runtime latency for one 768x512 image on ``threads`` CPU threads."""
    runtime = session(path, threads)
    rng = np.random.default_rng(0)
    feed = {
        "image": rng.random((1, IMAGE_CHANNELS, 512, 768), dtype=np.float32),
        "condition": rng.random((1, CONDITION_CHANNELS, 512, 768), dtype=np.float32),
    }
    runtime.run(None, feed)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        runtime.run(None, feed)
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


#: The input image's int8 rounding: a step of exactly 1/255 from 0, which every k/255 survives.
IMAGE_STEP = {"scale": np.array(1 / 255, np.float32), "zero_point": np.array(0, np.uint8)}


def float_tail(model: onnx.ModelProto, depth: int = 3) -> list[str]:
    """The nodes that make the residual and add it to the image: what static int8 keeps float.

    Quantised, the addition would round the whole output image to 256 levels over its range
    and the last convolution the residual to 256 levels over its own; float, they cost about
    2.5 % of the network's multiply-adds. (The image reaches the addition through its input
    rounding, whose step :func:`int8_report` pins to exactly 1/255, so it arrives unchanged.)
    Found from the graph, so names may change:
    the output's producer, then ``depth - 1`` producers back along its input other than
    ``image``.
    """
    producers = {output: node for node in model.graph.node for output in node.output}
    names: list[str] = []
    tensor = model.graph.output[0].name
    for _ in range(depth):
        node = producers.get(tensor)
        if node is None:
            break
        names.append(node.name)
        inputs = [name for name in node.input if name in producers]
        if len(inputs) != 1:
            break
        tensor = inputs[0]
    return names


def int8_report(
    float_path: Path, data: Path, holdout: int, keep: Path | None = None
) -> dict[str, float]:
    """PSNR and latency of int8 versions against the float model on held-out photographs;
    ``keep`` receives the static int8 model, with the float model's metadata."""
    images = load_images(data)
    pairs = [pair for _, pair in validation_set(images[-holdout:], 256)]
    # Calibrate on training photographs, never on the pairs scored.
    calibration = [pair for _, pair in validation_set(images[: 2 * holdout], 256)]

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self._feeds = iter(
                {"image": p.image[None], "condition": p.condition[None]} for p in calibration
            )

        def get_next(self) -> dict[str, np.ndarray[Any, Any]] | None:
            return next(self._feeds, None)

    float_path = float_path.resolve()
    keep = keep.resolve() if keep is not None else None  # before the chdir below
    report = {"float_psnr": mean_psnr(float_path, pairs), "float_ms": latency_ms(float_path, 2)}
    # The quantisation tools leave scratch files in the working directory: keep them in tmp.
    with tempfile.TemporaryDirectory() as tmp, contextlib.chdir(tmp):
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(float_path), str(prepared), skip_symbolic_shape=True)
        dynamic = Path(tmp) / "dynamic.onnx"
        quantize_dynamic(str(prepared), str(dynamic), weight_type=QuantType.QUInt8)
        static = Path(tmp) / "static.onnx"
        quantize_static(
            str(prepared),
            str(static),
            Reader(),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            # Ranges from the 99.999th percentile, not the extremes: a few outliers no longer
            # stretch the 256 steps that small residuals share (validation loss 0.048 -> 0.035).
            calibrate_method=CalibrationMethod.Percentile,
            nodes_to_exclude=float_tail(onnx.load(str(prepared))),
            # The image is k/255 for k in 0..255: with exactly that step it rounds to itself,
            # so the float addition at the end adds the residual to the image itself, not to
            # a rounded copy (a calibrated step of 1/255.1 moved bright pixels by 1/8 level).
            extra_options={"TensorQuantOverrides": {"image": [IMAGE_STEP]}},
        )
        for name, path in (("dynamic", dynamic), ("static", static)):
            report[f"{name}_psnr"] = mean_psnr(path, pairs)
            report[f"{name}_ms"] = latency_ms(path, 2)
            report[f"{name}_loss_db"] = report["float_psnr"] - report[f"{name}_psnr"]
        if keep is not None:
            metadata = {p.key: p.value for p in onnx.load(str(float_path)).metadata_props}
            quantised = onnx.load(str(static))
            onnx.helper.set_model_props(quantised, {**metadata, "weights": "int8"})
            keep.parent.mkdir(parents=True, exist_ok=True)
            onnx.save(quantised, str(keep))
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.export", description=__doc__)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--version", default=None, help="default: OUT's name without .onnx")
    parser.add_argument("--tolerance", type=float, default=1e-3)
    parser.add_argument("--int8", action="store_true", help="also measure int8 quantisation")
    parser.add_argument(
        "--int8-out", type=Path, default=None, help="write the static int8 model here (--int8)"
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args(argv)
    model, state = load_checkpoint(args.checkpoint)
    version = args.version or args.out.stem
    metadata = {
        "version": version,
        "architecture": state["arch"],
        "config": json.dumps(state["config"]),
        "parameters": str(parameters(model)),
        "multiply_adds_768x512": str(multiply_adds(model)),
        "training_steps": str(state["step"]),
        "validation_gain_db": f"{state['validation']['gain']:.3f}",
        # models.qat names its own command; models.train's checkpoints carry their options.
        "training_command": state.get("command")
        or "python -m models.train " + json.dumps(state["options"]),
    }
    if "kinds" in state:  # the profile kinds it was trained on: models.gate keeps it to them
        metadata["trained_kinds"] = ",".join(state["kinds"])
    export(model, args.out, metadata)
    difference = max_difference(model, args.out, list(sample_pairs()))
    result: dict[str, Any] = {
        "model": str(args.out),
        "bytes": args.out.stat().st_size,
        "max_abs_difference": difference,
        **metadata,
    }
    if args.int8:
        holdout = state["options"]["holdout"]
        result["int8"] = int8_report(args.out, args.data, holdout, args.int8_out)
    print(json.dumps(result, indent=2))
    if difference > args.tolerance:
        print(
            f"error: ONNX and torch differ by {difference:.2e} > {args.tolerance}", file=sys.stderr
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
