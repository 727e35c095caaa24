"""Fit the priors of entropy coder 2's models (shared.codec.priors) on the training photographs.

    python -m models.fit_priors [--data DIR] [--validation N] [--seed S]

Only ``../shared/datasets/train`` is read (never Kodak), without its last ``--validation``
photographs (5 by default, the ones the network also keeps for validation). Each photograph
is coded with the profiles devices send: lossless and auto over their quality range, lowpass
and adaptive, each on a random crop between 256x256 and 1024x768 (the sizes cameras send).
Every symbol each model sees is counted, and the counts become the committed prior table
``shared/codec/tables/coder2-priors-v<version>.npz`` (about 2 minutes on two cores).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from shared.codec import Profile, decode, encode
from shared.codec.adaptive import normalise_prior
from shared.codec.entropy2 import MODELS, observed_counts
from shared.codec.priors import table_path

ROOT = Path(__file__).resolve().parents[1]
PROFILES = (
    *(Profile.lossless(q) for q in (30, 50, 75, 90, 95)),
    *(Profile.auto(q) for q in (20, 40, 60, 75, 90)),
    Profile.lowpass(75, 15, 6),
    Profile.adaptive(20000),
)


def fit(paths: list[Path], seed: int) -> dict[str, npt.NDArray[np.int64]]:
    counts = {name: np.zeros(size, dtype=np.int64) for name, size in MODELS.items()}
    rng = np.random.default_rng(seed)
    for number, path in enumerate(paths, 1):
        with Image.open(path) as opened:
            image = opened.convert("RGB")
        width, height = image.size
        for profile in PROFILES:
            crop_w = int(rng.integers(256, min(width, 1024) + 1))
            crop_h = int(rng.integers(256, min(height, 768) + 1))
            x = int(rng.integers(0, width - crop_w + 1))
            y = int(rng.integers(0, height - crop_h + 1))
            decoded = decode(encode(image.crop((x, y, x + crop_w, y + crop_h)), profile))
            seen = observed_counts(list(decoded.coefficients), list(decoded.retention))
            for name, observed in seen.items():
                counts[name] += observed
        print(f"{number}/{len(paths)} {path.name}", flush=True)
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/datasets/train")
    parser.add_argument("--validation", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    paths = sorted(args.data.glob("*.png"))
    if args.validation:
        paths = paths[: -args.validation]
    if not paths:
        parser.error(f"no training photographs in {args.data}")
    counts = fit(paths, args.seed)
    out = table_path()
    tables = {name: normalise_prior(c) for name, c in counts.items()}
    save: Any = np.savez_compressed  # numpy's stubs do not take arrays as keywords
    save(out, **tables)
    print(f"wrote {out}: " + ", ".join(f"{n} {int(c.sum())} symbols" for n, c in counts.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
