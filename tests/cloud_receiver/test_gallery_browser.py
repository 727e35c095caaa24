"""The gallery page in a real browser: edge sender -> mosquitto -> receiver -> headless Chromium.

The receiver runs as its own process (``cloud-receiver serve``) configured by environment
variables, images travel through the real sender and broker, and the page is driven with
Selenium. Nothing here sleeps for a fixed time: every wait polls the DOM or the service.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.command import Command
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select, WebDriverWait

from edge_sender.cli import main as edge_sender
from harness import Mosquitto, free_port, wait_until

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SAMPLES = sorted((Path(__file__).resolve().parents[2] / "samples").glob("*.png"))
WAIT_S = 30.0

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
        reason="needs Chromium: apt-get install chromium chromium-driver (.ci/run installs it)",
    ),
]

Browser = webdriver.Chrome
CARDS = "#gallery [data-image-id]"
TIMES = "\u00d7"  # the multiplication sign the gallery writes ratios with


def _receiver_command() -> list[str]:
    script = Path(sys.executable).with_name("cloud-receiver")
    if script.exists():
        return [str(script), "serve"]
    return [sys.executable, "-m", "cloud_receiver", "serve"]


def _ready(base: str) -> bool:
    try:
        return httpx.get(f"{base}/readyz", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def receiver(mosquitto: Mosquitto, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real receiver process with its own data folder; yields its base URL once ready."""
    workdir = tmp_path_factory.mktemp("receiver")
    port = free_port()
    env = {
        **os.environ,
        "DCTLINK_RECEIVER__BROKER__URL": mosquitto.url,
        "DCTLINK_RECEIVER__BROKER__CLIENT_ID": f"gallery-{uuid.uuid4().hex[:8]}",
        # The broker is shared by the session: drop our session, and its queue, when we leave.
        "DCTLINK_RECEIVER__BROKER__SESSION_EXPIRY_S": "1",
        "DCTLINK_RECEIVER__STORE__DATA_DIR": str(workdir / "data"),
        # No network: the enhanced stage is unavailable, and the page must say why.
        "DCTLINK_RECEIVER__RECOVERY__MODEL_PATH": str(workdir / "absent.onnx"),
        "DCTLINK_RECEIVER__API__HOST": "127.0.0.1",
        "DCTLINK_RECEIVER__API__PORT": str(port),
        "DCTLINK_RECEIVER__LOG_FORMAT": "text",
    }
    log_path = workdir / "receiver.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            _receiver_command(), env=env, stdout=log, stderr=subprocess.STDOUT
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            # /readyz means subscribed: an image published from now on reaches the store.
            while not _ready(base):
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"receiver did not become ready:\n{log_path.read_text()[-4000:]}")
                time.sleep(0.05)
            yield base
        finally:
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="module")
def browser(receiver: str) -> Iterator[Browser]:
    """Headless Chromium; it depends on ``receiver`` so that it quits before the receiver stops
    (uvicorn's shutdown waits for the page's open event stream)."""
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    with tempfile.TemporaryDirectory(prefix="gallery-chromium-") as profile:
        for argument in (
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-dev-shm-usage",
            f"--user-data-dir={profile}",
            "--window-size=1280,900",
        ):
            options.add_argument(argument)
        options.set_capability("goog:loggingPrefs", {"browser": "SEVERE"})
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
        try:
            yield driver
        finally:
            driver.quit()


def send(mosquitto: Mosquitto, device: str, spool: Path, path: Path, *extra: str) -> None:
    """Publish an image file with the real edge sender; returns once the broker has it."""
    flags = ["--broker", mosquitto.url, "--device-id", device, "--spool-path", str(spool)]
    assert edge_sender(["send", str(path), *flags, *extra, "--no-progress", "--timeout", "30"]) == 0


def listed_ids(receiver: str, device: str) -> list[str]:
    """What the REST API lists for one device, newest first."""
    response = httpx.get(f"{receiver}/api/v1/images", params={"device": device}, timeout=10)
    response.raise_for_status()
    return [str(item["id"]) for item in response.json()["items"]]


def wait_for(driver: Browser, condition: Callable[[Browser], Any], failure: str) -> Any:
    """Poll ``condition`` until it returns something truthy (never a fixed sleep)."""
    waiter = WebDriverWait(driver, WAIT_S, ignored_exceptions=[StaleElementReferenceException])
    return waiter.until(condition, failure)


def card_ids(driver: Browser, device: str) -> list[str]:
    """The image ids of the device's cards, in page order."""
    cards = driver.find_elements(By.CSS_SELECTOR, f'{CARDS}[data-device-id="{device}"]')
    return [card.get_attribute("data-image-id") or "" for card in cards]


def page_loaded(driver: Browser) -> bool:
    return driver.find_element(By.ID, "gallery").get_attribute("data-loaded") == "true"


def stream_open(driver: Browser) -> bool:
    return driver.find_element(By.ID, "live").get_attribute("data-state") == "live"


def images_loaded(selector: str) -> Callable[[Browser], bool]:
    """Every image matching ``selector`` (at least one) has been fetched and decoded."""
    script = (
        "const images = [...document.querySelectorAll(arguments[0])];"
        "return images.length > 0 && images.every(i => i.complete && i.naturalWidth > 0);"
    )
    return lambda driver: bool(driver.execute_script(script, selector))


def open_detail(driver: Browser) -> WebElement | None:
    detail = driver.find_element(By.ID, "detail")
    return detail if detail.is_displayed() else None


def test_gallery_lists_images_and_adds_new_ones_live(
    receiver: str, browser: Browser, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    device = f"gallery-{uuid.uuid4().hex[:8]}"
    spool = tmp_path / "spool.sqlite3"

    # A receiver with no images says so.
    browser.get(f"{receiver}/")
    wait_for(browser, page_loaded, "the page never finished loading")
    assert browser.find_element(By.ID, "empty").is_displayed()
    assert browser.find_elements(By.CSS_SELECTOR, CARDS) == []

    # Images sent while nobody watches are listed on the next visit, newest first.
    send(mosquitto, device, spool, SAMPLES[0])
    send(mosquitto, device, spool, SAMPLES[1])
    wait_for(browser, lambda _: len(listed_ids(receiver, device)) == 2, "images not stored")
    browser.get(f"{receiver}/")
    wait_for(browser, lambda d: len(card_ids(d, device)) == 2, "the two images are not listed")
    assert card_ids(browser, device) == listed_ids(receiver, device)
    assert not browser.find_element(By.ID, "empty").is_displayed()
    card = browser.find_element(By.CSS_SELECTOR, CARDS)
    assert device in (card.find_element(By.TAG_NAME, "img").get_attribute("alt") or "")
    assert "payload" in card.text
    # The sender's default (auto) promises the quality, so the card may claim a saving.
    saving = card.find_element(By.CSS_SELECTOR, "[data-jpeg-basis]")
    assert saving.get_attribute("data-jpeg-basis") == "equal_quality"
    assert re.fullmatch(
        rf"\d+\.\d{TIMES} (smaller|larger) than the JPEG of equal quality", saving.text
    )
    wait_for(browser, images_loaded("#gallery img"), "the thumbnails did not load")

    # The device list shows the sender.
    device_item = f'#devices li[data-device-id="{device}"]'
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, device_item), "no device entry")

    # A third image appears at the top, without a reload.
    wait_for(browser, stream_open, "the event stream never opened")
    browser.execute_script("window.notReloaded = true;")
    send(mosquitto, device, spool, SAMPLES[2])
    wait_for(browser, lambda d: len(card_ids(d, device)) == 3, "the new image did not appear")
    assert browser.execute_script("return window.notReloaded === true;")
    newest = listed_ids(receiver, device)[0]
    assert card_ids(browser, device)[0] == newest

    # A profile that promises no quality is compared with a JPEG of the same setting, and the
    # card says so instead of claiming a saving.
    send(mosquitto, device, spool, SAMPLES[3], "--encode-profile", "lowpass")
    wait_for(browser, lambda d: len(card_ids(d, device)) == 4, "the lowpass image did not appear")
    items = httpx.get(f"{receiver}/api/v1/images", params={"device": device}, timeout=10).json()
    (lowpass_id,) = [item["id"] for item in items["items"] if item["profile"] == "lowpass"]
    lowpass = browser.find_element(By.CSS_SELECTOR, f'{CARDS}[data-image-id="{lowpass_id}"]')
    label = lowpass.find_element(By.CSS_SELECTOR, "[data-jpeg-basis]")
    assert label.get_attribute("data-jpeg-basis") == "same_quality_setting"
    assert label.text == "vs JPEG at the same quality setting (quality not matched)"
    assert TIMES not in label.text
    assert "lowpass q75" in lowpass.text

    # A byte budget names no quality: its card says the tables are its own (not "qnull").
    send(mosquitto, device, spool, SAMPLES[0], "--encode-profile", "adaptive")
    wait_for(browser, lambda d: len(card_ids(d, device)) == 5, "the adaptive image did not appear")
    items = httpx.get(f"{receiver}/api/v1/images", params={"device": device}, timeout=10).json()
    (adaptive_id,) = [item["id"] for item in items["items"] if item["profile"] == "adaptive"]
    adaptive = browser.find_element(By.CSS_SELECTOR, f'{CARDS}[data-image-id="{adaptive_id}"]')
    assert re.search(r"adaptive, own tables ≈ q\d+", adaptive.text), adaptive.text
    assert "null" not in adaptive.text

    # Its card opens the stages side by side; the enhanced one says why it is missing.
    browser.find_element(By.CSS_SELECTOR, f'{CARDS}[data-image-id="{newest}"] .card-open').click()
    detail: WebElement = wait_for(browser, open_detail, "the detail view did not open")
    assert detail.get_attribute("data-image-id") == newest
    saving_text = rf"\d+\.\d{TIMES} (smaller|larger) than the JPEG of equal quality"
    compared = rf"Compared JPEG\s+\S+ kB \({saving_text}\)"
    # The stylesheet shows terms in capitals, and Selenium reads the rendered text.
    assert re.search(compared, detail.find_element(By.ID, "detail-meta").text, re.IGNORECASE)
    figures = detail.find_elements(By.TAG_NAME, "figure")
    stages = {figure.get_attribute("data-stage"): figure for figure in figures}
    assert list(stages) == ["received", "classical", "enhanced"]
    assert stages["enhanced"].get_attribute("data-available") == "false"
    assert stages["enhanced"].find_element(By.CLASS_NAME, "stage-reason").text
    wait_for(browser, images_loaded("#detail img"), "the stage images did not load")
    for stage in ("received", "classical"):
        assert stages[stage].get_attribute("data-available") == "true"
        assert "ms" in stages[stage].find_element(By.CLASS_NAME, "stage-timing").text
        assert "PNG" in stages[stage].find_element(By.CLASS_NAME, "stage-bytes").text
    assert browser.save_screenshot(str(tmp_path / "gallery-detail.png"))

    detail.find_element(By.CSS_SELECTOR, "[data-close]").click()
    wait_for(browser, lambda d: open_detail(d) is None, "the detail view did not close")
    # Nothing failed on the page: no script error, no request answered with an error status.
    log = browser.execute(Command.GET_LOG, {"type": "browser"})["value"]
    assert [entry["message"] for entry in log if entry["level"] == "SEVERE"] == []


def test_api_docs_render_from_the_receiver_alone(receiver: str, browser: Browser) -> None:
    """/docs used to load Swagger UI from a CDN: blank on a receiver without internet."""
    browser.get(f"{receiver}/docs")

    def operations(driver: Browser) -> list[WebElement]:
        return driver.find_elements(By.CSS_SELECTOR, ".swagger-ui .opblock-summary-path")

    wait_for(browser, operations, "Swagger UI did not render the API's operations")
    paths = {element.text.replace("\u200b", "") for element in operations(browser)}
    assert "/api/v1/images" in paths
    title = browser.find_element(By.CSS_SELECTOR, ".swagger-ui .info .title").text
    assert title.startswith("DCTLink receiver")
    fetched = browser.execute_script(
        "return performance.getEntriesByType('resource').map(entry => entry.name)"
    )
    assert fetched
    assert all(url.startswith(receiver) for url in fetched), fetched


def test_detail_zooms_the_stages_together_and_slides_between_two(
    receiver: str, browser: Browser, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    """1:1 and 400% zoom, panning one stage pans the others, a slider between two stages."""
    device = f"zoom-{uuid.uuid4().hex[:8]}"
    send(mosquitto, device, tmp_path / "spool.sqlite3", SAMPLES[1])
    assert wait_until(lambda: len(listed_ids(receiver, device)) == 1, timeout_s=WAIT_S)
    (image_id,) = listed_ids(receiver, device)
    meta = httpx.get(f"{receiver}/api/v1/images/{image_id}", timeout=10).json()
    browser.get(f"{receiver}/#image={image_id}")
    detail: WebElement = wait_for(browser, open_detail, "the detail view did not open")

    def loaded(driver: Browser) -> bool:
        images = driver.find_elements(By.CSS_SELECTOR, "#detail .stage-view img, .compare-layer")
        return len(images) >= 4 and all(
            driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", i)
            for i in images
        )

    wait_for(browser, loaded, "the stage pictures did not load")
    zoom = Select(detail.find_element(By.ID, "detail-zoom"))
    views = detail.find_elements(By.CSS_SELECTOR, ".stage[data-available=true] .stage-view")
    assert len(views) == 2  # received and classical: this receiver has no network

    # 1:1: one image pixel per CSS pixel (headless Chromium draws at device pixel ratio 1).
    zoom.select_by_visible_text("1:1")
    for view in views:
        img = view.find_element(By.TAG_NAME, "img")
        assert img.rect["width"] == meta["width"]
        assert img.rect["height"] == meta["height"]

    # 400%: panning one stage pans the other and the compare view by as much.
    zoom.select_by_visible_text("400%")
    assert views[0].find_element(By.TAG_NAME, "img").rect["width"] == 4 * meta["width"]
    browser.execute_script("arguments[0].scrollTo(10, 150)", views[0])
    compare_view = detail.find_element(By.ID, "compare-view")

    def followed(driver: Browser) -> bool:
        positions = [
            driver.execute_script("return [arguments[0].scrollLeft, arguments[0].scrollTop]", v)
            for v in (*views, compare_view)
        ]
        return all(p == [10, 150] for p in positions)

    wait_for(browser, followed, "the other views did not pan with the first")

    # The slider: left of the split the left stage shows, right of it the right stage.
    zoom.select_by_visible_text("Fit")
    left = Select(detail.find_element(By.ID, "compare-left"))
    right = Select(detail.find_element(By.ID, "compare-right"))
    assert (left.first_selected_option.text, right.first_selected_option.text) == (
        "Received",
        "Classical",
    )
    split = detail.find_element(By.ID, "compare-split")
    browser.execute_script(
        "arguments[0].value = 30; arguments[0].dispatchEvent(new Event('input'))", split
    )
    canvas = detail.find_element(By.ID, "compare-canvas")
    browser.execute_script("arguments[0].scrollIntoView()", canvas)

    def stage_at(fraction: float) -> str:
        shown: str = browser.execute_script(
            "const r = arguments[0].getBoundingClientRect();"
            "const hit = document.elementFromPoint(r.left + r.width * arguments[1],"
            " r.top + r.height / 2);"
            "return hit && hit.dataset ? hit.dataset.stage || hit.id : null;",
            canvas,
            fraction,
        )
        return shown

    assert stage_at(0.2) == "received"
    assert stage_at(0.5) == "classical"
    # Swap the sides: the slider now reveals the classical stage on the left.
    left.select_by_value("classical")
    right.select_by_value("received")
    assert stage_at(0.2) == "classical"
    assert stage_at(0.8) == "received"
    assert browser.save_screenshot(str(tmp_path / "gallery-compare.png"))
    log = browser.execute(Command.GET_LOG, {"type": "browser"})["value"]
    assert [entry["message"] for entry in log if entry["level"] == "SEVERE"] == []
