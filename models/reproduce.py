"""Rebuild the committed model from scratch: the training run, then the export.

    python -m models.reproduce [--data DIR]

Runs the exact training run behind ``models/MODEL_CARD.md`` (same options and seed, to its full
``--steps``) into ``out/train/dctlink-v2``, then exports ``best.pt``: the float model the
receiver ships to ``models/dctlink-residual-v2.onnx``, and the static int8 model, which
ONNX Runtime's int8 measurement scores, to ``out/export/dctlink-residual-v2-int8.onnx``. Rerun
``python -m models.gate`` afterwards. It never starts from the committed
checkpoint (that is what ``python -m models.train --resume`` continues from), but it resumes
its own ``last.pt`` when interrupted, so it can span sessions. Building the pair cache takes
about 9 minutes and the run about 90 minutes on this 2-core machine.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from models import degrade, export, train

REPO = Path(__file__).resolve().parents[1]

#: The run behind the committed model card: ``python -m models.train`` arguments.
RUN: list[str] = ["--arch", "dctlink", "--steps", "30000", "--threads", "2"]
OUT = REPO / "out" / "train" / "dctlink-v2"
SHIPPED = REPO / "models" / "dctlink-residual-v2.onnx"
INT8 = REPO / "out" / "export" / "dctlink-residual-v2-int8.onnx"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.reproduce", description=__doc__)
    parser.add_argument("--data", type=Path, default=degrade.DEFAULT_DATA)
    args = parser.parse_args(argv)
    options, _ = train.parse([*RUN, "--data", str(args.data), "--out", str(OUT)])
    train.train(options, resume=True, fallback=None)
    return export.main([str(OUT / "best.pt"), str(SHIPPED), "--int8", "--int8-out", str(INT8)])


if __name__ == "__main__":
    sys.exit(main())
