"""The sender's one settings class (docs/architecture.md section 6).

Every option is an environment variable ``DCTLINK_EDGE__<SECTION>__<NAME>`` (for example
``DCTLINK_EDGE__BROKER__URL``) and a command-line flag; flags override the environment and
the defaults run against a local broker with no configuration at all.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from service_common import broker
from service_common.broker import Section, check_topic_level
from service_common.logs import LogFormat, LogLevel

ENV_PREFIX = "DCTLINK_EDGE__"


class BrokerSettings(broker.BrokerSettings):
    """The common broker options (protocol among them), then the sender's: certificate, flow."""

    username: str | None = Field(default=None, description="MQTT username (usually the device id)")
    cert_file: Path | None = Field(default=None, description="Client certificate for mutual TLS")
    key_file: Path | None = Field(default=None, description="Private key of the client certificate")
    max_message_bytes: int = Field(
        default=128 * 1024,
        ge=1024,
        description="Largest MQTT message; bigger payloads travel as chunks",
    )
    max_inflight: int = Field(
        default=16, ge=1, le=1000, description="Messages published but not yet acknowledged"
    )
    reconnect_min_s: float = Field(
        default=1.0,
        gt=0,
        description="First delay before reconnecting, or before publishing again after a"
        " temporary refusal (quota exceeded, server busy)",
    )
    reconnect_max_s: float = Field(
        default=60.0, gt=0, description="Longest such delay; each retry doubles it up to this"
    )

    @property
    def client_certificate(self) -> tuple[Path, Path] | None:
        if self.cert_file is None or self.key_file is None:
            return None
        return self.cert_file, self.key_file


class SpoolSettings(Section):
    path: Path = Field(
        default=Path("dctlink-spool.sqlite3"), description="SQLite file of the durable spool"
    )
    max_bytes: int = Field(
        default=512 * 1024 * 1024,
        ge=1024,
        description="Spool size bound; when full the oldest image is dropped (and counted)",
    )


class EncodeSettings(Section):
    """How frames become payloads.

    ``quality`` is one libjpeg quality for every profile, so the same number means the same
    picture wherever it can: for ``auto`` it is a promise (the receiver's picture is at least
    as good as a libjpeg JPEG at that quality); for lowpass, paper and lossless it scales their
    Annex K tables, as libjpeg does (lossless at 75 is exactly the JPEG at 75; lowpass and
    paper keep fewer coefficients, so their picture is worse than that JPEG). Its default is
    75, libjpeg's own; before ``auto`` it was 90, so set 90 to keep the old lowpass/lossless
    payloads. adaptive ignores it (its knob is ``max_bytes``).
    """

    profile: Literal["auto", "lowpass", "paper", "adaptive", "lossless"] = Field(
        default="auto",
        description="Retention profile: auto, lowpass, paper, adaptive or lossless"
        " (docs/architecture.md section 2); auto meets the quality in the fewest bytes",
    )
    quality: int = Field(
        default=75,
        ge=1,
        le=100,
        description="libjpeg quality: auto promises a picture at least as good as a JPEG at it;"
        " lowpass, paper and lossless scale their tables by it; adaptive ignores it",
    )
    luma_keep: int = Field(default=15, ge=1, le=64, description="lowpass: luma bands kept")
    chroma_keep: int = Field(default=6, ge=1, le=64, description="lowpass: chroma bands kept")
    anchor_every: int = Field(default=8, ge=1, le=255, description="paper: DC anchor spacing")
    max_bytes: int = Field(default=20000, ge=64, description="adaptive: byte budget per image")
    use_source_tables: bool = Field(
        default=True,
        description="For JPEG input, quantise with the file's own tables (lowpass, lossless;"
        " auto picks its own)",
    )
    coder: Literal[1, 2] = Field(
        default=1,
        description="Entropy coder: 1 (payload v1, fast) or 2 (payload v2, context-modelled"
        " rANS: about 6 % fewer bytes for several times the coding CPU; in progress)",
    )

    @field_validator("coder", mode="before")
    @classmethod
    def _coder_from_text(cls, value: object) -> object:
        # Flags and environment variables arrive as text; the choices are numbers.
        return int(value) if isinstance(value, str) and value.isdigit() else value


class StatusSettings(Section):
    interval_s: float = Field(
        default=30.0, gt=0, description="How often the retained status message is refreshed"
    )


class EdgeSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid"
    )

    device_id: str = Field(
        default_factory=socket.gethostname,
        description="Device id: MQTT client id and topic level (default: host name)",
    )
    topic_prefix: str = Field(default="dctlink", description="First topic level")
    log_level: LogLevel = Field(default="INFO", description="Log level")
    log_format: LogFormat = Field(
        default="auto", description="Log format; auto is JSON unless stderr is a terminal"
    )
    broker: BrokerSettings = Field(default_factory=BrokerSettings, description="MQTT broker")
    spool: SpoolSettings = Field(default_factory=SpoolSettings, description="Durable spool")
    encode: EncodeSettings = Field(default_factory=EncodeSettings, description="Encoding")
    status: StatusSettings = Field(default_factory=StatusSettings, description="Status topic")

    @field_validator("device_id", "topic_prefix")
    @classmethod
    def _topic_safe(cls, value: str) -> str:
        return check_topic_level(value)

    @model_validator(mode="after")
    def _key_needs_cert(self) -> EdgeSettings:
        if (self.broker.cert_file is None) != (self.broker.key_file is None):
            raise ValueError("broker cert_file and key_file must be given together")
        return self

    def topic(self, leaf: Literal["image", "chunk", "status", "barrier"]) -> str:
        return f"{self.topic_prefix}/{self.device_id}/{leaf}"
