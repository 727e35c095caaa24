"""Recovery: what the receiver rebuilds from a decoded payload, stage by stage.

``received`` is the codec's zero-filled preview, ``classical`` the interval-constrained
reconstruction (:mod:`.classical`, with global DC estimation for the ``paper`` profile), and
``enhanced`` the ONNX residual network on top of it (:mod:`.network`), or None while no model
is installed. Where the model's gate (:mod:`.gate`, a sidecar JSON next to the ``.onnx``) says
the network makes a kind of payload worse, ``enhanced`` is the classical image and
``enhanced_note`` says why. The service calls :class:`Recovery` only::

    recovery = Recovery(threads=2)  # the packaged model, or model_path=Path("my.onnx")
    stages = recovery.run(decode(payload))
    stages.classical, stages.enhanced, stages.timings_s, stages.model_version
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from cloud_receiver.recovery.budget import Budget, estimate, over_memory, over_time
from cloud_receiver.recovery.classical import Deadline, SmoothingParameters, recover
from cloud_receiver.recovery.gate import Gate, load_gate, sidecar_path
from cloud_receiver.recovery.network import ModelUnavailableError, NetworkStage, load_stage
from shared.codec import DcMode, Decoded, ProfileKind

if TYPE_CHECKING:
    from cloud_receiver.config import RecoverySettings

__all__ = ["DEFAULT_MODEL_PATH", "Budget", "Recovery", "Stages", "smoothing_for"]

#: The trained network, package data beside this module (``weights/``; ``models/`` links to it
#: and holds its training code), so a checkout, a wheel and the Docker image resolve one file.
DEFAULT_MODEL_PATH = Path(str(files(__name__) / "weights" / "dctlink-residual-v3.onnx"))


@dataclass(frozen=True)
class Stages:
    """The reconstructions of one payload; images are HxWx3 uint8, or HxW for gray payloads.

    ``model_version`` names the loaded model whether or not it ran on this payload: when the
    gate kept it off, ``enhanced`` is ``classical`` itself, ``enhanced_note`` says why (and
    ``timings_s`` has no ``enhanced`` entry, since nothing ran). ``enhanced_note`` is None
    whenever the network did run, or when there is no network (then ``enhanced`` is None and
    ``enhanced_unavailable_reason`` says why).
    """

    received: npt.NDArray[np.uint8]
    classical: npt.NDArray[np.uint8]
    enhanced: npt.NDArray[np.uint8] | None
    timings_s: dict[str, float] = field(default_factory=dict)
    model_version: str | None = None
    enhanced_unavailable_reason: str | None = None
    enhanced_note: str | None = None
    #: Stages the budget left out (``classical`` then holds the received image), and why.
    skipped: dict[str, str] = field(default_factory=dict)

    def pixels(self) -> dict[str, npt.NDArray[np.uint8]]:
        """Each stage that has a picture of its own, by stage name, in pipeline order.

        A stage the budget skipped, or a network that is not there, has none: what the store
        keeps, the API serves and ``cloud-receiver decode`` writes.
        """
        pixels = {"received": self.received}
        if "classical" not in self.skipped:
            pixels["classical"] = self.classical
        if self.enhanced is not None:
            pixels["enhanced"] = self.enhanced
        return pixels


def smoothing_for(decoded: Decoded, iterations: int | None = None) -> SmoothingParameters | None:
    """The classical step's parameters for this payload; None means pass the preview through.

    ``iterations`` overrides the default (0 keeps only the projection, and the DC
    estimate of anchored payloads).
    """
    defaults = SmoothingParameters()
    if decoded.profile is ProfileKind.LOSSLESS:
        # Every coefficient arrived: the smoothing only moves them inside their intervals, and
        # on the training set that lowered PSNR (lossless q75: 32.50 -> 31.98 dB).
        return None
    if decoded.profile in (ProfileKind.AUTO, ProfileKind.ADAPTIVE):
        defaults = rd_optimised_smoothing(float(decoded.tables[0].mean()))
    if iterations is None:
        return defaults
    return SmoothingParameters(iterations, defaults.step, defaults.epsilon, defaults.interval)


def rd_optimised_smoothing(mean_luma_step: float) -> SmoothingParameters:
    """Gentler smoothing for payloads whose encoder chose its own tables (auto, adaptive).

    Their fine steps leave little for the prior to fix, and the default step and interval
    then flatten real texture. Measured on 6 halved training photographs (classical minus
    received PSNR, mean / worst): at auto q90 (mean luma step 12) the defaults gave +0.000 /
    -0.150 dB, step 1 with 0.15 of the interval +0.086 / -0.044 dB; at q75 (step 23) +0.103 /
    -0.044 against +0.166 / +0.046 dB; at q30 (step 48) step 2 with 0.2 of the interval gave
    +0.226 / +0.127 dB against the defaults' +0.211 / +0.100 dB.
    """
    step = min(max(mean_luma_step / 20, 1.0), 2.5)
    interval = 0.15 if mean_luma_step < 30 else 0.2
    return replace(SmoothingParameters(), step=step, interval=interval)


class Recovery:
    """Runs every recovery stage on a decoded payload; load once, call :meth:`run` per image."""

    def __init__(
        self, *, iterations: int | None = None, model_path: Path | None = None, threads: int = 1
    ) -> None:
        self._iterations = iterations
        path = model_path if model_path is not None else DEFAULT_MODEL_PATH
        self._network: NetworkStage | None = None
        self._gate: Gate | None = None
        self._unavailable: str | None = None
        try:
            network = load_stage(path, threads=threads)
            # No sidecar: the network runs on every payload, as before gates existed.
            self._gate = load_gate(sidecar_path(path), network.version)
            self._network = network
        except ModelUnavailableError as error:
            self._unavailable = error.reason

    @classmethod
    def from_settings(cls, settings: RecoverySettings) -> Recovery:
        """The recovery the receiver's settings describe (service, ``decode``, ``reprocess``)."""
        return cls(
            iterations=settings.iterations, model_path=settings.model_path, threads=settings.threads
        )

    @property
    def network_available(self) -> bool:
        return self._network is not None

    @property
    def network_detail(self) -> str:
        if self._network is not None:
            skipped = self._gate.skipped if self._gate is not None else ()
            off = f"; gated off for {', '.join(skipped)}" if skipped else ""
            return f"model {self._network.version} loaded{off}"
        return self._unavailable or "network stage unavailable"

    @property
    def model_version(self) -> str | None:
        return self._network.version if self._network is not None else None

    def run(self, decoded: Decoded, budget: Budget | None = None) -> Stages:
        """Every stage of ``decoded``; with a ``budget``, only the stages it allows.

        The received stage always runs (the caller refuses a payload whose received stage
        would not fit, :func:`.budget.estimate`). Classical and the network run when their
        estimates fit the memory budget and the seconds left; classical smoothing also stops
        at the deadline. What is left out is in ``skipped``, with the reason.
        """
        timings: dict[str, float] = {}
        skipped: dict[str, str] = {}
        began = time.monotonic()
        cost = estimate(
            decoded.width,
            decoded.height,
            decoded.layout,
            dc_missing=any(k.dc_mode is not DcMode.ALL for k in decoded.retention),
        )
        start = time.perf_counter()
        received = decoded.to_rgb()
        timings["received"] = time.perf_counter() - start
        parameters = smoothing_for(decoded, self._iterations)
        classical = received
        deadline = Deadline(None if budget is None else began + budget.seconds)
        why = None
        if parameters is not None and budget is not None:
            why = over_memory("classical recovery", cost.classical_bytes, budget) or over_time(
                "classical recovery", cost.classical_seconds, budget.seconds, budget
            )
        if why is not None:
            skipped["classical"] = why
        else:
            start = time.perf_counter()
            if parameters is not None:
                classical = recover(decoded, parameters, deadline)
            timings["classical"] = time.perf_counter() - start
        enhanced = None
        note = self._gate.skip_note(decoded) if self._gate is not None else None
        if self._network is not None and note is not None:
            if "classical" in skipped:  # the gate would pass classical on: it is not there
                skipped["enhanced"] = "the classical stage it passes on was skipped"
            else:
                enhanced = classical
        elif self._network is not None:
            why = self._network_refusal(cost.enhanced_bytes, cost.enhanced_seconds, began, budget)
            if deadline.hit:
                why = "the recovery budget ran out during classical smoothing, cut short"
            elif "classical" in skipped:
                why = "the classical stage it refines was skipped"
            if why is not None:
                skipped["enhanced"] = why
            else:
                start = time.perf_counter()
                enhanced = self._network.enhance(classical, decoded)
                timings["enhanced"] = time.perf_counter() - start
        if deadline.hit and self._network is None:
            skipped.setdefault(
                "enhanced", "the recovery budget ran out during classical smoothing, cut short"
            )
        return Stages(
            received=received,
            classical=classical,
            enhanced=enhanced,
            timings_s=timings,
            model_version=self.model_version,
            enhanced_unavailable_reason=self._unavailable,
            enhanced_note=note if enhanced is not None else None,
            skipped=skipped,
        )

    @staticmethod
    def _network_refusal(
        needed_bytes: int, needed_s: float, began: float, budget: Budget | None
    ) -> str | None:
        if budget is None:
            return None
        left = budget.seconds - (time.monotonic() - began)
        return over_memory("the network", needed_bytes, budget) or over_time(
            "the network", needed_s, max(left, 0.0), budget
        )
