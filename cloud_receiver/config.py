"""The receiver's one settings class (DESIGN.md section 6).

Every option is an environment variable ``DCTLINK_RECEIVER__<SECTION>__<NAME>`` (for example
``DCTLINK_RECEIVER__BROKER__URL``) and a ``cloud-receiver serve`` flag; flags override the
environment, and the defaults run locally (broker on localhost, data under ./dctlink-data) with
no configuration at all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.codec import DecodeLimits

ENV_PREFIX = "DCTLINK_RECEIVER__"
_TOPIC_FORBIDDEN = set("/+#\x00")


class _Section(BaseModel):
    # A typo in a nested option must fail loudly, not be ignored.
    model_config = ConfigDict(extra="forbid")


class BrokerSettings(_Section):
    enabled: bool = Field(
        default=True,
        description="Subscribe to the broker; off leaves POST /api/v1/payloads as the only ingest",
    )
    url: str = Field(
        default="mqtt://localhost:1883",
        description="Broker URL: mqtt://host[:port] or mqtts://host[:port] (TLS, default 8883)",
    )
    username: str | None = Field(default=None, description="MQTT username")
    password: SecretStr | None = Field(default=None, description="MQTT password")
    client_id: str = Field(
        default="dctlink-receiver",
        description="MQTT client id; fixed so the broker keeps our session across restarts",
    )
    shared_group: str | None = Field(
        default=None,
        description="Join the shared subscription $share/<group>/ so replicas split the load",
    )
    session_expiry_s: int = Field(
        default=7 * 24 * 3600,
        ge=1,
        description="How long the broker keeps our session (and queues images) while we are away",
    )
    keepalive_s: int = Field(default=30, ge=5, le=3600, description="MQTT keepalive in seconds")
    ca_file: Path | None = Field(
        default=None, description="CA bundle to verify the broker (implies TLS)"
    )
    tls_insecure: bool = Field(
        default=False, description="Skip the broker host name check (testing only)"
    )

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError(f"broker URL must look like mqtt://host:1883, got {url!r}")
        return url

    @field_validator("shared_group")
    @classmethod
    def _topic_safe(cls, value: str | None) -> str | None:
        if value is not None and (not value or _TOPIC_FORBIDDEN & set(value)):
            raise ValueError(f"{value!r} must be non-empty and contain none of / + # NUL")
        return value

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "localhost"

    @property
    def use_tls(self) -> bool:
        return urlsplit(self.url).scheme == "mqtts" or self.ca_file is not None

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or (8883 if self.use_tls else 1883)


class IngestSettings(_Section):
    workers: int = Field(
        default=2, ge=1, le=64, description="Threads that decode, recover and store images"
    )
    max_payload_bytes: int = Field(
        default=16 * 1024 * 1024, ge=64, description="Largest payload the decoder accepts"
    )
    max_width: int = Field(default=8192, ge=8, description="Widest image the decoder accepts")
    max_height: int = Field(default=8192, ge=8, description="Tallest image the decoder accepts")
    max_pixels: int = Field(default=8192 * 4096, ge=64, description="Most pixels an image may have")
    chunk_timeout_s: float = Field(
        default=60.0, gt=0, description="A chunked image whose chunks stop arriving is dropped"
    )
    chunk_max_bytes_per_device: int = Field(
        default=16 * 1024 * 1024,
        ge=1024,
        description="Bytes of half-built chunked images one device may hold",
    )
    chunk_max_pending: int = Field(
        default=1024, ge=1, description="Chunked images in progress over all devices"
    )
    quarantine_max_files: int = Field(
        default=10_000,
        ge=0,
        description="Rejected payloads kept for inspection; past it they are counted, not kept",
    )

    @property
    def limits(self) -> DecodeLimits:
        return DecodeLimits(
            max_width=self.max_width,
            max_height=self.max_height,
            max_pixels=self.max_pixels,
            max_payload_bytes=self.max_payload_bytes,
        )


class StoreSettings(_Section):
    backend: Literal["local"] = Field(
        default="local",
        description="Where images and metadata live: local = files + SQLite under data_dir",
    )
    data_dir: Path = Field(
        default=Path("dctlink-data"),
        description="Folder of payloads, stage PNGs, the SQLite index and the quarantine",
    )


class RecoverySettings(_Section):
    iterations: int | None = Field(
        default=None, ge=0, description="Classical recovery iterations (default: the method's)"
    )
    model_path: Path | None = Field(
        default=None,
        description="ONNX residual network (default: models/dctlink-residual-v1.onnx of this"
        " installation); when the file is absent only the classical stage runs",
    )
    threads: int = Field(default=1, ge=1, le=64, description="ONNX Runtime intra-op threads")


class ApiSettings(_Section):
    host: str = Field(default="127.0.0.1", description="HTTP listen address")
    port: int = Field(default=8000, ge=0, le=65535, description="HTTP listen port")
    read_keys: list[SecretStr] = Field(
        default_factory=list,
        description="Bearer keys allowed to read (GET); with no key at all, the API is open",
    )
    admin_keys: list[SecretStr] = Field(
        default_factory=list,
        description="Bearer keys allowed to read and to POST payloads",
    )
    page_limit: int = Field(
        default=200, ge=1, le=10_000, description="Largest `limit` a list request may ask for"
    )
    sse_queue: int = Field(
        default=64, ge=1, description="Events buffered per SSE client; a slow client loses oldest"
    )

    @property
    def auth_enabled(self) -> bool:
        return bool(self.read_keys or self.admin_keys)


class ReceiverSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid"
    )

    topic_prefix: str = Field(default="dctlink", description="First topic level")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Log level"
    )
    log_format: Literal["auto", "json", "text"] = Field(
        default="auto", description="Log format; auto is JSON unless stderr is a terminal"
    )
    broker: BrokerSettings = Field(default_factory=BrokerSettings, description="MQTT broker")
    ingest: IngestSettings = Field(
        default_factory=IngestSettings, description="Decoding limits, workers, chunks"
    )
    store: StoreSettings = Field(default_factory=StoreSettings, description="Storage")
    recovery: RecoverySettings = Field(
        default_factory=RecoverySettings, description="Classical recovery and the network"
    )
    api: ApiSettings = Field(default_factory=ApiSettings, description="HTTP API")

    @field_validator("topic_prefix")
    @classmethod
    def _topic_safe(cls, value: str) -> str:
        if not value or _TOPIC_FORBIDDEN & set(value):
            raise ValueError(f"{value!r} must be non-empty and contain none of / + # NUL")
        return value

    @model_validator(mode="after")
    def _keys_distinct(self) -> ReceiverSettings:
        read = {key.get_secret_value() for key in self.api.read_keys}
        admin = {key.get_secret_value() for key in self.api.admin_keys}
        if "" in read | admin:
            raise ValueError("API keys must not be empty")
        if read & admin:
            raise ValueError("a key is both a read key and an admin key; admin keys can read")
        return self

    def subscriptions(self) -> list[str]:
        """The topic filters we subscribe to, shared when a group is set."""
        share = f"$share/{self.broker.shared_group}/" if self.broker.shared_group else ""
        return [f"{share}{self.topic_prefix}/+/{leaf}" for leaf in ("image", "chunk", "status")]
