"""The committed priors of coder 2's models, fitted offline (models/fit_priors.py) on
../shared/datasets/train, never on Kodak.

Encoder and decoder must start from the same tables, so they are package data with a version
number; a model whose table is missing or has another shape starts flat (the tests check that
every committed table fits its model, so that never happens silently)."""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from pathlib import Path

import numpy as np
import numpy.typing as npt

from shared.codec.adaptive import uniform_prior

#: The priors' version; payload v2 names it, so a decoder refuses tables it does not have.
PRIORS_VERSION = 1
_FILE = f"coder2-priors-v{PRIORS_VERSION}.npz"


def table_path() -> Path:
    """Where the committed tables live (package data, so every install has them)."""
    return Path(str(files("shared.codec") / "tables" / _FILE))


@cache
def _tables() -> dict[str, npt.NDArray[np.uint16]]:
    path = table_path()
    if not path.is_file():
        return {}
    with np.load(path) as data:
        return {name: data[name] for name in data.files}


def prior(name: str, contexts: int, symbols: int) -> npt.NDArray[np.int64]:
    table = _tables().get(name)
    if table is None or table.shape != (contexts, symbols):
        return uniform_prior(contexts, symbols)
    return table.astype(np.int64)
