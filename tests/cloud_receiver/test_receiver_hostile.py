"""Issue 12, the receiver survives hostile input: device statuses, the quarantine, API inputs.

Real parts throughout: a real mosquitto, the real edge sender, SQLite and files under
``tmp_path``, and the app through TestClient (httpx) with its lifespan running.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote

import hypothesis
import paho.mqtt.client as mqtt
import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion
from PIL import Image
from receiver_kit import (
    Publisher,
    payload_for,
    receiver_settings,
    sample_pixels,
    unique,
)

from cloud_receiver.api import create_app
from cloud_receiver.config import ReceiverSettings
from cloud_receiver.device_status import MAX_STATUS_BYTES, parse_status
from cloud_receiver.ingest import Quarantine
from cloud_receiver.store import DeviceRecord, LocalStore
from cloud_receiver.store.base import encode_cursor
from edge_sender.cli import main as edge_main
from harness import Mosquitto, wait_until
from shared.timestamps import to_micros

API = "/api/v1"
T0 = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)

#: Status bodies that once were stored and then broke GET /api/v1/devices, and their cousins,
#: each with the reason it is refused.
HOSTILE_STATUSES = [
    (rb'{"state": "online", "x": "\ud800"}', "lone surrogate"),
    (rb'{"state": "online", "\udfff": 1}', "lone surrogate"),
    (b'{"state": "online", "x": ' + b"[" * 900 + b"]" * 900 + b"}", "nested deeper"),
    (b'{"state": "online", "spool_depth": NaN}', "NaN is not"),
    (b'{"state": "online", "payload_to_source_ratio": 1e400}', "too large to be finite"),
]


def _metric(client: TestClient, line_start: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.split()[-1])
    return 0.0


def _devices(client: TestClient) -> dict[str, dict[str, object]]:
    response = client.get(f"{API}/devices")
    assert response.status_code == 200, response.text
    return {d["device_id"]: d for d in response.json()["items"]}


@pytest.fixture
def receiver(mosquitto: Mosquitto, tmp_path: Path) -> Iterator[tuple[TestClient, ReceiverSettings]]:
    settings = receiver_settings(mosquitto, tmp_path / "data")
    with TestClient(create_app(settings)) as client:
        assert wait_until(lambda: client.get("/readyz").status_code == 200)
        yield client, settings


# -- item 4: device status ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        *HOSTILE_STATUSES,
        (b"\xff{}", "not UTF-8"),
        (b'["online"]', "JSON object"),
        (b'{"spool_depth": 1}', '"state" is missing'),
        (b'{"state": "sleeping"}', "'state'"),
        (b'{"state": "online", "spool_depth": true}', "'spool_depth'"),
        (b'{"state": "online", "spool_depth": -1}', "'spool_depth'"),
        (b'{"state": "online", "spool_depth": 9223372036854775808}', "'spool_depth'"),
        (b'{"state": "online", "version": 7}', "'version'"),
        (b'{"state": "online", "device_id": "someone-else"}', "differs from the topic's"),
        (b'{"state": "online", "pad": "' + b"x" * MAX_STATUS_BYTES + b'"}', "bytes"),
        (b'{"state": "online", "x": {"a": {"b": {"c": {}}}}}', "nested deeper than 4"),
    ],
)
def test_a_bad_status_is_refused_with_its_reason(body: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_status(body, device_id="cam-1")


def test_a_good_status_keeps_the_senders_fields_and_drops_unknown_ones() -> None:
    body = {
        "state": "online",
        "device_id": "cam-1",
        "spool_depth": 3,
        "payload_to_source_ratio": 0.25,
        "last_publish_at": None,
        "from_a_newer_sender": {"a": [1, "é", "\U0001f600"]},
    }
    kept = parse_status(json.dumps(body).encode(), device_id="cam-1")
    assert kept == {k: v for k, v in body.items() if k != "from_a_newer_sender"}
    will = {"state": "offline", "device_id": "cam-1", "reason": "connection lost"}
    assert parse_status(json.dumps(will).encode(), device_id="cam-1") == will


def _retained(broker: Mosquitto, topic: str, timeout_s: float = 10.0) -> bytes:
    """The message the broker retains on ``topic``."""
    got: list[bytes] = []
    arrived = threading.Event()

    def on_message(client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        got.append(bytes(message.payload))
        arrived.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=unique("peek"))
    client.on_message = on_message
    client.on_connect = lambda c, *args: c.subscribe(topic, qos=1)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        assert arrived.wait(timeout_s), f"nothing retained on {topic}"
    finally:
        client.disconnect()
        client.loop_stop()
    return got[0]


def test_the_edge_senders_own_status_passes_every_field(
    receiver: tuple[TestClient, ReceiverSettings], mosquitto: Mosquitto, tmp_path: Path
) -> None:
    client, settings = receiver
    device = unique("cam")
    source = tmp_path / "frame.png"
    Image.fromarray(sample_pixels(0)).save(source)
    flags = ["--broker", mosquitto.url, "--device-id", device]
    flags += ["--topic-prefix", settings.topic_prefix, "--spool-path", str(tmp_path / "s.db")]
    assert edge_main(["send", str(source), *flags, "--timeout", "30", "--no-progress"]) == 0
    raw = _retained(mosquitto, f"{settings.topic_prefix}/{device}/status")
    sent = json.loads(raw)
    assert sent["state"] == "offline"
    assert sent["published_total"] == 1  # the figures after a publish, ratios included
    assert parse_status(raw, device_id=device) == sent  # no field the sender sends is dropped
    assert wait_until(lambda: _devices(client).get(device, {}).get("status") == sent)


def test_hostile_statuses_are_rejected_counted_and_the_devices_list_stays_up(
    receiver: tuple[TestClient, ReceiverSettings], mosquitto: Mosquitto
) -> None:
    client, settings = receiver
    hostile = {unique("evil"): body for body, _ in HOSTILE_STATUSES}
    good = unique("cam")
    publisher = Publisher(mosquitto)
    try:
        for device, body in hostile.items():
            publisher.publish(f"{settings.topic_prefix}/{device}/status", [body], retain=True)
        publisher.publish(
            f"{settings.topic_prefix}/{good}/status", [b'{"state": "online"}'], retain=True
        )
        label = 'dctlink_malformed_payloads_total{reason="status"}'
        assert wait_until(lambda: _metric(client, label) == len(hostile))
        assert wait_until(lambda: good in _devices(client))
        devices = _devices(client)
        assert devices[good]["online"] is True
        assert not set(hostile) & set(devices)
        sidecars = [
            json.loads(p.read_text())
            for p in (settings.store.data_dir / "quarantine").glob("*.json")
        ]
        assert sorted(s["device_id"] for s in sidecars) == sorted(hostile)
        assert {s["reason_class"] for s in sidecars} == {"status"}
        assert client.get("/readyz").status_code == 200
    finally:
        for device in [*hostile, good]:  # clear the retained messages
            publisher.publish(f"{settings.topic_prefix}/{device}/status", [b""], retain=True)
        publisher.close()


def test_a_bad_device_row_from_an_older_receiver_never_breaks_the_list(tmp_path: Path) -> None:
    good = DeviceRecord("cam-good", True, T0, {"state": "online", "spool_depth": 2})
    store = LocalStore(tmp_path)
    store.upsert_device(good)
    store.close()
    seen = to_micros(T0)
    rows = [
        ("cam-surrogate", 1, seen, '{"state": "online", "x": "\\ud800"}'),
        ("cam-deep", 1, seen, '{"state": "online", "x": ' + "[" * 900 + "]" * 900 + "}"),
        ("cam-nan", 0, seen, '{"state": "offline", "n": NaN}'),
        ("cam-garbage", 0, seen, "not json at all"),
        ("cam-list", 0, seen, "[1, 2]"),
        ("cam-far-future", 1, 2**62, '{"state": "online"}'),
        (sqlite3.Binary(b"cam-blob"), 1, seen, '{"state": "online"}'),
    ]
    with sqlite3.connect(tmp_path / "index.sqlite3") as db:
        db.executemany("INSERT INTO devices VALUES (?, ?, ?, ?)", rows)
    db.close()
    settings = receiver_settings(None, tmp_path)
    with TestClient(create_app(settings)) as client:
        devices = _devices(client)
    assert devices["cam-good"]["status"] == good.status
    # Unreadable statuses are served empty, with the row's state; unreadable rows are left out.
    for name in ("cam-surrogate", "cam-deep", "cam-nan", "cam-garbage", "cam-list"):
        assert devices[name]["status"] == {}
    assert devices["cam-surrogate"]["online"] is True
    assert set(devices) == {  # not cam-far-future nor the blob id: no time or id to show
        "cam-good",
        "cam-surrogate",
        "cam-deep",
        "cam-nan",
        "cam-garbage",
        "cam-list",
    }


# -- item 5: the quarantine --------------------------------------------------------------------


def _keep(quarantine: Quarantine, data: bytes) -> str | None:
    return quarantine.keep(
        data, reason="bad", reason_class="checksum", offset=None, topic=None, device_id="cam"
    )


def _on_disk(folder: Path) -> tuple[list[bytes], int]:
    """(the kept messages oldest first, bytes of every file) in a quarantine folder."""
    kept = [p.read_bytes() for p in sorted(folder.glob("*.bin"))]
    return kept, sum(p.stat().st_size for p in folder.iterdir())


def test_quarantine_past_its_bytes_deletes_the_oldest_first(tmp_path: Path) -> None:
    messages = [bytes([i]) * 1000 for i in range(10)]
    quarantine = Quarantine(tmp_path, max_files=100, max_bytes=4000)
    for message in messages:
        assert _keep(quarantine, message) is not None
        kept, size = _on_disk(tmp_path)
        assert size <= 4000
        assert kept == messages[: messages.index(message) + 1][-len(kept) :]  # newest kept
    assert len(kept) == 3  # each is 1000 bytes plus a sidecar of about 200
    assert len(list(tmp_path.glob("*.json"))) == 3  # sidecars go with their messages
    assert quarantine.usage() == (3, size)
    # One larger than the whole bound is not kept, and deletes nothing for nothing.
    assert _keep(quarantine, b"x" * 4000) is None
    assert _on_disk(tmp_path) == (kept, size)


def test_quarantine_past_its_count_deletes_the_oldest_first(tmp_path: Path) -> None:
    quarantine = Quarantine(tmp_path, max_files=3, max_bytes=1 << 20)
    messages = [f"message {i}".encode() for i in range(5)]
    for message in messages:
        assert _keep(quarantine, message) is not None  # the newest is always kept
    assert _on_disk(tmp_path)[0] == messages[2:]
    assert len(list(tmp_path.glob("*.json"))) == 3


def test_quarantine_counts_what_a_restart_finds(tmp_path: Path) -> None:
    first = Quarantine(tmp_path, max_files=100, max_bytes=1 << 20)
    messages = [bytes([i]) * 1000 for i in range(4)]
    for message in messages[:3]:
        _keep(first, message)
    _, size = _on_disk(tmp_path)
    # Room for 1000 bytes more, and the next message brings a sidecar too: unless the restart
    # counted what is there, nothing would be deleted.
    again = Quarantine(tmp_path, max_files=100, max_bytes=size + 1000)
    assert again.usage() == (3, size)
    _keep(again, messages[3])
    kept, size = _on_disk(tmp_path)
    assert kept == messages[1:]
    assert again.usage() == (3, size)
    fewer = Quarantine(tmp_path, max_files=1, max_bytes=1 << 20)  # a lower bound applies at once
    _keep(fewer, b"newest")
    assert _on_disk(tmp_path)[0] == [b"newest"]
    assert len(list(tmp_path.iterdir())) == 2


def test_quarantine_stays_within_its_bounds_under_threads(tmp_path: Path) -> None:
    quarantine = Quarantine(tmp_path, max_files=40, max_bytes=30_000)

    def flood(worker: int) -> None:
        for i in range(60):
            _keep(quarantine, bytes([worker]) * (100 + 37 * i))

    threads = [threading.Thread(target=flood, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    kept, size = _on_disk(tmp_path)
    assert size <= 30_000
    assert len(kept) <= 40
    assert quarantine.usage() == (len(kept), size)
    assert len(list(tmp_path.glob("*.json"))) == len(kept)


def test_the_receiver_bounds_its_quarantine_in_bytes(tmp_path: Path) -> None:
    settings = receiver_settings(None, tmp_path, ingest={"quarantine_max_bytes": 3000})
    garbage = [bytes([i]) * 700 for i in range(8)]
    with TestClient(create_app(settings)) as client:
        for message in garbage:
            assert client.post(f"{API}/payloads", content=message).status_code == 422
    kept, size = _on_disk(tmp_path / "quarantine")
    assert size <= 3000
    assert kept == garbage[-len(kept) :]
    assert len(kept) >= 2


# -- item 6: HTTP inputs -----------------------------------------------------------------------

KEYS = {"read_keys": ["reader", "clé"], "admin_keys": ["boss"]}


@pytest.fixture(scope="module")
def apps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[TestClient, str]]]:
    """An open receiver and one with keys, each holding an image and a device."""
    clients: dict[str, tuple[TestClient, str]] = {}
    with contextlib.ExitStack() as stack:
        for mode, api in (("open", {}), ("keyed", KEYS)):
            data = tmp_path_factory.mktemp(mode)
            store = LocalStore(data)
            stack.callback(store.close)  # a store passed in is the caller's to close
            store.upsert_device(DeviceRecord("cam-1", True, T0, {"state": "online"}))
            app = create_app(receiver_settings(None, data, api=api), store=store)
            # A server error must come back as a response for the tests to see its status.
            client = stack.enter_context(TestClient(app, raise_server_exceptions=False))
            response = client.post(
                f"{API}/payloads",
                content=payload_for("cam-1"),
                headers={"Authorization": "Bearer boss"},
            )
            assert response.status_code == 201, response.text
            clients[mode] = (client, response.json()["id"])
        yield clients


def _get(client: TestClient, path: str, params: dict[str, str], headers: dict[str, bytes]) -> None:
    response = client.get(path, params=params, headers=headers)
    assert response.status_code < 500, (path, params, headers, response.text)
    if response.status_code >= 400:  # the API's one error shape, whatever went wrong
        assert set(response.json()) == {"code", "message"}, response.text


@pytest.mark.parametrize(
    "authorization",
    [b"Bearer \xe9", "Bearer é".encode(), b"Bearer reader\xff", b"Bearer \x80\x80", b"\xe9"],
)
def test_a_non_ascii_key_is_unauthorized_on_every_api_route(
    apps: dict[str, tuple[TestClient, str]], authorization: bytes
) -> None:
    client, image_id = apps["keyed"]
    headers = {"Authorization": authorization}
    responses = [
        client.get(f"{API}/images", headers=headers),
        client.get(f"{API}/images/{image_id}", headers=headers),
        client.get(f"{API}/images/{image_id}/content", headers=headers),
        client.get(f"{API}/devices", headers=headers),
        client.get(f"{API}/events", headers=headers),
        client.post(f"{API}/payloads", content=b"x", headers=headers),
    ]
    for response in responses:
        assert response.status_code == 401, response.text
        assert response.json()["code"] == "unauthorized"
        assert response.headers["www-authenticate"] == "Bearer"


def test_a_non_ascii_key_sent_as_utf8_is_known(apps: dict[str, tuple[TestClient, str]]) -> None:
    client, _ = apps["keyed"]
    headers = {"Authorization": "Bearer clé".encode()}
    assert client.get(f"{API}/devices", headers=headers).status_code == 200


@pytest.mark.parametrize("micros", [2**63, -(2**63) - 1, 10**30])
@pytest.mark.parametrize("mode", ["open", "keyed"])
def test_a_cursor_past_64_bits_is_a_bad_request(
    apps: dict[str, tuple[TestClient, str]], mode: str, micros: int
) -> None:
    client, image_id = apps[mode]
    response = client.get(
        f"{API}/images",
        params={"cursor": encode_cursor(micros, image_id)},
        headers={"Authorization": "Bearer reader"},
    )
    assert response.status_code == 400, response.text
    assert response.json() == {
        "code": "invalid_request",
        "message": "cursor is not one this API returned; pass next_cursor unchanged",
    }
    edge = client.get(
        f"{API}/images",
        params={"cursor": encode_cursor(2**63 - 1, "z")},
        headers={"Authorization": "Bearer reader"},
    )
    assert edge.status_code == 200  # the largest capture time a column holds still pages


# What a server hands the app: header bytes are latin-1 text without control characters.
_HEADER = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=24
).map(lambda text: text.encode("latin-1"))
_AUTHORIZATION = st.one_of(
    st.none(),
    _HEADER,
    _HEADER.map(lambda value: b"Bearer " + value),
    st.sampled_from([b"Bearer reader", b"Bearer boss", "Bearer clé".encode(), b"bearer  boss"]),
)
_TIMES = st.datetimes(
    timezones=st.sampled_from(
        [None, UTC, timezone(timedelta(hours=14)), timezone(-timedelta(hours=12))]
    )
).map(datetime.isoformat)
_QUERY_TEXT = st.text(max_size=24)
#: Capture times for cursors: anywhere, and often near where a 64-bit column ends.
_MICROS = st.integers(-(2**80), 2**80) | st.builds(
    lambda offset, sign: sign * (2**63 + offset), st.integers(-8, 8), st.sampled_from([1, -1])
)


@dataclass(frozen=True)
class _Request:
    image_id: str
    params: dict[str, str]
    headers: dict[str, bytes]


@st.composite
def _requests(draw: st.DrawFn, image_id: str) -> _Request:
    def maybe(strategy: st.SearchStrategy[str]) -> str | None:
        return draw(st.one_of(st.none(), strategy))

    params = {
        "limit": maybe(st.one_of(st.integers(-3, 2**70).map(str), _QUERY_TEXT)),
        "cursor": maybe(st.one_of(_QUERY_TEXT, st.builds(encode_cursor, _MICROS, _QUERY_TEXT))),
        "device": maybe(st.one_of(st.just("cam-1"), _QUERY_TEXT)),
        "since": maybe(st.one_of(_TIMES, _QUERY_TEXT)),
        "until": maybe(st.one_of(_TIMES, _QUERY_TEXT)),
        "stage": maybe(st.one_of(st.sampled_from(["received", "classical"]), _QUERY_TEXT)),
        "format": maybe(st.one_of(st.sampled_from(["png", "jpeg", "webp"]), _QUERY_TEXT)),
    }
    headers = {"Authorization": draw(_AUTHORIZATION), "Accept": draw(st.none() | _HEADER)}
    return _Request(
        image_id=draw(st.one_of(st.just(image_id), _QUERY_TEXT.filter(bool))),
        params={k: v for k, v in params.items() if v is not None},
        headers={k: v for k, v in headers.items() if v is not None},
    )


@pytest.mark.parametrize("mode", ["open", "keyed"])
@hypothesis.settings(max_examples=120, deadline=None)
@given(data=st.data())
def test_no_api_input_gets_a_server_error(
    apps: dict[str, tuple[TestClient, str]], mode: str, data: st.DataObject
) -> None:
    client, image_id = apps[mode]
    request = data.draw(_requests(image_id))
    image = f"{API}/images/{quote(request.image_id, safe='')}"
    for path in (f"{API}/images", image, f"{image}/content", f"{API}/devices"):
        _get(client, path, request.params, request.headers)
    # Each list parameter alone too: with all of them, one bad value hides what the others do.
    for name in ("limit", "cursor", "device", "since", "until"):
        if name in request.params:
            _get(client, f"{API}/images", {name: request.params[name]}, request.headers)
    for path in ("/livez", "/readyz", "/metrics", "/"):
        _get(client, path, {}, request.headers)
