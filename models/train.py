"""Train a recovery network on codec-degraded crops of the training photographs.

    python -m models.train --arch dctlink --out out/train/dctlink [--resume]

Every batch is made on the fly: a random region of a training photograph, flipped or turned,
goes through the real codec with a profile sampled by :mod:`models.degrade` and through the
receiver's classical recovery; patches of it are the batch. The last ``--holdout`` photographs
(sorted by name) never train: they are the validation set, degraded once with fixed profiles,
whose PSNR is logged after every epoch to ``log.jsonl``. ``last.pt`` is saved after every
epoch (and when ``--minutes`` runs out), ``best.pt`` whenever validation PSNR improves; with
``--resume`` a run continues from ``last.pt`` exactly where it stopped, same random streams.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from PIL import Image
from torch import Tensor, nn
from tqdm import tqdm

from models.architecture import build, multiply_adds, parameters
from models.degrade import Pair, augment, degrade, jpeg_q90_bytes, sample_profile, target_pixels
from shared.codec import Layout, Profile

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "datasets" / "train"
Pixels = npt.NDArray[np.uint8]


@dataclass(frozen=True, kw_only=True)
class Options:
    arch: str
    data: str
    out: str
    steps: int
    epoch_steps: int
    batch: int
    patch: int
    region: int
    region_patches: int
    lr: float
    epsilon: float
    seed: int
    holdout: int
    validation_size: int
    threads: int
    minutes: float | None
    stop_at: int | None


def load_images(folder: Path) -> list[Pixels]:
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".png")
    if not paths:
        raise SystemExit(f"no .png training images in {folder}")
    return [np.asarray(Image.open(p).convert("RGB")) for p in paths]


def _aligned(rng: np.random.Generator, room: int) -> int:
    """A random offset in [0, room] on the 16-pixel coding grid the receiver's tiles keep."""
    return int(rng.integers(0, room // 16 + 1)) * 16


def batches(
    images: Sequence[Pixels], options: Options, rng: np.random.Generator
) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
    """Endless (image, condition, target) batches, ``region_patches`` patches per region.

    Few patches per region keep several profiles in every batch: with a whole batch from one
    region (one profile), the network learned to leave every image as it was.
    """
    while True:
        pairs: list[tuple[Pair, int, int]] = []
        while len(pairs) < options.batch:
            source = images[int(rng.integers(len(images)))]
            size = min(options.region, *source.shape[:2]) // 16 * 16
            top, left = _aligned(rng, source.shape[0] - size), _aligned(rng, source.shape[1] - size)
            region = augment(source[top : top + size, left : left + size], rng)
            pair = degrade(region, sample_profile(rng, region))
            for _ in range(min(options.region_patches, options.batch - len(pairs))):
                room = size - options.patch
                pairs.append((pair, _aligned(rng, room), _aligned(rng, room)))
        yield tuple(  # type: ignore[misc]  # three stacked tensors
            torch.from_numpy(
                np.stack(
                    [
                        getattr(p, name)[:, y : y + options.patch, x : x + options.patch]
                        for p, y, x in pairs
                    ]
                )
            )
            for name in ("image", "condition", "target")
        )


def validation_profiles(region: Pixels) -> dict[str, Profile]:
    """Fixed rate points spanning the profiles, for a comparable number every epoch."""
    reference = target_pixels(region, Layout.YCBCR420)
    return {
        "lowpass-q90-15-6": Profile.lowpass(90, 15, 6),
        "lowpass-q60-6-2": Profile.lowpass(60, 6, 2),
        "paper-q50-gray-a8": Profile.paper(50, 8, layout=Layout.GRAY),
        "adaptive-40pct": Profile.adaptive(max(64, round(jpeg_q90_bytes(reference) * 0.4))),
        "lossless-q75": Profile.lossless(75),
    }


def validation_set(images: Sequence[Pixels], size: int) -> list[tuple[str, Pair]]:
    pairs = []
    for image in images:
        h, w = image.shape[:2]
        side = min(size, h, w) // 16 * 16
        top, left = (h - side) // 32 * 16, (w - side) // 32 * 16
        region = np.ascontiguousarray(image[top : top + side, left : left + side])
        pairs += [(name, degrade(region, p)) for name, p in validation_profiles(region).items()]
    return pairs


def _psnr(a: Tensor, b: Tensor) -> float:
    # Scored on uint8-rounded images, as the receiver stores them.
    a8, b8 = (torch.clamp(torch.round(t * 255), 0, 255) for t in (a, b))
    mse = float(torch.mean((a8 - b8) ** 2))
    return 10 * math.log10(255**2 / max(mse, 1e-10))


def validate(model: nn.Module, pairs: Sequence[tuple[str, Pair]]) -> dict[str, float]:
    model.eval()
    scores: dict[str, list[tuple[float, float]]] = {}
    with torch.no_grad():
        for name, pair in pairs:
            image, condition, target = (
                torch.from_numpy(a)[None] for a in (pair.image, pair.condition, pair.target)
            )
            enhanced = model(image, condition)
            scores.setdefault(name, []).append((_psnr(image, target), _psnr(enhanced, target)))
    model.train()
    result: dict[str, float] = {}
    for name, values in scores.items():
        result[f"{name}/classical"] = float(np.mean([c for c, _ in values]))
        result[f"{name}/enhanced"] = float(np.mean([e for _, e in values]))
    result["gain"] = float(
        np.mean([result[f"{n}/enhanced"] - result[f"{n}/classical"] for n in scores])
    )
    return result


def charbonnier(prediction: Tensor, target: Tensor, epsilon: float) -> Tensor:
    """Mean of sqrt(d^2 + eps^2): quadratic for |d| << eps, linear (L1-like) beyond.

    ``--epsilon``'s default, 0.05 (13 grey levels), keeps nearly every error of a classical
    reconstruction in the quadratic zone, so training chases the conditional mean, the
    PSNR-optimal answer. With eps 1e-3 (practically L1) the network chased the conditional
    median of the residual, which is zero almost everywhere: on the held-out photographs it
    left every image unchanged (validation gain +0.000 dB after 1,000 steps, where eps 0.05
    had +0.017 dB after 500).
    """
    return torch.mean(torch.sqrt((prediction - target) ** 2 + epsilon**2))


def learning_rate(options: Options, step: int) -> float:
    """Linear warm-up over 100 steps, then cosine decay to 1 % over ``--steps``."""
    warm = min(1.0, (step + 1) / 100)
    progress = min(1.0, step / max(1, options.steps))
    return options.lr * warm * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * progress)))


def save(path: Path, state: dict[str, Any]) -> None:
    temporary = path.with_suffix(".tmp")
    torch.save(state, temporary)
    temporary.replace(path)  # a crash mid-save never leaves a truncated checkpoint


def train(options: Options, *, resume: bool) -> dict[str, Any]:
    torch.set_num_threads(options.threads)
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    images = load_images(Path(options.data))
    if len(images) <= options.holdout:
        raise SystemExit(f"need more than {options.holdout} images to hold some out")
    training, held_out = images[: -options.holdout], images[-options.holdout :]
    torch.manual_seed(options.seed)
    model = build(options.arch)
    optimiser = torch.optim.Adam(model.parameters(), lr=options.lr)
    rng = np.random.default_rng(options.seed)
    step, best = 0, -math.inf
    if resume and (out / "last.pt").exists():
        state = torch.load(out / "last.pt", weights_only=False)
        model.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        rng.bit_generator.state = state["numpy_rng"]
        torch.set_rng_state(state["torch_rng"])
        step, best = state["step"], state["best"]
    print(
        f"{options.arch}: {parameters(model):,} parameters, "
        f"{multiply_adds(model) / 1e9:.2f} G multiply-adds per 768x512 image; "
        f"{len(training)} training and {len(held_out)} validation images; from step {step}",
        file=sys.stderr,
    )
    validation = validation_set(held_out, options.validation_size)
    stream = batches(training, options, rng)
    deadline = time.monotonic() + 60 * options.minutes if options.minutes else math.inf
    model.train()
    progress = tqdm(total=options.steps, initial=step, unit="step", file=sys.stderr)
    epoch_loss: list[float] = []
    started = time.monotonic()
    while step < options.steps:
        image, condition, target = next(stream)
        for group in optimiser.param_groups:
            group["lr"] = learning_rate(options, step)
        loss = charbonnier(model(image, condition), target, options.epsilon)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]  # torch leaves backward untyped
        optimiser.step()
        step += 1
        epoch_loss.append(float(loss))
        progress.update()
        progress.set_postfix(loss=f"{np.mean(epoch_loss[-50:]):.4f}")
        out_of_time = time.monotonic() >= deadline or step == options.stop_at
        if step % options.epoch_steps and step < options.steps and not out_of_time:
            continue
        scores = validate(model, validation)
        record = {
            "step": step,
            "epoch": math.ceil(step / options.epoch_steps),
            "loss": float(np.mean(epoch_loss)),
            "lr": learning_rate(options, step),
            "seconds": round(time.monotonic() - started, 1),
            **scores,
        }
        epoch_loss = []
        with open(out / "log.jsonl", "a") as log:
            log.write(json.dumps(record) + "\n")
        progress.write(f"step {step}: validation gain {scores['gain']:+.3f} dB")
        state = {
            "arch": options.arch,
            "config": getattr(model, "config", {}),
            "options": asdict(options),
            "model": model.state_dict(),
            "optimiser": optimiser.state_dict(),
            "numpy_rng": rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(),
            "step": step,
            "best": max(best, scores["gain"]),
            "validation": scores,
        }
        if scores["gain"] > best:
            best = scores["gain"]
            save(out / "best.pt", state)
        save(out / "last.pt", state)
        if out_of_time:
            break
    progress.close()
    return {"step": step, "best_gain": best}


def parse(argv: list[str] | None) -> tuple[Options, bool]:
    parser = argparse.ArgumentParser(prog="python -m models.train", description=__doc__)
    parser.add_argument("--arch", default="dctlink", choices=["dctlink", "dncnn"])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of .png images")
    parser.add_argument("--out", type=Path, default=None, help="default out/train/<arch>")
    parser.add_argument("--steps", type=int, default=4000, help="optimiser steps in all")
    parser.add_argument("--epoch-steps", type=int, default=500, help="steps between validations")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--patch", type=int, default=128, help="training patch side, pixels")
    parser.add_argument("--region", type=int, default=256, help="side of each degraded region")
    parser.add_argument("--region-patches", type=int, default=2, help="patches cut from a region")
    parser.add_argument("--lr", type=float, default=2e-4, help="peak Adam learning rate")
    parser.add_argument("--epsilon", type=float, default=0.05, help="Charbonnier epsilon (0-1)")
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--holdout", type=int, default=5, help="last N images validate only")
    parser.add_argument("--validation-size", type=int, default=256, help="validation crop side")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--minutes", type=float, default=None, help="stop (resumably) after")
    parser.add_argument("--stop-at", type=int, default=None, help="stop (resumably) at step N")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    args = parser.parse_args(argv)
    if args.patch % 16 or args.region < args.patch:
        parser.error("--patch must be a multiple of 16 and at most --region")
    out = args.out or Path("out/train") / args.arch
    options = Options(
        arch=args.arch,
        data=str(args.data),
        out=str(out),
        steps=args.steps,
        epoch_steps=args.epoch_steps,
        batch=args.batch,
        patch=args.patch,
        region=args.region,
        region_patches=args.region_patches,
        lr=args.lr,
        epsilon=args.epsilon,
        seed=args.seed,
        holdout=args.holdout,
        validation_size=args.validation_size,
        threads=args.threads,
        minutes=args.minutes,
        stop_at=args.stop_at,
    )
    return options, args.resume


def main(argv: list[str] | None = None) -> int:
    options, resume = parse(argv)
    result = train(options, resume=resume)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
