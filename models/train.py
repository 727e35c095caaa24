"""Train a recovery network on codec-degraded crops of the training photographs.

    python -m models.train [--resume] [--minutes M] [--steps N] [--init-from CKPT --blocks N]

The training pairs come from :mod:`models.pairs`: regions of the training photographs through
the real codec, with the profiles the edge sends by default (``auto`` at quality 20-95 and
``adaptive`` budgets), and through the receiver's classical recovery, computed once into a
cache under ``--cache`` (built on first use) and reused for every epoch. Each batch is random
16-pixel-aligned patches of cached regions, flipped or turned. The loss is the mean squared
error, which is what PSNR measures. The last ``--holdout`` photographs (sorted by name) never
train: they are the validation set, degraded once at fixed rate points, whose PSNR is logged
after every epoch to ``log.jsonl``. ``last.pt`` is saved after every epoch (and when
``--minutes`` runs out), ``best.pt`` whenever the validation gain improves; with ``--resume`` a
run continues from ``last.pt`` exactly where it stopped, same random streams. Where ``OUT`` has
no ``last.pt`` (a fresh clone), ``--resume`` starts from the committed checkpoint
``models/checkpoints/dctlink-v3.pt``, the ``last.pt`` of the latest training stretch; pass a
larger ``--steps`` to train beyond that stretch's schedule (the learning rate then follows
the longer schedule's cosine from the step reached).

``--init-from CHECKPOINT --blocks N`` grows a trained network instead of resuming it: a new run
(its own ``OUT``, step 0, a fresh optimiser that warms up again) starts from the checkpoint's
weights with N residual blocks, the ones it lacks starting as the identity, so training begins
exactly at the smaller network's output. With ``--resume`` such a run continues from its own
``OUT/last.pt`` once it has one, and takes its network (``--blocks``) from it.
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
from torch import Tensor, nn
from tqdm import tqdm

from models.architecture import DctLinkNet, build, multiply_adds, parameters
from models.degrade import (
    DEFAULT_DATA,
    KIND_WEIGHTS,
    Pair,
    degrade,
    format_mix,
    jpeg_q90_bytes,
    load_images,
    parse_mix,
    target_pixels,
)
from models.pairs import PairCache, cached_pairs, sample_batch
from shared.codec import Layout, Profile

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
    regions: int
    cache: str
    workers: int
    lr: float
    seed: int
    holdout: int
    validation_size: int
    threads: int
    minutes: float | None
    stop_at: int | None
    mix: str = format_mix(KIND_WEIGHTS)  # the profile kinds drawn and their shares
    blocks: int | None = None  # residual blocks; None: the resumed checkpoint's, else the default
    init_from: str | None = None  # a fresh run starts from this checkpoint's weights, grown


def batches(
    cache: PairCache, options: Options, rng: np.random.Generator
) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
    """Endless (image, condition, target) batches of random patches of the cached pairs."""
    while True:
        arrays = sample_batch(cache, rng, batch=options.batch, patch=options.patch)
        yield tuple(torch.from_numpy(a) for a in arrays)  # type: ignore[misc]  # three tensors


#: Validation rate points: ``auto`` over the edge's range, two ``adaptive`` budgets and two
#: ``lossless`` qualities.
VALIDATION_AUTO_QUALITIES = (20, 30, 40, 50, 60, 75, 90)
VALIDATION_BUDGETS = (0.25, 0.5)
VALIDATION_LOSSLESS_QUALITIES = (30, 75)


def validation_profiles(region: Pixels) -> dict[str, Profile]:
    """Fixed rate points over what the edge sends, for a comparable number every epoch."""
    points = {f"auto-q{q}": Profile.auto(q) for q in VALIDATION_AUTO_QUALITIES}
    reference = jpeg_q90_bytes(target_pixels(region, Layout.YCBCR420))
    for share in VALIDATION_BUDGETS:
        points[f"adaptive-{share:.0%}"] = Profile.adaptive(max(64, round(reference * share)))
    for quality in VALIDATION_LOSSLESS_QUALITIES:
        points[f"lossless-q{quality}"] = Profile.lossless(quality)
    return points


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


def scored_points(scores: dict[str, Any]) -> set[str]:
    """The rate points a checkpoint's validation scores cover."""
    return {key.split("/")[0] for key in scores if "/" in key}


def learning_rate(options: Options, step: int) -> float:
    """Linear warm-up over 100 steps, then cosine decay to 1 % over ``--steps``."""
    warm = min(1.0, (step + 1) / 100)
    progress = min(1.0, step / max(1, options.steps))
    return options.lr * warm * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * progress)))


def pairs_for(
    options: Options, training: Sequence[Pixels], held_out: Sequence[Pixels]
) -> tuple[PairCache, list[tuple[str, Pair]]]:
    """The pair cache of ``training`` for these options (built on first use) and the fixed
    validation set of ``held_out``: what every training run draws on."""
    cache = cached_pairs(
        training,
        Path(options.cache),
        regions=options.regions,
        size=options.region,
        seed=options.seed,
        workers=options.workers,
        mix=parse_mix(options.mix),
    )
    return cache, validation_set(held_out, options.validation_size)


def optimise(
    model: nn.Module,
    optimiser: torch.optim.Optimizer,
    batch: tuple[Tensor, Tensor, Tensor],
    lr: float,
) -> float:
    """One Adam step on the mean squared error of ``batch`` at learning rate ``lr``; its loss."""
    image, condition, target = batch
    for group in optimiser.param_groups:
        group["lr"] = lr
    loss = torch.mean((model(image, condition) - target) ** 2)
    optimiser.zero_grad(set_to_none=True)
    loss.backward()  # type: ignore[no-untyped-call]  # torch leaves backward untyped
    optimiser.step()
    return loss.item()


def save(path: Path, state: dict[str, Any]) -> None:
    temporary = path.with_suffix(".tmp")
    torch.save(state, temporary)
    temporary.replace(path)  # a crash mid-save never leaves a truncated checkpoint


#: The committed checkpoint a ``--resume`` without ``OUT/last.pt`` continues from.
COMMITTED = Path(__file__).resolve().parent / "checkpoints" / "dctlink-v3.pt"


def resume_point(out: Path, fallback: Path | None) -> Path | None:
    """Where ``--resume`` continues from: ``OUT/last.pt``, else ``fallback`` if it exists."""
    if (out / "last.pt").exists():
        return out / "last.pt"
    return fallback if fallback is not None and fallback.exists() else None


def grow_from(model: nn.Module, arch: str, path: Path) -> set[str]:
    """Start ``model`` from the weights of the checkpoint at ``path``, which may have fewer
    residual blocks (see :meth:`DctLinkNet.load_grown`); the profile kinds it was trained on.

    Only the weights carry over: the optimiser, the step and the best gain start afresh, so
    the new run warms up and follows its own ``--steps`` schedule.
    """
    state = torch.load(path, weights_only=False)
    if state["arch"] != arch or not isinstance(model, DctLinkNet):
        raise SystemExit(f"{path} holds a {state['arch']}; only a dctlink network can grow")
    try:
        new = model.load_grown(state["model"])
    except ValueError as error:
        raise SystemExit(f"{path}: {error}") from error
    print(
        f"{path}: step {state['step']} weights; {len(new)} new tensors start as the identity",
        file=sys.stderr,
    )
    return set(state.get("kinds", ()))


def train(options: Options, *, resume: bool, fallback: Path | None = COMMITTED) -> dict[str, Any]:
    torch.set_num_threads(options.threads)
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    images = load_images(Path(options.data))
    if len(images) <= options.holdout:
        raise SystemExit(f"need more than {options.holdout} images to hold some out")
    training, held_out = images[: -options.holdout], images[-options.holdout :]
    torch.manual_seed(options.seed)
    # A run that grows from --init-from resumes only its own OUT/last.pt, never the fallback.
    source = resume_point(out, None if options.init_from else fallback) if resume else None
    state = torch.load(source, weights_only=False) if source is not None else None
    config = dict(state["config"]) if state is not None else {}
    if options.blocks is not None:
        config["blocks"] = options.blocks
    model = build(options.arch, config or None)
    optimiser = torch.optim.Adam(model.parameters(), lr=options.lr)
    rng = np.random.default_rng(options.seed)
    step, best = 0, -math.inf
    resumed_points: set[str] | None = None  # the rate points a resumed best gain was scored on
    mix = parse_mix(options.mix)
    kinds = {kind for kind, weight in mix.items() if weight > 0}  # every kind trained on
    if state is not None:
        if state["arch"] != options.arch or state["config"] != getattr(model, "config", {}):
            raise SystemExit(
                f"{source} holds a {state['arch']} {state['config']}, not this network"
            )
        model.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        rng.bit_generator.state = state["numpy_rng"]
        torch.set_rng_state(state["torch_rng"])
        step, best = state["step"], state["best"]
        kinds |= set(state.get("kinds", ()))
        resumed_points = scored_points(state.get("validation", {}))
    elif options.init_from is not None:
        kinds |= grow_from(model, options.arch, Path(options.init_from))
    print(
        f"{options.arch}: {parameters(model):,} parameters, "
        f"{multiply_adds(model) / 1e9:.2f} G multiply-adds per 768x512 image; "
        f"{len(training)} training and {len(held_out)} validation images; from step {step}",
        file=sys.stderr,
    )
    cache, validation = pairs_for(options, training, held_out)
    if resumed_points is not None and resumed_points != {name for name, _ in validation}:
        # A best gain over other rate points says nothing about these: start afresh.
        print(f"{source}: validated on other rate points; best gain reset", file=sys.stderr)
        best = -math.inf
    stream = batches(cache, options, rng)
    deadline = time.monotonic() + 60 * options.minutes if options.minutes else math.inf
    model.train()
    progress = tqdm(total=options.steps, initial=step, unit="step", file=sys.stderr)
    epoch_loss: list[float] = []
    started = time.monotonic()
    while step < options.steps:
        epoch_loss.append(optimise(model, optimiser, next(stream), learning_rate(options, step)))
        step += 1
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
            "kinds": sorted(kinds),
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
    parser.add_argument("--steps", type=int, default=40000, help="optimiser steps in all")
    parser.add_argument("--epoch-steps", type=int, default=1000, help="steps between validations")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--patch", type=int, default=96, help="training patch side, pixels")
    parser.add_argument("--region", type=int, default=256, help="side of each cached region")
    parser.add_argument("--regions", type=int, default=128, help="cached regions per photograph")
    parser.add_argument("--cache", type=Path, default=Path("out/cache"), help="pair cache folder")
    parser.add_argument("--workers", type=int, default=2, help="processes building the cache")
    parser.add_argument("--lr", type=float, default=4e-4, help="peak Adam learning rate")
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--holdout", type=int, default=5, help="last N images validate only")
    parser.add_argument("--validation-size", type=int, default=512, help="validation crop side")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--minutes", type=float, default=None, help="stop (resumably) after")
    parser.add_argument("--stop-at", type=int, default=None, help="stop (resumably) at step N")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    parser.add_argument(
        "--blocks",
        type=int,
        default=None,
        help="residual blocks of the dctlink network (default: the resumed checkpoint's, else 6)",
    )
    parser.add_argument(
        "--init-from",
        type=Path,
        default=None,
        help="start a fresh run (no OUT/last.pt) from this checkpoint's weights; blocks it "
        "lacks start as the identity",
    )
    parser.add_argument(
        "--mix",
        default=format_mix(KIND_WEIGHTS),
        help="profile kinds of the training pairs and their shares (auto, adaptive, lossless)",
    )
    args = parser.parse_args(argv)
    if args.blocks is not None and (args.arch != "dctlink" or args.blocks < 1):
        parser.error("--blocks takes a positive count, for the dctlink network")
    if args.patch % 16 or args.region < args.patch:
        parser.error("--patch must be a multiple of 16 and at most --region")
    try:
        parse_mix(args.mix)
    except ValueError as error:
        parser.error(str(error))
    out = args.out or Path("out/train") / f"{args.arch}-v3"
    options = Options(
        arch=args.arch,
        data=str(args.data),
        out=str(out),
        steps=args.steps,
        epoch_steps=args.epoch_steps,
        batch=args.batch,
        patch=args.patch,
        region=args.region,
        regions=args.regions,
        cache=str(args.cache),
        workers=args.workers,
        lr=args.lr,
        seed=args.seed,
        holdout=args.holdout,
        validation_size=args.validation_size,
        threads=args.threads,
        minutes=args.minutes,
        stop_at=args.stop_at,
        mix=args.mix,
        blocks=args.blocks,
        init_from=None if args.init_from is None else str(args.init_from),
    )
    return options, args.resume


def main(argv: list[str] | None = None) -> int:
    options, resume = parse(argv)
    result = train(options, resume=resume)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
