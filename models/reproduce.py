"""Rebuild the committed models from scratch: both trainings, then both exports.

    python -m models.reproduce [--data DIR] [--only dctlink|dncnn]

Runs the exact training runs behind ``models/MODEL_CARD.md`` (same options, seeds and step
counts, each run to its full ``--steps``) and exports
``models/dctlink-residual-v1.onnx`` and ``out/export/dncnn-baseline.onnx``. Each run resumes
from its ``last.pt`` when interrupted, so it can span sessions. On one CPU thread each, as the
originals ran (side by side on this 2-core machine), expect about an hour per network.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from models import export, train

REPO = Path(__file__).resolve().parents[1]

#: The runs behind the committed model card: ``python -m models.train`` arguments.
RUNS: dict[str, list[str]] = {
    "dctlink": [
        "--arch", "dctlink", "--batch", "8", "--lr", "2e-4", "--epsilon", "0.05",
        "--steps", "4000", "--epoch-steps", "500", "--threads", "1",
    ],
    "dncnn": [
        "--arch", "dncnn", "--batch", "8", "--lr", "2e-4", "--epsilon", "0.05",
        "--steps", "200", "--epoch-steps", "50", "--threads", "1",
    ],
}  # fmt: skip

EXPORTS = {
    "dctlink": REPO / "models" / "dctlink-residual-v1.onnx",
    "dncnn": REPO / "out" / "export" / "dncnn-baseline.onnx",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.reproduce", description=__doc__)
    parser.add_argument("--data", type=Path, default=train.DEFAULT_DATA)
    parser.add_argument("--only", choices=sorted(RUNS), default=None)
    args = parser.parse_args(argv)
    for name, options in RUNS.items():
        if args.only not in (None, name):
            continue
        out = REPO / "out" / "train" / name
        train.main([*options, "--data", str(args.data), "--out", str(out), "--resume"])
        if export.main([str(out / "best.pt"), str(EXPORTS[name])]) != 0:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
