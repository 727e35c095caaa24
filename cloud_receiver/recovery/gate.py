"""The network gate: on which payloads the network stage runs, as data next to the model.

A network trained on some payloads can make others worse than the classical image it starts
from (``dctlink-residual-v3`` saw ``auto``, ``adaptive`` and ``lossless`` payloads in
training, never ``lowpass`` or ``paper``). The
gate is a sidecar JSON file, ``<model>.gate.json`` beside ``<model>.onnx``, written by
``python -m models.gate`` from a measurement on the held-out training photographs. Each rule
names a profile kind (and, where the payload carries one, a quality range), whether the
network is applied there, and the mean gain over classical that decided it::

    {"format": "dctlink-gate/1", "model_version": "dctlink-residual-v3", "min_gain_db": 0.0,
     "validation": "5 held-out training photographs (045.png-049.png), 512-pixel centre crops",
     "command": "python -m models.gate",
     "rules": [{"profile": "auto", "quality_min": 26, "quality_max": 35, "apply": false,
                "psnr_gain_db": -0.12, "ssim_gain": -0.0004, "measured_at": "auto-q30"}, ...]}

A rule with ``"trained": false`` covers a profile kind the network never saw in training: it
is off whatever the validation measured there, because a gain on a handful of held-out crops
did not carry over to other photographs for such kinds (v2 gained +0.45 dB on ``lossless``
validation crops and lost 0.79 dB on Kodak at quality 30 before it was trained on them).

The first rule that matches a payload decides; a payload no rule matches gets the network, and
so does every payload when there is no sidecar (the behaviour before gates existed). A sidecar
that cannot be read, or that was measured for another model version, makes the network stage
unavailable with the reason: its decisions say nothing about the model actually loaded, and
serving a model where it was measured to do harm is what the gate exists to prevent.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cloud_receiver.recovery.network import ModelUnavailableError
from shared.codec import Decoded, ProfileKind

__all__ = ["FORMAT", "Gate", "GateRule", "load_gate", "sidecar_path"]

FORMAT = "dctlink-gate/1"
_PROFILES = frozenset(kind.name.lower() for kind in ProfileKind)


def _decibels(value: float) -> str:
    # Three decimals, unless that would print a measured loss as "-0.000 dB".
    return f"{value:+.3f} dB" if abs(value) >= 0.0005 or value == 0 else f"{value:+.5f} dB"


def sidecar_path(model_path: Path) -> Path:
    """Where the gate of the model at ``model_path`` lives: ``x.onnx`` -> ``x.gate.json``."""
    return model_path.with_suffix(".gate.json")


@dataclass(frozen=True)
class GateRule:
    """One decision: the network on or off for a profile kind, optionally a quality range.

    ``quality_min`` / ``quality_max`` (inclusive) match :attr:`Decoded.quality`, which for
    ``auto`` is the quality promised; a rule with a range never matches a payload without a
    quality (custom tables). ``psnr_gain_db`` and ``ssim_gain`` are the measured mean gains of
    enhanced over classical on ``measured_at`` (the rate points the rule stands for).
    """

    profile: str
    apply: bool
    psnr_gain_db: float
    ssim_gain: float | None = None
    quality_min: int | None = None
    quality_max: int | None = None
    measured_at: str = ""
    trained: bool = True  # false: the network never saw this kind in training

    def __post_init__(self) -> None:
        if self.profile not in _PROFILES:
            raise ValueError(
                f"unknown profile {self.profile!r}; expected one of {sorted(_PROFILES)}"
            )
        # JSON gives no types; a string "false" here would silently read as true.
        for flag in ("apply", "trained"):
            if not isinstance(getattr(self, flag), bool):
                raise ValueError(f"{flag} must be true or false, got {getattr(self, flag)!r}")
        if self.apply and not self.trained:
            raise ValueError(
                f"the network is never applied to {self.profile}, a kind it was not trained on"
            )
        low, high = self.quality_min or 1, self.quality_max or 100
        if not 1 <= low <= high <= 100:
            raise ValueError(f"bad quality range {self.quality_min}..{self.quality_max}")

    @property
    def ranged(self) -> bool:
        return self.quality_min is not None or self.quality_max is not None

    def matches(self, decoded: Decoded) -> bool:
        if decoded.profile.name.lower() != self.profile:
            return False
        if not self.ranged:
            return True
        if decoded.quality is None:
            return False
        return (self.quality_min or 1) <= decoded.quality <= (self.quality_max or 100)

    @property
    def scope(self) -> str:
        """The payloads this rule covers, in words ("auto payloads of quality 26-35")."""
        if not self.ranged:
            return f"{self.profile} payloads"
        return (
            f"{self.profile} payloads of quality {self.quality_min or 1}-{self.quality_max or 100}"
        )


@dataclass(frozen=True)
class Gate:
    """The rules of one model's sidecar; :meth:`skip_note` is what :class:`Recovery` asks."""

    model_version: str
    rules: tuple[GateRule, ...]
    min_gain_db: float = 0.0
    validation: str = ""
    command: str = "python -m models.gate"

    def rule_for(self, decoded: Decoded) -> GateRule | None:
        return next((rule for rule in self.rules if rule.matches(decoded)), None)

    def skip_note(self, decoded: Decoded) -> str | None:
        """None when the network runs on ``decoded``; else why it does not, for the metadata."""
        rule = self.rule_for(decoded)
        if rule is None or rule.apply:
            return None
        where = "on the validation photographs"
        if rule.measured_at:
            where += f" at {rule.measured_at}"
        gain = _decibels(rule.psnr_gain_db)
        if not rule.trained:
            return (
                f"network skipped: it was not trained on {rule.profile} payloads"
                f" (it measured {gain} {where}, which is not trusted for such kinds)"
            )
        if rule.psnr_gain_db < 0:
            return f"network skipped: it lowers PSNR on {rule.scope} ({gain} {where})"
        return (
            f"network skipped: it gains only {gain} on {rule.scope} ({where}),"
            f" not above the gate's {_decibels(self.min_gain_db)}"
        )

    @property
    def skipped(self) -> tuple[str, ...]:
        """The scopes where the network is off, for the readiness detail."""
        return tuple(rule.scope for rule in self.rules if not rule.apply)

    def to_json(self) -> str:
        body: dict[str, Any] = {
            "format": FORMAT,
            "model_version": self.model_version,
            "min_gain_db": self.min_gain_db,
            "validation": self.validation,
            "command": self.command,
            "rules": [asdict(rule) for rule in self.rules],
        }
        return json.dumps(body, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Gate:
        """Parse a sidecar; raises ValueError (or KeyError / TypeError) when it is malformed."""
        body = json.loads(text)
        if not isinstance(body, dict) or body.get("format") != FORMAT:
            raise ValueError(f'expected an object with "format": "{FORMAT}"')
        rules = body["rules"]
        if not isinstance(rules, list):
            raise ValueError('"rules" must be a list')
        return cls(
            model_version=str(body["model_version"]),
            rules=tuple(GateRule(**rule) for rule in rules),
            min_gain_db=float(body.get("min_gain_db", 0.0)),
            validation=str(body.get("validation", "")),
            command=str(body.get("command", "python -m models.gate")),
        )


def load_gate(path: Path, model_version: str) -> Gate | None:
    """The gate at ``path`` for the model ``model_version``; None when there is no file.

    Raises :class:`ModelUnavailableError` for a file that cannot be parsed or that belongs to
    another model version (see the module docstring for why that turns the network off).
    """
    if not path.is_file():
        return None
    try:
        gate = Gate.from_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ModelUnavailableError(f"cannot read the network gate {path}: {error}") from error
    if gate.model_version != model_version:
        raise ModelUnavailableError(
            f"the network gate {path} was measured for model {gate.model_version!r}, not"
            f" {model_version!r}: rerun `python -m models.gate` or remove the file"
        )
    return gate
