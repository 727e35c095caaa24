"""Quantisation-aware fine-tuning: teach the float network to survive int8 inference.

    python -m models.qat [--source CHECKPOINT] [--steps N] [--stop-at N] [--minutes M]

With no options it is the fine-tune behind the shipped ``dctlink-residual-v3``: the committed
checkpoint, a cosine schedule over 4,000 steps stopped at step 500 (about 4 minutes).

ONNX Runtime's static int8 model (``models.export --int8``) runs the network about 2.5x faster
than float, but rounding every activation to 256 levels costs most where the residual is
smallest: at high qualities and on lossless payloads. This fine-tunes a trained checkpoint
(by default the committed ``models/checkpoints/dctlink-v3.pt``) with that rounding simulated
in the forward pass, so the weights learn to live with it:

- every convolution's weights are rounded per output channel to symmetric int8 (``[-127,
  127]`` times the channel's largest magnitude over 127), as ONNX Runtime's per-channel
  quantisation does;
- every convolution's input and output is rounded to uint8 over a per-tensor range: the
  moving average (momentum :data:`MOMENTUM`) of each training batch's minimum and maximum,
  started from the extremes of :data:`CALIBRATION_BATCHES` batches. The ranges follow the
  96-pixel training patches, which reach less far than whole images, so the validation
  crops get clipped a little more as training goes on, and the validation gain with the
  rounding on peaks early (step 500 of 4000, then falls by about 0.003 dB per 500 steps):
  ``--stop-at`` ends the run there. Fixed ranges (the calibration's, as ONNX Runtime fixes
  its own) were tried too: they lost 0.022 dB to the float v2.1 model in ONNX Runtime's
  int8, the moving ranges 0.012 dB.
- the last convolution, which makes the residual, keeps float weights and a float output, as
  the export keeps it (``models.export.float_tail``): only its input is rounded.

Gradients pass the rounding unchanged inside each range and stop at values it clips (the
straight-through estimator of ``torch.fake_quantize_*``). It is a model of the int8 graph,
not a copy: the additions inside the network are not rounded, and the export calibrates its
own ranges (at percentiles) rather than keeping these. Training uses :mod:`models.train`'s
data (the same pair cache, batches and validation set), the mean squared error, and a cosine
learning rate from ``--lr``. Validation scores the network with the rounding on;
``best.pt`` in ``--out`` keeps the best: float weights with the fields ``models.export``
reads from :mod:`models.train`'s checkpoints (no optimiser state or random streams: a
fine-tune is rerun, not resumed), so ``models.export`` turns it into the float ONNX model
and its int8 version. Each run starts ``log.jsonl`` afresh.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional

from models.architecture import build
from models.degrade import load_images
from models.train import COMMITTED, Options, batches, optimise, pairs_for, save, validate

#: How fast an activation range follows the batches (a moving average of their extremes).
MOMENTUM = 0.01
#: Batches whose extremes set the activation ranges before the first step.
CALIBRATION_BATCHES = 8


class Range(nn.Module):
    """A per-tensor uint8 rounding with a moving-average range (frozen in eval mode)."""

    low: Tensor
    high: Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("low", torch.tensor(math.inf))
        self.register_buffer("high", torch.tensor(-math.inf))
        self.calibrating = False

    def forward(self, x: Tensor) -> Tensor:
        if self.calibrating:
            with torch.no_grad():
                self.low.copy_(torch.minimum(self.low, x.min()))
                self.high.copy_(torch.maximum(self.high, x.max()))
            return x
        if self.training:
            with torch.no_grad():
                self.low.lerp_(x.min(), MOMENTUM)
                self.high.lerp_(x.max(), MOMENTUM)
        # The range must hold zero exactly (padding and ReLU zeros stay zeros), as ONNX
        # Runtime's uint8 ranges do.
        low = torch.clamp(self.low, max=0.0)
        high = torch.clamp(self.high, min=0.0)
        scale = torch.clamp((high - low) / 255, min=1e-8)
        zero = torch.clamp(torch.round(-low / scale), 0, 255).to(torch.int32)
        return torch.fake_quantize_per_tensor_affine(x, scale, zero, 0, 255)


def int8_weights(weight: Tensor) -> Tensor:
    """Round each output channel to symmetric int8 over its largest magnitude."""
    scale = torch.clamp(weight.detach().abs().amax(dim=(1, 2, 3)) / 127, min=1e-12)
    zero = torch.zeros(weight.shape[0], dtype=torch.int32)
    return torch.fake_quantize_per_channel_affine(weight, scale, zero, 0, -127, 127)


class QuantisedConv(nn.Module):
    """A convolution seen through int8 rounding (see the module doc); wraps, never copies."""

    def __init__(self, conv: nn.Conv2d, *, float_output: bool) -> None:
        super().__init__()
        self.conv = conv
        self.float_output = float_output
        self.input_range = Range()
        self.output_range = None if float_output else Range()

    def forward(self, x: Tensor) -> Tensor:
        weight = self.conv.weight if self.float_output else int8_weights(self.conv.weight)
        y = functional.conv2d(
            self.input_range(x),
            weight,
            self.conv.bias,
            self.conv.stride,
            self.conv.padding,
            self.conv.dilation,
            self.conv.groups,
        )
        return y if self.output_range is None else self.output_range(y)


Place = tuple[nn.Module, str, nn.Conv2d, QuantisedConv]


def wrap(model: nn.Module) -> list[Place]:
    """Put every convolution of ``model`` behind :class:`QuantisedConv`. The last one (in
    module order: the residual's) keeps float weights and output."""
    found = [
        (parent, name, child)
        for parent in model.modules()
        for name, child in parent.named_children()
        if isinstance(child, nn.Conv2d)
    ]
    places = []
    for index, (parent, name, conv) in enumerate(found):
        wrapper = QuantisedConv(conv, float_output=index == len(found) - 1)
        setattr(parent, name, wrapper)
        places.append((parent, name, conv, wrapper))
    return places


def float_state(model: nn.Module, places: list[Place]) -> dict[str, Tensor]:
    """The plain network's state dict (what models.export loads), taken while wrapped."""
    for parent, name, conv, _ in places:
        setattr(parent, name, conv)
    try:
        return {key: value.clone() for key, value in model.state_dict().items()}
    finally:
        for parent, name, _, wrapper in places:
            setattr(parent, name, wrapper)


def ranges(model: nn.Module) -> list[Range]:
    return [m for m in model.modules() if isinstance(m, Range)]


def calibrate(model: nn.Module, stream: Iterator[tuple[Tensor, Tensor, Tensor]]) -> None:
    """Start every range at the extremes seen over a few batches."""
    for r in ranges(model):
        r.calibrating = True
    with torch.no_grad():
        for _ in range(CALIBRATION_BATCHES):
            image, condition, _ = next(stream)
            model(image, condition)
    for r in ranges(model):
        r.calibrating = False


def learning_rate(peak: float, step: int, steps: int) -> float:
    """Cosine from ``peak`` to 1 % of it; no warm-up (the weights are trained already)."""
    return peak * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(1.0, step / max(1, steps)))))


def fine_tune(
    source: Path,
    out: Path,
    *,
    steps: int,
    lr: float,
    epoch_steps: int,
    minutes: float | None,
    stop_at: int | None = None,
) -> dict[str, Any]:
    state = torch.load(source, weights_only=False, map_location="cpu")
    base = Options(**state["options"])
    options = replace(base, out=str(out), steps=steps, lr=lr, epoch_steps=epoch_steps)
    torch.set_num_threads(options.threads)
    torch.manual_seed(options.seed)
    model = build(state["arch"], state["config"])
    model.load_state_dict(state["model"])
    places = wrap(model)
    images = load_images(Path(options.data))
    training, held_out = images[: -options.holdout], images[-options.holdout :]
    cache, validation = pairs_for(options, training, held_out)
    rng = np.random.default_rng(options.seed + 1)  # not the stretches' stream
    stream = batches(cache, options, rng)
    calibrate(model, stream)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    out.mkdir(parents=True, exist_ok=True)
    (out / "log.jsonl").unlink(missing_ok=True)  # a rerun, not a continuation
    command = (
        f"python -m models.qat --source {source.name} --steps {steps} --lr {lr} "
        f"--epoch-steps {epoch_steps}" + (f" --stop-at {stop_at}" if stop_at else "")
    )
    best, step, losses = -math.inf, 0, []
    started = time.monotonic()
    deadline = started + 60 * minutes if minutes else math.inf
    scores = validate(model, validation)
    print(f"step 0 (rounding on): validation gain {scores['gain']:+.3f} dB", file=sys.stderr)
    model.train()
    while step < steps:
        losses.append(optimise(model, optimiser, next(stream), learning_rate(lr, step, steps)))
        step += 1
        out_of_time = time.monotonic() >= deadline or step == stop_at
        if step % epoch_steps and step < steps and not out_of_time:
            continue
        scores = validate(model, validation)
        record = {
            "step": step,
            "loss": float(np.mean(losses)),
            "lr": learning_rate(lr, step, steps),
            "seconds": round(time.monotonic() - started, 1),
            **scores,
        }
        losses = []
        with open(out / "log.jsonl", "a") as log:
            log.write(json.dumps(record) + "\n")
        print(
            f"step {step}: validation gain (rounding on) {scores['gain']:+.3f} dB", file=sys.stderr
        )
        if scores["gain"] > best:
            best = scores["gain"]
            save(
                out / "best.pt",
                {
                    "arch": state["arch"],
                    "config": state["config"],
                    "options": asdict(options),
                    "model": float_state(model, places),
                    "step": state["step"] + step,
                    "kinds": state.get("kinds", []),
                    "validation": scores,
                    "command": command,
                    "quantisation_aware": {"source": source.name, "source_step": state["step"]},
                },
            )
        if out_of_time:
            break
    return {"steps": step, "best_gain_rounded": best}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.qat", description=__doc__)
    parser.add_argument("--source", type=Path, default=COMMITTED, help="checkpoint to fine-tune")
    parser.add_argument(
        "--out", type=Path, default=Path("out/train/dctlink-v3-qat"), help="best.pt, log.jsonl"
    )
    parser.add_argument("--steps", type=int, default=4000, help="length of the cosine schedule")
    parser.add_argument("--lr", type=float, default=2e-5, help="peak Adam learning rate")
    parser.add_argument("--epoch-steps", type=int, default=500, help="steps between validations")
    parser.add_argument("--minutes", type=float, default=None, help="stop after (best.pt stays)")
    parser.add_argument(
        "--stop-at", type=int, default=500, help="stop at step N of --steps (0: run them all)"
    )
    args = parser.parse_args(argv)
    result = fine_tune(
        args.source,
        args.out,
        steps=args.steps,
        lr=args.lr,
        epoch_steps=args.epoch_steps,
        minutes=args.minutes,
        stop_at=args.stop_at or None,
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
