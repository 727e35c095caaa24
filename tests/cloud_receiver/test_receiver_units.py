"""Pure parts of the receiver: topics, reason classes, negotiation, cursors, settings, store."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydantic import ValidationError
from receiver_kit import make_record

from cloud_receiver.config import ReceiverSettings
from cloud_receiver.errors import InvalidRequestError
from cloud_receiver.imaging import negotiate, png_bytes
from cloud_receiver.ingest.messages import Route, parse_topic, reason_class
from cloud_receiver.store import DeviceRecord, ImageQuery, ImageRecord, LocalStore
from cloud_receiver.store.base import decode_cursor, encode_cursor
from shared.codec import PayloadError, PayloadErrorKind
from shared.timestamps import from_micros, to_micros

T0 = datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


@pytest.mark.parametrize(
    ("topic", "route"),
    [
        ("dctlink/cam-1/image", Route("cam-1", "image")),
        ("dctlink/cam-1/chunk", Route("cam-1", "chunk")),
        ("dctlink/cam-1/status", Route("cam-1", "status")),
        ("dctlink/cam-1/other", None),
        ("other/cam-1/image", None),
        ("dctlink//image", None),
        ("dctlink/a/b/image", None),
    ],
)
def test_topics_name_device_and_kind(topic: str, route: Route | None) -> None:
    assert parse_topic("dctlink", topic) == route


@pytest.mark.parametrize(
    ("kind", "reason", "label"),
    [
        (PayloadErrorKind.BAD_MAGIC, "not a DCTLink payload (bad magic)", "not_dctlink"),
        (PayloadErrorKind.BAD_VERSION, "unsupported payload version 9", "version"),
        (PayloadErrorKind.CRC, "checksum mismatch: the payload is corrupted", "checksum"),
        (PayloadErrorKind.LIMIT, "payload of 99 bytes exceeds the limit of 10", "limit"),
        (PayloadErrorKind.TRUNCATED, "payload ends inside the header", "truncated"),
        (PayloadErrorKind.INVALID, "quality 0 is outside 1..100", "invalid"),
    ],
)
def test_rejections_fall_into_few_reason_classes(
    kind: PayloadErrorKind, reason: str, label: str
) -> None:
    assert reason_class(PayloadError(kind, reason)) == label


@pytest.mark.parametrize(
    ("accept", "fmt"),
    [
        ("image/webp", "webp"),
        ("image/jpeg;q=0.5, image/webp;q=0.9", "webp"),
        ("text/html, image/*;q=0.8", "png"),
        ("*/*", "png"),
        ("image/webp;q=0, image/jpeg", "jpeg"),
        ("application/json", None),
    ],
)
def test_accept_header_negotiation(accept: str, fmt: str | None) -> None:
    assert negotiate(accept) == fmt


@pytest.mark.parametrize("shape", [(1, 1, 3), (1, 1), (13, 7, 3), (5, 9), (64, 48, 3)])
def test_stage_pngs_are_lossless(shape: tuple[int, ...]) -> None:
    pixels = np.random.default_rng(len(shape)).integers(0, 256, shape, dtype=np.uint8)
    for array in (pixels, pixels[:, ::-1]):  # contiguous or not
        with Image.open(io.BytesIO(png_bytes(array))) as image:
            assert image.mode == ("RGB" if array.ndim == 3 else "L")
            np.testing.assert_array_equal(np.asarray(image), array)


def test_cursor_round_trip_and_garbage() -> None:
    assert decode_cursor(encode_cursor(123, "abc")) == (123, "abc")
    with pytest.raises(InvalidRequestError):
        decode_cursor("@@@")
    assert from_micros(to_micros(T0)) == T0


def test_settings_defaults_env_and_typos(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = ReceiverSettings()
    assert defaults.broker.url == "mqtt://localhost:1883"
    assert defaults.broker.client_id == "dctlink-receiver"
    assert defaults.store.data_dir == Path("dctlink-data")
    assert not defaults.api.auth_enabled
    assert defaults.subscriptions() == ["dctlink/+/image", "dctlink/+/chunk", "dctlink/+/status"]
    monkeypatch.setenv("DCTLINK_RECEIVER__BROKER__SHARED_GROUP", "receivers")
    monkeypatch.setenv("DCTLINK_RECEIVER__API__ADMIN_KEYS", '["k"]')
    settings = ReceiverSettings()
    assert settings.subscriptions()[0] == "$share/receivers/dctlink/+/image"
    assert settings.api.auth_enabled
    monkeypatch.setenv("DCTLINK_RECEIVER__BROKER__SHARED_GRUOP", "x")
    with pytest.raises(ValidationError):
        ReceiverSettings()


def test_every_setting_is_described() -> None:
    for field in ReceiverSettings.model_fields.values():
        assert field.description
        annotation = field.annotation
        if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
            assert all(f.description for f in annotation.model_fields.values())


def test_local_store_keeps_files_rows_and_devices(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    record = make_record("cam-1", 0)
    assert store.put(record, b"payload", {"received": b"r", "classical": b"c"})
    assert not store.put(record, b"other", {"received": b"x"})  # a duplicate writes nothing
    assert store.exists(record.id)
    assert store.get(record.id) == record
    assert store.payload(record.id) == b"payload"
    assert store.stage_png(record.id, "classical") == b"c"
    assert store.stage_png(record.id, "enhanced") is None
    replaced = make_record("cam-1", 0)
    replaced = ImageRecord(**{**replaced.__dict__, "id": record.id, "model_version": "v2"})
    assert store.put(replaced, b"payload", {"received": b"r2"}, replace=True)
    assert store.get(record.id) == replaced
    assert store.stage_png(record.id, "classical") is None
    assert store.check_writable() is None

    store.upsert_device(DeviceRecord("cam-1", True, T0, {"state": "online"}))
    store.upsert_device(DeviceRecord("cam-1", False, T0, {"state": "offline"}))
    assert store.list_devices() == [DeviceRecord("cam-1", False, T0, {"state": "offline"})]
    store.close()

    reopened = LocalStore(tmp_path)  # everything survives a restart
    assert reopened.get(record.id) == replaced
    page = reopened.images(ImageQuery(limit=10))
    assert [r.id for r in page.items] == [record.id]
    assert page.next_cursor is None
    reopened.close()
