"""Settings: environment names, flags on top, loud typos, documented help."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from pydantic import ValidationError

from edge_sender.cli import OPTIONS, build_parser, main
from edge_sender.config import EdgeSettings


def test_flags_override_environment_section_by_section(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DCTLINK_EDGE__BROKER__URL", "mqtts://broker.example:8884")
    monkeypatch.setenv("DCTLINK_EDGE__BROKER__USERNAME", "cam-7")
    monkeypatch.setenv("DCTLINK_EDGE__DEVICE_ID", "cam-7")
    args = build_parser().parse_args(
        ["send", "--broker-max-inflight", "4", "--encode-quality", "80"]
    )
    settings = OPTIONS.settings_from_args(args)
    assert (settings.broker.host, settings.broker.port, settings.broker.use_tls) == (
        "broker.example",
        8884,
        True,
    )
    assert settings.broker.username == "cam-7"
    assert settings.broker.max_inflight == 4
    assert settings.encode.quality == 80
    assert settings.topic("chunk") == "dctlink/cam-7/chunk"


def test_defaults_run_locally() -> None:
    settings = EdgeSettings(device_id="cam-1")
    assert (settings.broker.host, settings.broker.port) == ("localhost", 1883)
    assert (settings.encode.profile, settings.encode.quality) == ("auto", 75)
    assert (settings.encode.luma_keep, settings.encode.chroma_keep) == (15, 6)
    assert settings.broker.max_message_bytes == 128 * 1024


@pytest.mark.parametrize(
    "overrides",
    [
        {"device_id": "cam/1"},
        {"broker": {"url": "http://x"}},
        {"broker": {"colour": 1}},
        {"broker": {"cert_file": "c.pem"}},
    ],
)
def test_bad_settings_fail_loudly(overrides: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        EdgeSettings.model_validate(overrides)


def test_help_documents_every_option_with_its_environment_variable(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["send", "--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for env in (
        "DCTLINK_EDGE__BROKER__URL",
        "DCTLINK_EDGE__BROKER__CA_FILE",
        "DCTLINK_EDGE__SPOOL__MAX_BYTES",
        "DCTLINK_EDGE__ENCODE__PROFILE",
        "DCTLINK_EDGE__DEVICE_ID",
        "DCTLINK_EDGE__STATUS__INTERVAL_S",
    ):
        assert env in text
    assert "--broker URL" in text
    # The default profile and quality, and what the quality means, are where users look.
    assert "auto, lowpass, paper, adaptive or lossless" in text
    assert "DCTLINK_EDGE__ENCODE__PROFILE; default auto]" in text
    assert "auto promises a picture at least as good as a JPEG at it" in text
    assert "DCTLINK_EDGE__ENCODE__QUALITY; default 75]" in text


def test_invalid_flag_value_exits_with_usage_code() -> None:
    assert main(["send", "--encode-quality", "0"]) == 2


def test_an_out_of_range_broker_port_is_a_usage_error_in_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """It used to crash the connect thread with a traceback, then wait forever."""
    image = tmp_path / "f.png"
    Image.new("RGB", (16, 16)).save(image)
    code = main(["send", str(image), "--broker", "mqtt://127.0.0.1:99999"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("edge-sender: invalid setting --broker / DCTLINK_EDGE__BROKER__URL:")
    assert "Traceback" not in err
