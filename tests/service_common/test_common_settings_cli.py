"""Settings flags: one per option, named from the model, help that names the env variable."""

from __future__ import annotations

import argparse
import socket
from typing import Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from service_common.settings_cli import CommandParser, SettingsCli
from service_common.version import dctlink_version


class _Net(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(default="mqtt://localhost:1883", description="Where to connect")
    keys: list[SecretStr] = Field(default_factory=list, description="Keys")
    tls: bool = Field(default=False, description="Use TLS")
    mode: Literal["a", "b"] = Field(default="a", description="Mode")
    retries: int | None = Field(default=None, description="Retries")


class _Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="DCTLINK_TEST__", env_nested_delimiter="__", extra="forbid"
    )

    name: str = Field(default_factory=socket.gethostname, description="Name")
    level: int = Field(default=3, description="Level")
    net: _Net = Field(default_factory=_Net, description="Network")


CLI = SettingsCli(_Settings, aliases={("net", "url"): "--url"})


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="t")
    CLI.add_arguments(parser)
    return parser


def _help() -> str:
    return " ".join(_parser().format_help().split())


def test_options_name_env_variables_and_flags_in_model_order() -> None:
    assert [(o.env, o.flag) for o in CLI.options()] == [
        ("DCTLINK_TEST__NAME", "--name"),
        ("DCTLINK_TEST__LEVEL", "--level"),
        ("DCTLINK_TEST__NET__URL", "--url"),
        ("DCTLINK_TEST__NET__KEYS", "--net-keys"),
        ("DCTLINK_TEST__NET__TLS", "--net-tls"),
        ("DCTLINK_TEST__NET__MODE", "--net-mode"),
        ("DCTLINK_TEST__NET__RETRIES", "--net-retries"),
    ]


def test_help_shows_description_env_and_default() -> None:
    text = _help()
    assert "--name NAME Name [env DCTLINK_TEST__NAME; default host name]" in text
    assert "--level LEVEL Level [env DCTLINK_TEST__LEVEL; default 3]" in text
    assert "--url URL Where to connect [env DCTLINK_TEST__NET__URL; default mqtt://" in text
    assert "--net-tls, --no-net-tls Use TLS [env DCTLINK_TEST__NET__TLS; default False]" in text
    assert "--net-mode {a,b} Mode [env DCTLINK_TEST__NET__MODE; default a]" in text
    assert "[env DCTLINK_TEST__NET__RETRIES; default none]" in text
    assert (
        '--net-keys KEY Keys [env DCTLINK_TEST__NET__KEYS (JSON list, e.g. \'["k1","k2"]\');'
        " repeat the flag for several; default none]" in text
    )
    assert "net: Network" in text


def test_flags_override_environment_section_by_section(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DCTLINK_TEST__NET__URL", "mqtts://broker.example")
    monkeypatch.setenv("DCTLINK_TEST__NET__MODE", "b")
    monkeypatch.setenv("DCTLINK_TEST__LEVEL", "7")
    args = _parser().parse_args(["--net-tls", "--net-keys", "k1", "--net-keys", "k2"])
    settings = CLI.settings_from_args(args)
    assert (settings.net.url, settings.net.mode, settings.level) == (
        "mqtts://broker.example",
        "b",
        7,
    )
    assert settings.net.tls
    assert [key.get_secret_value() for key in settings.net.keys] == ["k1", "k2"]


def test_literal_options_take_only_their_choices() -> None:
    with pytest.raises(SystemExit):
        _parser().parse_args(["--net-mode", "c"])


def test_flags_left_out_leave_no_trace_in_the_namespace() -> None:
    assert not any(k.startswith("setting:") for k in vars(_parser().parse_args([])))


def test_invalid_settings_are_reported_not_raised(capsys: pytest.CaptureFixture[str]) -> None:
    args = _parser().parse_args(["--level", "many"])
    assert CLI.load(args, "t") is None
    assert capsys.readouterr().err == (
        "t: invalid setting --level / DCTLINK_TEST__LEVEL: Input should be a valid integer,"
        " unable to parse string as an integer (got 'many')\n"
    )


def test_each_invalid_setting_gets_one_line_and_secrets_stay_hidden(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DCTLINK_TEST__NET__KEYS", '["ok", 5]')
    args = _parser().parse_args(["--level", "x", "--net-retries", "many"])
    assert CLI.load(args, "t") is None
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(":")[1] for line in lines] == [
        " invalid setting --level / DCTLINK_TEST__LEVEL",
        " invalid setting --net-keys / DCTLINK_TEST__NET__KEYS",
        " invalid setting --net-retries / DCTLINK_TEST__NET__RETRIES",
    ]
    assert "pydantic.dev" not in "".join(lines)
    assert "5" not in lines[1].split(":", 2)[2]


def test_literal_choices_show_in_usage_and_help() -> None:
    text = _parser().format_help()
    assert "--net-mode {a,b}" in text


def test_every_command_takes_every_flag_and_the_epilog_is_the_doc_tail(
    capsys: pytest.CaptureFixture[str],
) -> None:
    cli = CommandParser("t", "Does things.", "Title.\n\nExit codes: 0 fine", CLI)
    run = cli.command("run", "run it")
    run.add_argument("--fast", action="store_true")
    args = cli.parser.parse_args(["run", "--fast", "--url", "mqtt://x"])
    assert (args.command, args.fast, CLI.settings_from_args(args).net.url) == (
        "run",
        True,
        "mqtt://x",
    )
    with pytest.raises(SystemExit):
        cli.parser.parse_args(["--help"])
    out = capsys.readouterr().out
    assert "Does things. Every option can also be set by its environment variable." in out
    assert out.rstrip().endswith("Exit codes: 0 fine")


def test_version_names_the_program_and_the_installed_release(
    capsys: pytest.CaptureFixture[str],
) -> None:
    cli = CommandParser("t", "Does things.", None, CLI)
    with pytest.raises(SystemExit) as exit_info:
        cli.parser.parse_args(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"t {dctlink_version()}\n"
    assert dctlink_version() != "0+unknown"  # the test environment installs the project


def test_a_percent_sign_in_a_description_does_not_break_help() -> None:
    class _Pct(BaseSettings):
        model_config = SettingsConfigDict(env_prefix="DCTLINK_PCT__")
        share: int = Field(default=5, description="about 6 % of the bytes")

    parser = argparse.ArgumentParser(prog="p")
    SettingsCli(_Pct).add_arguments(parser)
    assert "about 6 % of the bytes" in " ".join(parser.format_help().split())
