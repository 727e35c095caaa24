"""Broker settings: the URL says host, port and TLS; typos and bad names fail loudly."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import Field, ValidationError

from service_common.broker import BrokerSettings, check_topic_level


@pytest.mark.parametrize(
    ("settings", "host", "port", "tls"),
    [
        (BrokerSettings(), "localhost", 1883, False),
        (BrokerSettings(url="mqtt://broker.example"), "broker.example", 1883, False),
        (BrokerSettings(url="mqtts://broker.example"), "broker.example", 8883, True),
        (BrokerSettings(url="mqtts://broker.example:8884"), "broker.example", 8884, True),
        (BrokerSettings(url="mqtt://b", ca_file=Path("ca.pem")), "b", 8883, True),
        (BrokerSettings(url="mqtt://b:1884", ca_file=Path("ca.pem")), "b", 1884, True),
    ],
)
def test_url_gives_host_port_and_tls(
    settings: BrokerSettings, host: str, port: int, tls: bool
) -> None:
    assert (settings.host, settings.port, settings.use_tls) == (host, port, tls)
    assert settings.client_certificate is None


@pytest.mark.parametrize(
    "overrides",
    [{"url": "http://x"}, {"url": "mqtt://"}, {"keepalive_s": 1}, {"colour": "red"}],
)
def test_bad_broker_settings_fail_loudly(overrides: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        BrokerSettings.model_validate(overrides)


def test_a_subclass_keeps_the_common_options_first() -> None:
    class Extended(BrokerSettings):
        username: str | None = Field(default=None, description="Who")
        client_id: str = Field(default="me", description="Client id")

    assert list(Extended.model_fields)[:3] == ["url", "username", "password"]
    assert list(Extended.model_fields)[-1] == "client_id"
    assert Extended.model_fields["username"].description == "Who"


@pytest.mark.parametrize("bad", ["", "a/b", "a+", "#", "a\x00"])
def test_topic_levels_reject_wildcards_and_separators(bad: str) -> None:
    with pytest.raises(ValueError, match="must be non-empty"):
        check_topic_level(bad)
    assert check_topic_level("cam-1") == "cam-1"
