"""The one logging setup: JSON lines with structured fields, or text with key=value."""

from __future__ import annotations

import io
import json
import logging
import sys

import pytest

from service_common.logs import JsonFormatter, LogFormat, TextFormatter, setup_logging


def _record(exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("boom")
        except ValueError:
            exc_info = sys.exc_info()
    record = logging.LogRecord(
        "svc.part", logging.WARNING, __file__, 1, "hi %s", ("there",), exc_info
    )
    record.fields = {"device_id": "cam-1", "bytes": 12}
    return record


def test_json_lines_carry_level_logger_message_and_fields() -> None:
    entry = json.loads(JsonFormatter().format(_record()))
    assert entry.pop("time").endswith("+00:00")
    assert entry == {
        "level": "warning",
        "logger": "svc.part",
        "message": "hi there",
        "device_id": "cam-1",
        "bytes": 12,
    }
    assert "ValueError: boom" in json.loads(JsonFormatter().format(_record(exc=True)))["exception"]


def test_text_lines_end_with_the_fields() -> None:
    text = TextFormatter().format(_record())
    assert text.endswith(" WARNING hi there device_id=cam-1 bytes=12")


@pytest.mark.parametrize(
    ("fmt", "json_expected"), [("auto", True), ("json", True), ("text", False)]
)
def test_setup_picks_json_when_stderr_is_no_terminal(
    monkeypatch: pytest.MonkeyPatch, fmt: LogFormat, json_expected: bool
) -> None:
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a terminal
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        setup_logging("DEBUG", fmt)
        (handler,) = root.handlers
        assert isinstance(handler.formatter, JsonFormatter if json_expected else TextFormatter)
        assert root.level == logging.DEBUG
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
