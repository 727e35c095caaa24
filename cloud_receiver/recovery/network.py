"""The network stage: an ONNX model run by ONNX Runtime behind one runner interface.

Input contract (what a model for this stage must accept; the training issue follows it)
---------------------------------------------------------------------------------------

Two float32 inputs, NCHW, batch 1, any height and width that are multiples of 8 (the runner
pads tiles by edge replication to get there); the model must be fully convolutional:

``image``  ``[1, 3, H, W]``
    The classical reconstruction in [0, 1] (uint8 / 255), RGB. A gray payload goes in as three
    equal channels: that is exactly the colour image whose chroma is neutral, so one model
    serves both (the runner averages the three output channels back to one).
``condition``  ``[1, 6, H, W]``
    Two maps per coded plane, Y, Cb and Cr, at image resolution (4:2:0 chroma maps repeated
    2x2), constant over each 8x8 block of the plane:

    * channel ``2 p``: the quantisation step of the plane, the mean of its 64 steps / 255;
    * channel ``2 p + 1``: the fraction of that block's 64 coefficients that were received
      (keep / 64, less 1/64 where the block's DC did not travel).

    A gray payload's chroma is known exactly (neutral), so its chroma maps say step 0 and
    everything received. These tell one model which profile, quality and retention produced
    the image.

One float32 output, ``enhanced`` ``[1, 3, H, W]``: the enhanced image in [0, 1] (a residual
network adds its residual inside the graph). The runner clips it to [0, 1] and rounds to uint8.

The model version is the ``version`` entry of the ONNX ``metadata_props``; failing that, the
file name without ``.onnx``.

Large images are cut into overlapping tiles (``tile`` pixels a side, ``overlap`` shared with
each neighbour), so memory stays bounded whatever the image size; each tile contributes only
its centre, so a receptive field up to ``overlap`` pixels sees the same context as it would on
the whole image.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt
import onnxruntime as ort  # type: ignore[import-untyped]  # ships no type information

from shared.codec import DcMode, Decoded, Layout
from shared.codec.coefficients import plane_blocks

Float = npt.NDArray[np.float32]
Pixels = npt.NDArray[np.uint8]

#: Tile geometry: multiples of 8 so a model with three 2x downsamplings sees whole pixels.
MULTIPLE = 8
#: Tile origins fall on multiples of the 4:2:0 macroblock, the coding grid of every layout.
GRID = 16
#: 1024 keeps a 768x512 image in one tile: at 512 the overlapping tiles cost 1.35x the compute
#: (bench.recovery, 2 threads: 235 ms -> 174 ms for the network stage).
DEFAULT_TILE = 1024
DEFAULT_OVERLAP = 32


class ModelUnavailableError(Exception):
    """The network stage cannot run; ``reason`` says why and what to do."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Runner(Protocol):
    """One inference backend: named float32 arrays in, named float32 arrays out."""

    version: str
    metadata: Mapping[str, str]  # the model's own entries (ONNX metadata_props)

    def run(self, inputs: Mapping[str, Float]) -> dict[str, Float]: ...


class OnnxRunner:
    """An ONNX model in an ONNX Runtime session, warmed up at load."""

    def __init__(
        self,
        path: Path,
        *,
        providers: tuple[str, ...] = ("CPUExecutionProvider",),
        threads: int = 1,
        warmup_shape: tuple[int, int] = (64, 64),
    ) -> None:
        if not path.is_file():
            raise ModelUnavailableError(f"no model file at {path}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        try:
            self._session = ort.InferenceSession(
                str(path), sess_options=options, providers=list(providers)
            )
        except Exception as error:  # ORT raises its own untyped errors for bad files
            raise ModelUnavailableError(f"cannot load {path}: {error}") from error
        metadata = self._session.get_modelmeta().custom_metadata_map
        self.metadata: Mapping[str, str] = dict(metadata)
        self.version: str = metadata.get("version") or path.stem
        self.input_names = tuple(i.name for i in self._session.get_inputs())
        self.output_names = tuple(o.name for o in self._session.get_outputs())
        self.warmup_s = self._warm_up(warmup_shape)

    def _warm_up(self, shape: tuple[int, int]) -> float:
        # The first run allocates and plans; doing it here keeps it out of the first image's
        # latency and fails loudly at load when the model does not fit the contract.
        inputs: dict[str, Float] = {}
        for spec in self._session.get_inputs():
            channels = spec.shape[1] if isinstance(spec.shape[1], int) else 1
            inputs[spec.name] = np.zeros((1, channels, *shape), dtype=np.float32)
        start = time.perf_counter()
        try:
            self.run(inputs)
        except Exception as error:
            raise ModelUnavailableError(f"model failed its warm-up run: {error}") from error
        return time.perf_counter() - start

    def run(self, inputs: Mapping[str, Float]) -> dict[str, Float]:
        outputs = self._session.run(list(self.output_names), dict(inputs))
        return {
            name: np.asarray(value, dtype=np.float32)
            for name, value in zip(self.output_names, outputs, strict=True)
        }


def conditioning(decoded: Decoded) -> Float:
    """The ``condition`` input ``[1, 6, H, W]`` of the contract above, cropped to the image."""
    maps: list[Float] = []
    blocks = plane_blocks(decoded.width, decoded.height, decoded.layout)
    for (by, bx), table, kept in zip(blocks, decoded.tables, decoded.retention, strict=True):
        scale = 16 if decoded.layout is Layout.YCBCR420 and maps else 8
        step = np.full((by, bx), float(np.mean(table)) / 255.0, dtype=np.float32)
        received = np.full((by, bx), kept.keep / 64.0, dtype=np.float32)
        if kept.dc_mode is not DcMode.ALL:
            received -= (~kept.anchor_mask(by, bx)).astype(np.float32) / 64.0
        for block_map in (step, received):
            full = np.repeat(np.repeat(block_map, scale, axis=0), scale, axis=1)
            maps.append(full[: decoded.height, : decoded.width])
    if decoded.layout is Layout.GRAY:
        exact = np.zeros((decoded.height, decoded.width), dtype=np.float32)
        maps += [exact, exact + 1, exact, exact + 1]
    return np.stack(maps)[None]


def network_inputs(classical: Pixels, decoded: Decoded) -> dict[str, Float]:
    """Both inputs of the contract for one image (HxWx3, or HxW for gray payloads)."""
    image = classical.astype(np.float32) / np.float32(255)
    # Gray goes in as three equal channels (see the contract above).
    image = np.repeat(image[None], 3, axis=0) if image.ndim == 2 else image.transpose(2, 0, 1)
    return {"image": np.ascontiguousarray(image[None]), "condition": conditioning(decoded)}


def network_pixels(enhanced: Float, gray: bool) -> Pixels:
    """The ``enhanced`` output ``[1, 3, H, W]`` as uint8 pixels shaped like the input."""
    image = enhanced[0].mean(axis=0) if gray else enhanced[0].transpose(1, 2, 0)
    return np.ascontiguousarray(np.clip(np.rint(image * 255), 0, 255).astype(np.uint8))


def _spans(length: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """Tile extents along one axis: starts on the coding grid, the last tile reaching the end.

    Every start is a multiple of :data:`GRID` so each tile sees the 8x8 blocks (and 4:2:0
    macroblocks) at the phase the network was trained on; the last tile therefore starts at
    or before ``length - tile`` and runs to the end (up to ``GRID - 1`` pixels longer).
    """
    if length <= tile:
        return [(0, length)]
    stride = (tile - 2 * overlap) // GRID * GRID
    last = (length - tile) // GRID * GRID
    return [*((s, s + tile) for s in range(0, last, stride)), (last, length)]


def _pad_to_multiple(array: Float) -> Float:
    h, w = array.shape[2:]
    pad = ((0, 0), (0, 0), (0, -h % MULTIPLE), (0, -w % MULTIPLE))
    return np.pad(array, pad, mode="edge") if pad[2][1] or pad[3][1] else array


def run_tiled(
    runner: Runner,
    inputs: Mapping[str, Float],
    output: str,
    *,
    tile: int = DEFAULT_TILE,
    overlap: int = DEFAULT_OVERLAP,
) -> Float:
    """Run ``runner`` over overlapping spatial tiles of NCHW ``inputs``; stitch ``output``.

    Each output pixel comes from the tile where it lies farthest from a cut (at least
    ``overlap`` pixels inside, except at the image border).
    """
    if tile % GRID or tile - 2 * overlap < GRID:
        raise ValueError(f"tile {tile} must be a multiple of {GRID} and >= 2 * overlap + {GRID}")
    h, w = next(iter(inputs.values())).shape[2:]
    result: Float | None = None
    for top, bottom in _spans(h, tile, overlap):
        for left, right in _spans(w, tile, overlap):
            window = {
                name: _pad_to_multiple(a[:, :, top:bottom, left:right])
                for name, a in inputs.items()
            }
            out = runner.run(window)[output][:, :, : bottom - top, : right - left]
            if result is None:
                result = np.empty((out.shape[0], out.shape[1], h, w), dtype=np.float32)
            # Keep the tile's centre: each tile owns what lies ``overlap`` pixels past its cut.
            y0 = 0 if top == 0 else overlap
            x0 = 0 if left == 0 else overlap
            result[:, :, top + y0 : bottom, left + x0 : right] = out[:, :, y0:, x0:]
    assert result is not None  # _starts always yields at least one tile
    return result


@dataclass(frozen=True)
class NetworkStage:
    """The enhancement stage: classical image + conditioning -> enhanced image."""

    runner: Runner
    tile: int = DEFAULT_TILE
    overlap: int = DEFAULT_OVERLAP

    @property
    def version(self) -> str:
        return self.runner.version

    @property
    def trained_kinds(self) -> frozenset[str] | None:
        """The profile kinds the model was trained on, where its metadata says (export does)."""
        kinds = self.runner.metadata.get("trained_kinds")
        return None if kinds is None else frozenset(k for k in kinds.split(",") if k)

    def enhance(self, classical: Pixels, decoded: Decoded) -> Pixels:
        inputs = network_inputs(classical, decoded)
        out = run_tiled(self.runner, inputs, "enhanced", tile=self.tile, overlap=self.overlap)
        return network_pixels(out, gray=classical.ndim == 2)


def load_stage(
    path: Path,
    *,
    providers: tuple[str, ...] = ("CPUExecutionProvider",),
    threads: int = 1,
    tile: int = DEFAULT_TILE,
    overlap: int = DEFAULT_OVERLAP,
) -> NetworkStage:
    """The network stage for the model at ``path``; raises :class:`ModelUnavailableError`."""
    runner = OnnxRunner(path, providers=providers, threads=threads)
    return NetworkStage(runner, tile, overlap)
