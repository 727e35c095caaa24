"""Broker settings both services extend, and the rule for names that become topic levels.

``BrokerSettings`` holds what any MQTT client of ours needs to reach the broker: the URL (which
also says whether to use TLS), credentials, keepalive, the CA to trust and the MQTT version.
Each service adds its own options in a subclass (the sender its client certificate and flow
control, the receiver its persistent session); fields declared here come first in the subclass.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

_TOPIC_FORBIDDEN = frozenset("/+#\x00")


def check_topic_level(value: str) -> str:
    """``value`` unchanged if it can stand as one topic level, else ValueError (for validators)."""
    if not value or _TOPIC_FORBIDDEN & set(value):
        raise ValueError(f"{value!r} must be non-empty and contain none of / + # NUL")
    return value


class Section(BaseModel):
    """A nested settings section: a typo in a nested option must fail loudly, not be ignored."""

    model_config = ConfigDict(extra="forbid")


class BrokerSettings(Section):
    url: str = Field(
        default="mqtt://localhost:1883",
        description="Broker URL: mqtt://host[:port] or mqtts://host[:port] (TLS, default 8883)",
    )
    username: str | None = Field(default=None, description="MQTT username")
    password: SecretStr | None = Field(default=None, description="MQTT password")
    keepalive_s: int = Field(default=30, ge=5, le=3600, description="MQTT keepalive in seconds")
    ca_file: Path | None = Field(
        default=None, description="CA bundle to verify the broker (implies TLS)"
    )
    tls_insecure: bool = Field(
        default=False, description="Skip the broker host name check (testing only)"
    )
    protocol: Literal["5", "3.1.1"] = Field(default="5", description="MQTT protocol version")

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError(f"broker URL must look like mqtt://host:1883, got {url!r}")
        try:
            parts.port  # noqa: B018 - parsing the port is the check
        except ValueError as error:  # out of 0-65535, or not a number
            raise ValueError(f"broker URL has an invalid port ({error}), got {url!r}") from None
        return url

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "localhost"

    @property
    def use_tls(self) -> bool:
        return urlsplit(self.url).scheme == "mqtts" or self.ca_file is not None

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or (8883 if self.use_tls else 1883)

    @property
    def client_certificate(self) -> tuple[Path, Path] | None:
        """(certificate, private key) for mutual TLS; a subclass with those options says."""
        return None
