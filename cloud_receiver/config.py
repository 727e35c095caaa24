"""The receiver's one settings class (docs/architecture.md section 6).

Every option is an environment variable ``DCTLINK_RECEIVER__<SECTION>__<NAME>`` (for example
``DCTLINK_RECEIVER__BROKER__URL``) and a ``cloud-receiver serve`` flag; flags override the
environment, and the defaults run locally (broker on localhost, data under ./dctlink-data) with
no configuration at all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from service_common import broker
from service_common.broker import Section, check_topic_level
from service_common.logs import LogFormat, LogLevel
from shared.codec import DecodeLimits

ENV_PREFIX = "DCTLINK_RECEIVER__"


class BrokerSettings(broker.BrokerSettings):
    """The common broker options, then the receiver's: on/off and the persistent session."""

    enabled: bool = Field(
        default=True,
        description="Subscribe to the broker; off leaves POST /api/v1/payloads as the only ingest",
    )
    client_id: str = Field(
        default="dctlink-receiver",
        description="MQTT client id; fixed so the broker keeps our session across restarts"
        " (a broker using the username as client id, as deploy/'s does, ignores it:"
        " one login per replica)",
    )
    shared_group: str | None = Field(
        default=None,
        description="Join the shared subscription $share/<group>/ so replicas split the load",
    )
    session_expiry_s: int = Field(
        default=7 * 24 * 3600,
        ge=1,
        description="How long the broker keeps our session (and queues images) while we are away"
        " (MQTT 5; a 3.1.1 session lasts as long as the broker's own setting allows)",
    )

    @field_validator("shared_group")
    @classmethod
    def _topic_safe(cls, value: str | None) -> str | None:
        return value if value is None else check_topic_level(value)


class IngestSettings(Section):
    workers: int = Field(
        default=2, ge=1, le=64, description="Threads that decode, recover and store images"
    )
    max_payload_bytes: int = Field(
        default=16 * 1024 * 1024, ge=64, description="Largest payload the decoder accepts"
    )
    max_width: int = Field(default=8192, ge=8, description="Widest image the decoder accepts")
    max_height: int = Field(default=8192, ge=8, description="Tallest image the decoder accepts")
    max_pixels: int = Field(
        default=4096 * 3072,
        ge=64,
        description="Most pixels an image may have (12.6 M: a Raspberry Pi HQ camera's 12.3 M"
        " still fits)",
    )
    max_pixels_per_byte: int = Field(
        default=131072,
        ge=1,
        description="Most pixels a payload may claim per byte it carries, so an almost empty"
        " payload cannot claim a huge image (a black 4096x3072 frame needs 83,000)",
    )
    max_image_memory_bytes: int = Field(
        default=320 * 1024 * 1024,
        ge=16 * 1024 * 1024,
        description="Estimated working memory one image may take; a recovery stage that would"
        " need more is skipped (and the image says so), a payload whose received stage would"
        " is refused. The receiver needs about 250 MB plus workers times this",
    )
    recovery_budget_s: float = Field(
        default=2.5,
        gt=0,
        description="Seconds of recovery (classical and network) per image; a stage estimated"
        " to overrun is skipped and classical smoothing stops at the deadline, the image"
        " saying so",
    )
    inbox_max_bytes: int = Field(
        default=2 * 1024**3,
        ge=1024 * 1024,
        description="Payloads acknowledged to the broker but not yet stored, kept on disk;"
        " while it is full the receiver stops reading from the broker (nothing is lost)",
    )
    inbox_max_bytes_per_device: int = Field(
        default=256 * 1024 * 1024,
        ge=64 * 1024,
        description="Inbox bytes one device may hold; past it its images are refused and"
        " quarantined, so one device's flood cannot delay the others",
    )
    inbox_max_images_per_device: int = Field(
        default=10_000, ge=1, description="Images one device may hold in the inbox"
    )
    device_images_per_s: float = Field(
        default=20.0, gt=0, description="Images per second one device may send, sustained"
    )
    device_burst_images: int = Field(
        default=1000,
        ge=1,
        description="Images one device may send at once above its rate (a spool draining after"
        " an outage)",
    )
    device_bytes_per_s: float = Field(
        default=8 * 1024 * 1024, gt=0, description="Payload bytes per second one device may send"
    )
    device_burst_bytes: int = Field(
        default=256 * 1024 * 1024, ge=1024, description="Bytes one device may send at once"
    )
    http_max_waiting: int = Field(
        default=16,
        ge=1,
        description="POSTed payloads waiting for a worker; past it POST answers 503",
    )
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
    chunk_max_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=1024,
        description="Bytes of half-built chunked images over all devices",
    )
    quarantine_max_files: int = Field(
        default=10_000,
        ge=0,
        description="Rejected payloads kept for inspection; past it the oldest are deleted",
    )
    quarantine_max_bytes: int = Field(
        default=256 * 1024 * 1024,
        ge=0,
        description="Bytes the kept rejected payloads (and their sidecars) may take; past it"
        " the oldest are deleted",
    )

    @property
    def limits(self) -> DecodeLimits:
        return DecodeLimits(
            max_width=self.max_width,
            max_height=self.max_height,
            max_pixels=self.max_pixels,
            max_payload_bytes=self.max_payload_bytes,
            max_pixels_per_byte=self.max_pixels_per_byte,
        )


class StoreSettings(Section):
    backend: Literal["local", "s3"] = Field(
        default="local",
        description="Where images and metadata live: local = files + SQLite under data_dir;"
        " s3 = objects in an S3-compatible bucket + metadata in PostgreSQL (replicas can share)",
    )
    data_dir: Path = Field(
        default=Path("dctlink-data"),
        description="Folder of payloads, stage PNGs, the SQLite index, the quarantine, the inbox"
        " and the chunk journal (with backend s3: the inbox and the chunk journal only)",
    )
    s3_endpoint_url: str | None = Field(
        default=None,
        description="S3 endpoint, e.g. http://minio:9000 (path-style requests); none = AWS S3",
    )
    s3_bucket: str | None = Field(
        default=None, description="Bucket of payloads and stage PNGs (backend s3; must exist)"
    )
    s3_prefix: str = Field(
        default="",
        description="Prefix of every key in the bucket (e.g. site-a/), so deployments can share it",
    )
    s3_region: str | None = Field(default=None, description="S3 region, e.g. us-east-1")
    s3_access_key: str | None = Field(
        default=None, description="S3 access key id; none = boto3's usual credential chain"
    )
    s3_secret_key: SecretStr | None = Field(default=None, description="S3 secret access key")
    postgres_dsn: SecretStr | None = Field(
        default=None,
        description="PostgreSQL connection string (backend s3), e.g."
        " postgresql://user:password@host:5432/dctlink; tables are created at start-up",
    )
    postgres_pool_size: int = Field(
        default=4, ge=1, le=100, description="Most PostgreSQL connections one receiver opens"
    )
    timeout_s: float = Field(
        default=10.0, gt=0, description="Connect and request timeout for the bucket and database"
    )
    orphan_grace_s: float = Field(
        default=3600.0,
        ge=60,
        description="Age after which stored bytes without a database row (a crash between"
        " writing them and the row) are deleted; longer than any write takes",
    )
    sweep_interval_s: float = Field(
        default=3600.0,
        ge=0,
        description="Seconds between sweeps for such orphans (one runs at start); 0 = never sweep",
    )

    @model_validator(mode="after")
    def _remote_complete(self) -> StoreSettings:
        if self.backend == "s3":
            missing = [n for n in ("s3_bucket", "postgres_dsn") if getattr(self, n) is None]
            if missing:
                raise ValueError(f"backend s3 needs {' and '.join(missing)}")
        if (self.s3_access_key is None) != (self.s3_secret_key is None):
            raise ValueError("set both s3_access_key and s3_secret_key, or neither")
        return self


class RecoverySettings(Section):
    iterations: int | None = Field(
        default=None, ge=0, description="Classical recovery iterations (default: the method's)"
    )
    model_path: Path | None = Field(
        default=None,
        description="ONNX residual network (default: the one shipped in the package,"
        " dctlink-residual-v3); when the file is absent only the classical stage runs",
    )
    threads: int = Field(default=1, ge=1, le=64, description="ONNX Runtime intra-op threads")


class ApiSettings(Section):
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
    shutdown_timeout_s: int = Field(
        default=3,
        ge=1,
        le=300,
        description="On SIGTERM, seconds open requests get to finish before they are cut off"
        " (event streams stay open until then)",
    )

    @property
    def auth_enabled(self) -> bool:
        return bool(self.read_keys or self.admin_keys)


class HomeAssistantSettings(Section):
    enabled: bool = Field(
        default=False,
        description="Announce every device to Home Assistant by MQTT discovery and publish"
        " its newest picture and byte savings (needs the broker; the receiver's login"
        " must be allowed to write discovery_prefix/# and <topic_prefix>-ha/#)",
    )
    discovery_prefix: str = Field(
        default="homeassistant", description="Home Assistant's MQTT discovery prefix"
    )
    image: Literal["bytes", "url"] = Field(
        default="bytes",
        description="bytes: publish each newest picture as a retained JPEG; url: publish the"
        " URL of the device's latest picture (base_url) for Home Assistant to fetch",
    )
    base_url: str | None = Field(
        default=None, description="The receiver's URL as Home Assistant reaches it (image url)"
    )
    url_key: SecretStr | None = Field(
        default=None,
        description="A read key put in the published URL (image url with API keys); it is"
        " visible to whoever may read the topic",
    )
    camera: bool = Field(
        default=False, description="Also announce an MQTT camera entity per device"
    )
    max_width: int = Field(
        default=1280, ge=16, le=8192, description="Published pictures are scaled down to this"
    )

    @field_validator("discovery_prefix")
    @classmethod
    def _prefix_safe(cls, value: str) -> str:
        return check_topic_level(value)

    @model_validator(mode="after")
    def _url_needs_base(self) -> HomeAssistantSettings:
        if self.enabled and self.image == "url" and not self.base_url:
            raise ValueError("homeassistant.image url needs homeassistant.base_url")
        return self


class ReceiverSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid"
    )

    topic_prefix: str = Field(default="dctlink", description="First topic level")
    log_level: LogLevel = Field(default="INFO", description="Log level")
    log_format: LogFormat = Field(
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
    homeassistant: HomeAssistantSettings = Field(
        default_factory=HomeAssistantSettings, description="Home Assistant MQTT discovery"
    )

    @field_validator("topic_prefix")
    @classmethod
    def _topic_safe(cls, value: str) -> str:
        return check_topic_level(value)

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
