"""Rebuild the committed model from scratch: the training stretches, the quantisation-aware
fine-tune, then the export.

    python -m models.reproduce [--data DIR]

Runs the exact training stretches behind ``models/MODEL_CARD.md`` (same options and seed, each
to its full ``--steps``) one after the other: the first two into ``out/train/dctlink-v2``, the
third, which grows that network to 8 residual blocks, into ``out/train/dctlink-v3``. Then
:mod:`models.qat` from the last stretch's ``last.pt`` (what ``models/checkpoints/dctlink-v3.pt``
holds) into ``out/train/dctlink-v3-qat``, and exports its ``best.pt``: the static int8 model
the receiver ships to ``models/<VERSION>.onnx``, and the float model it was made from to
``out/export/<VERSION>-float.onnx``. Rerun ``python -m models.gate`` afterwards. It never
starts from the committed checkpoint (that is what ``python -m models.train --resume``
continues from), but it resumes its own ``last.pt`` when interrupted, so it can span
sessions. The first two stretches build their own pair cache (6-9 minutes); the stretches
take about 105, 85 and 100 minutes on this 2-core machine, the fine-tune 5.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from models import degrade, export, qat, train

REPO = Path(__file__).resolve().parents[1]

#: The stretches behind the committed model card, in order: ``python -m models.train``
#: arguments. The first trained on ``auto`` and ``adaptive`` only; the second, resumed from
#: it with a longer cosine schedule, added ``lossless`` payloads.
STRETCHES: list[list[str]] = [
    ["--steps", "30000", "--mix", "auto=0.8,adaptive=0.2"],
    ["--steps", "58000", "--mix", "auto=0.7,adaptive=0.15,lossless=0.15"],
]
#: The third stretch grows the second's network from 6 to 8 residual blocks
#: (``models.train --init-from``), on the second's mix, in its own folder. It ran its first
#: 7,000 steps under a 22,000-step schedule and was then resumed with a 26,000-step one; both
#: runs are replayed, so the schedule is the same step for step.
GROWN: list[list[str]] = [
    ["--blocks", "8", "--lr", "2e-4", "--steps", "22000", "--stop-at", "7000"],
    ["--blocks", "8", "--lr", "2e-4", "--steps", "26000"],
]
COMMON: list[str] = ["--arch", "dctlink", "--threads", "2"]
VERSION = "dctlink-residual-v3"
OUT = REPO / "out" / "train" / "dctlink-v2"
GROWN_OUT = REPO / "out" / "train" / "dctlink-v3"
QAT_OUT = REPO / "out" / "train" / "dctlink-v3-qat"
SHIPPED = REPO / "models" / f"{VERSION}.onnx"
FLOAT = REPO / "out" / "export" / f"{VERSION}-float.onnx"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.reproduce", description=__doc__)
    parser.add_argument("--data", type=Path, default=degrade.DEFAULT_DATA)
    args = parser.parse_args(argv)
    for stretch in STRETCHES:
        run = [*COMMON, *stretch, "--data", str(args.data), "--out", str(OUT)]
        options, _ = train.parse(run)
        train.train(options, resume=True, fallback=None)
    for run in GROWN:
        grow = ["--init-from", str(OUT / "last.pt"), "--out", str(GROWN_OUT)]
        options, _ = train.parse([*COMMON, *run, "--data", str(args.data), *grow])
        train.train(options, resume=True, fallback=None)
    # The fine-tune behind the shipped int8 model (MODEL_CARD.md, "Export and quantisation").
    qat.fine_tune(
        GROWN_OUT / "last.pt",
        QAT_OUT,
        steps=4000,
        lr=2e-5,
        epoch_steps=500,
        minutes=None,
        stop_at=500,
    )
    best = str(QAT_OUT / "best.pt")
    int8 = ["--int8", "--int8-out", str(SHIPPED)]
    return export.main([best, str(FLOAT), "--version", VERSION, *int8])


if __name__ == "__main__":
    sys.exit(main())
