// DCTLink gallery: the newest images as cards, live updates from the event stream, a device
// list, and a detail view that puts the received, classical and enhanced stages side by side,
// zoomed together (1:1 and beyond, panning in step) and under a slider between any two.
// Plain JavaScript, no build step and nothing loaded from elsewhere. Paths are relative so the
// page also works behind a reverse proxy that mounts the receiver under a prefix.

const API = "api/v1";
const STAGES = ["received", "classical", "enhanced"];
const STAGE_LABELS = { received: "Received", classical: "Classical", enhanced: "Enhanced" };
const THUMBNAIL_PREFERENCE = ["enhanced", "classical", "received"];
const PAGE_SIZE = 24;
const DEVICE_REFRESH_MS = 10_000;
const RETRY_MIN_MS = 1_000;
const RETRY_MAX_MS = 30_000;
const KEY_STORAGE = "dctlink.apiKey";
// What each image's jpeg_bytes is the size of (ImageOut.jpeg_bytes_basis). Only equal_quality
// compares pictures, so only it may be read as a saving; the others compare settings.
const JPEG_BASIS_LABELS = {
  equal_quality: "the JPEG of equal quality",
  same_quality_setting: "JPEG at the same quality setting (quality not matched)",
  assumed_quality_90: "JPEG at quality 90 (quality not matched)",
};

const $ = (selector) => document.querySelector(selector);

const state = {
  key: null, // API key (bearer), from ?key= or sessionStorage
  device: "", // device filter; "" shows every device
  cursor: null, // next_cursor of the last page loaded
  shown: new Map(), // image id -> ImageMeta of every card on the page
  devices: new Set(),
  retryMs: RETRY_MIN_MS,
  connectedOnce: false,
  stream: null, // { close() } of the live event connection
  detailUrls: [], // object URLs of the open detail view, revoked when it closes
  stageImages: new Map(), // stage -> Promise of its object URL, for the open detail view
  syncing: false, // a synced scroll is being applied: ignore the scroll events it causes
  generation: 0, // bumped by every reset, so a stale page answer is dropped
};

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// ---- small helpers -----------------------------------------------------------------------

// An adaptive payload (or a JPEG input's own tables) names no quality: say what its tables
// amount to (the nearest libjpeg quality) instead of "qnull".
function tablesText(meta, prefix) {
  if (meta.quality !== null) return `${prefix}${meta.quality}`;
  return meta.tables_quality == null ? "own tables" : `own tables ≈ ${prefix}${meta.tables_quality}`;
}

function profileLabel(meta) {
  return meta.quality === null ? `${meta.profile}, ${tablesText(meta, "q")}` : `${meta.profile} q${meta.quality}`;
}

function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") element.className = value;
    else if (name.startsWith("data-")) element.dataset[dataKey(name)] = String(value);
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  element.append(...children.filter((child) => child !== null && child !== undefined));
  return element;
}

function dataKey(name) {
  return name.slice(5).replace(/-([a-z])/g, (_, letter) => letter.toUpperCase());
}

function formatBytes(bytes) {
  if (bytes === null || bytes === undefined) return "unknown";
  if (bytes < 1000) return `${bytes} B`;
  if (bytes < 1_000_000) return `${(bytes / 1000).toFixed(1)} kB`;
  return `${(bytes / 1_000_000).toFixed(2)} MB`;
}

function formatMs(ms) {
  if (ms === null || ms === undefined) return "—";
  return ms < 10 ? `${ms.toFixed(1)} ms` : `${Math.round(ms)} ms`;
}

function formatTime(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso ?? "unknown";
  return date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
}

function timeElement(iso) {
  return h("time", { datetime: iso, title: iso }, formatTime(iso));
}

function ratioText(meta) {
  if (!meta.jpeg_bytes || !meta.payload_bytes) return "JPEG size unknown";
  const basis = JPEG_BASIS_LABELS[meta.jpeg_bytes_basis];
  if (meta.jpeg_bytes_basis !== "equal_quality") {
    // A ratio against a JPEG whose picture differs from ours is no saving: name it, no "×".
    return `vs ${basis ?? "JPEG of unknown basis"}`;
  }
  const ratio = meta.jpeg_bytes / meta.payload_bytes;
  return ratio >= 1
    ? `${ratio.toFixed(1)}× smaller than ${basis}`
    : `${(1 / ratio).toFixed(1)}× larger than ${basis}`;
}

function stageUrl(meta, stage, format) {
  const info = meta.stages?.[stage];
  const url = new URL(info?.url ?? `${API}/images/${meta.id}/content?stage=${stage}`, document.baseURI);
  if (format) url.searchParams.set("format", format);
  return url;
}

function bestStage(meta) {
  return THUMBNAIL_PREFERENCE.find((stage) => meta.stages?.[stage]?.available) ?? null;
}

function announce(text) {
  $("#announce").textContent = text;
}

function showNotice(text) {
  const notice = $("#notice");
  notice.textContent = text;
  notice.hidden = !text;
}

// ---- API ---------------------------------------------------------------------------------

function readKey() {
  const params = new URLSearchParams(location.search);
  if (params.has("key")) {
    const key = params.get("key");
    if (key) sessionStorage.setItem(KEY_STORAGE, key);
    else sessionStorage.removeItem(KEY_STORAGE);
    params.delete("key"); // keep the key out of the address bar, history and bookmarks
    const query = params.toString();
    history.replaceState(null, "", `${location.pathname}${query ? `?${query}` : ""}${location.hash}`);
  }
  return sessionStorage.getItem(KEY_STORAGE);
}

function headers(accept) {
  const result = { Accept: accept };
  if (state.key) result.Authorization = `Bearer ${state.key}`;
  return result;
}

async function errorOf(response) {
  let code = `http_${response.status}`;
  let message = response.statusText || "request failed";
  try {
    const body = await response.json();
    code = body.code ?? code;
    message = body.message ?? message;
  } catch {
    // not JSON: keep the status line
  }
  return new ApiError(response.status, code, message);
}

async function getJson(path, params = {}) {
  const url = new URL(path, document.baseURI);
  for (const [name, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== "") url.searchParams.set(name, value);
  }
  const response = await fetch(url, { headers: headers("application/json") });
  if (!response.ok) throw await errorOf(response);
  return response.json();
}

async function getBlob(url) {
  const response = await fetch(url, { headers: headers("image/*") });
  if (!response.ok) throw await errorOf(response);
  return response.blob();
}

function reportError(error) {
  if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
    $("#key-form").hidden = false;
    showNotice(state.key ? `The API key was refused: ${error.message}` : error.message);
    return;
  }
  showNotice(`Could not reach the receiver: ${error.message}`);
}

// Images: a plain src when no key is needed (lazy, cached by the browser); with a key the
// bytes are fetched with the Authorization header, since an <img> cannot send one.
function setImageSource(img, url) {
  if (!state.key) {
    img.src = url.href;
    return;
  }
  getBlob(url)
    .then((blob) => {
      img.src = URL.createObjectURL(blob);
      img.addEventListener("load", () => URL.revokeObjectURL(img.src), { once: true });
    })
    .catch(() => img.classList.add("broken"));
}

// ---- cards -------------------------------------------------------------------------------

function renderCard(meta) {
  const stage = bestStage(meta);
  const captured = formatTime(meta.captured_at);
  const thumbnail = stage
    ? h("img", {
        class: "thumb",
        alt: `${STAGE_LABELS[stage]} image from ${meta.device_id}, captured ${captured}`,
        width: meta.width,
        height: meta.height,
        loading: "lazy",
        decoding: "async",
      })
    : h("div", { class: "thumb thumb-missing" }, "No image available");
  if (stage) setImageSource(thumbnail, stageUrl(meta, stage, "jpeg"));
  const open = h(
    "button",
    { type: "button", class: "card-open", "aria-haspopup": "dialog" },
    meta.device_id,
  );
  open.addEventListener("click", () => openDetail(meta.id));
  return h(
    "li",
    {
      class: "card",
      "data-image-id": meta.id,
      "data-device-id": meta.device_id,
      "data-stage": stage ?? "none",
    },
    h(
      "article",
      { "aria-label": `Image from ${meta.device_id}, captured ${captured}` },
      thumbnail,
      h("h3", { class: "card-title" }, open),
      h("p", { class: "card-time" }, timeElement(meta.captured_at)),
      h(
        "p",
        { class: "card-sizes" },
        h("span", { "data-payload-bytes": meta.payload_bytes }, formatBytes(meta.payload_bytes)),
        ` payload · JPEG ${formatBytes(meta.jpeg_bytes)} · `,
        h("strong", { "data-jpeg-basis": meta.jpeg_bytes_basis ?? "none" }, ratioText(meta)),
      ),
      h(
        "p",
        { class: "card-tags" },
        `${profileLabel(meta)} · ${meta.width}×${meta.height}`,
        stage ? ` · ${stage}` : "",
      ),
    ),
  );
}

function matchesFilter(meta) {
  return !state.device || meta.device_id === state.device;
}

function addCards(items, position) {
  const gallery = $("#gallery");
  const cards = [];
  for (const meta of items) {
    if (!matchesFilter(meta)) continue;
    const existing = gallery.querySelector(`[data-image-id="${CSS.escape(meta.id)}"]`);
    state.shown.set(meta.id, meta);
    if (existing) {
      existing.replaceWith(renderCard(meta)); // a later stage may have become available
    } else {
      cards.push(renderCard(meta));
    }
  }
  if (position === "top") gallery.prepend(...cards);
  else gallery.append(...cards);
  updateEmptyState();
  return cards.length;
}

function updateEmptyState() {
  const empty = $("#empty");
  empty.hidden = state.shown.size > 0;
  empty.textContent = state.device
    ? `No images from ${state.device} yet.`
    : "No images yet. They appear here as soon as a device publishes one.";
}

async function loadPage(reset) {
  const gallery = $("#gallery");
  const more = $("#more");
  if (reset) {
    state.generation += 1;
    state.cursor = null;
    state.shown.clear();
    gallery.replaceChildren();
  }
  const generation = state.generation;
  gallery.setAttribute("aria-busy", "true");
  more.disabled = true;
  try {
    const page = await getJson(`${API}/images`, {
      limit: PAGE_SIZE,
      cursor: reset ? null : state.cursor,
      device: state.device,
    });
    if (generation !== state.generation) return; // the filter changed meanwhile
    addCards(page.items, "bottom");
    state.cursor = page.next_cursor;
    showNotice("");
  } catch (error) {
    reportError(error);
  } finally {
    gallery.setAttribute("aria-busy", "false");
    gallery.dataset.loaded = "true";
    more.hidden = !state.cursor;
    more.disabled = false;
    updateEmptyState();
  }
}

// After a reconnect: whatever arrived while the stream was down is on the first page.
async function catchUp() {
  try {
    const page = await getJson(`${API}/images`, { limit: PAGE_SIZE, device: state.device });
    const missed = page.items.filter((meta) => !state.shown.has(meta.id));
    addCards(missed, "top");
  } catch (error) {
    reportError(error);
  }
}

// ---- devices -----------------------------------------------------------------------------

function renderDevice(device) {
  const online = Boolean(device.online);
  const button = h(
    "button",
    {
      type: "button",
      class: "device-filter",
      "data-device-id": device.device_id,
      "aria-pressed": String(state.device === device.device_id),
    },
    h("span", { class: "device-name" }, device.device_id),
    h("span", { class: "device-state" }, online ? "online" : "offline"),
  );
  const lastSeen = device.last_seen
    ? h("span", { class: "device-seen" }, "last seen ", timeElement(device.last_seen))
    : h("span", { class: "device-seen" }, "never seen");
  return h(
    "li",
    {
      class: `device ${online ? "is-online" : "is-offline"}`,
      "data-device-id": device.device_id,
      "data-online": String(online),
      "data-status": device.status ?? "",
    },
    button,
    lastSeen,
  );
}

async function loadDevices() {
  try {
    const body = await getJson(`${API}/devices`);
    const list = $("#devices");
    const all = list.querySelector(".device-all");
    const items = [...body.items].sort((a, b) => a.device_id.localeCompare(b.device_id));
    state.devices = new Set(items.map((device) => device.device_id));
    list.replaceChildren(all, ...items.map(renderDevice));
    list.dataset.loaded = "true";
    $("#devices-empty").hidden = items.length > 0;
  } catch (error) {
    reportError(error);
  }
}

function selectDevice(deviceId) {
  state.device = deviceId;
  for (const button of document.querySelectorAll(".device-filter")) {
    button.setAttribute("aria-pressed", String(button.dataset.deviceId === deviceId));
  }
  $("#images-heading").textContent = deviceId ? `Newest images from ${deviceId}` : "Newest images";
  loadPage(true);
}

// ---- live updates ------------------------------------------------------------------------

function setLive(liveState, text) {
  const live = $("#live");
  live.dataset.state = liveState;
  live.querySelector(".live-text").textContent = text;
}

function onEvent(type, data) {
  if (type !== "image") return;
  let meta;
  try {
    meta = JSON.parse(data);
  } catch {
    return; // a malformed event must not stop the stream
  }
  const known = state.shown.has(meta.id);
  if (addCards([meta], "top") && !known) announce(`New image from ${meta.device_id}`);
  if (!state.devices.has(meta.device_id)) loadDevices();
}

function onConnected() {
  setLive("live", "Live");
  state.retryMs = RETRY_MIN_MS;
  if (state.connectedOnce) catchUp();
  state.connectedOnce = true;
}

function scheduleReconnect() {
  const delay = state.retryMs;
  state.retryMs = Math.min(state.retryMs * 2, RETRY_MAX_MS);
  setLive("offline", `Offline, retrying in ${Math.round(delay / 1000)} s`);
  setTimeout(connectEvents, delay);
}

function connectEvents() {
  state.stream?.close();
  setLive("connecting", "Connecting…");
  state.stream = state.key ? streamWithKey() : streamWithEventSource();
}

function streamWithEventSource() {
  const source = new EventSource(`${API}/events`);
  source.addEventListener("open", onConnected);
  source.addEventListener("image", (event) => onEvent("image", event.data));
  source.addEventListener("error", () => {
    if (source.readyState === EventSource.CLOSED) {
      scheduleReconnect(); // the server refused the stream: EventSource gives up, we don't
    } else {
      setLive("connecting", "Reconnecting…"); // EventSource retries by itself
    }
  });
  return source;
}

// EventSource cannot send an Authorization header, so with a key the stream is read with
// fetch and parsed here (the text/event-stream format: fields per line, a blank line ends).
function streamWithKey() {
  const abort = new AbortController();
  readStream(abort.signal).then(
    () => scheduleReconnect(),
    (error) => {
      if (abort.signal.aborted) return;
      if (error instanceof ApiError && error.status < 500) reportError(error);
      scheduleReconnect();
    },
  );
  return { close: () => abort.abort() };
}

async function readStream(signal) {
  const response = await fetch(`${API}/events`, {
    headers: headers("text/event-stream"),
    cache: "no-store",
    signal,
  });
  if (!response.ok) throw await errorOf(response);
  onConnected();
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer = (buffer + value).replace(/\r\n?/g, "\n");
    let end = buffer.indexOf("\n\n");
    while (end >= 0) {
      dispatchBlock(buffer.slice(0, end));
      buffer = buffer.slice(end + 2);
      end = buffer.indexOf("\n\n");
    }
  }
}

function dispatchBlock(block) {
  let type = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") type = value;
    else if (field === "data") data.push(value);
  }
  if (data.length) onEvent(type, data.join("\n"));
}

// ---- detail view -------------------------------------------------------------------------

function metaRow(term, ...description) {
  return h("div", {}, h("dt", {}, term), h("dd", {}, ...description)); // a <dl> may group pairs
}

function renderStage(meta, stage) {
  const info = meta.stages?.[stage] ?? { available: false, reason: "not reported" };
  const timing = meta.timings_ms?.[stage];
  const size = h("span", { class: "stage-bytes" });
  const caption = h(
    "figcaption",
    {},
    h("strong", {}, STAGE_LABELS[stage]),
    h("span", { class: "stage-timing" }, timing == null ? "not run" : `took ${formatMs(timing)}`),
    size,
  );
  if (!info.available) {
    return h(
      "figure",
      { class: "stage stage-unavailable", "data-stage": stage, "data-available": "false" },
      h("div", { class: "stage-missing" }, h("p", { class: "stage-reason" }, info.reason ?? "Not available")),
      caption,
    );
  }
  const img = h("img", {
    alt: `${STAGE_LABELS[stage]} stage of the image from ${meta.device_id}`,
    width: meta.width,
    height: meta.height,
  });
  img.classList.add("zoomable");
  const url = stageUrl(meta, stage, "png");
  const loaded = getBlob(url).then((blob) => {
    const objectUrl = URL.createObjectURL(blob);
    state.detailUrls.push(objectUrl);
    size.textContent = `PNG ${formatBytes(blob.size)}`;
    return objectUrl;
  });
  state.stageImages.set(stage, loaded);
  loaded
    .then((objectUrl) => {
      img.src = objectUrl;
    })
    .catch((error) => {
      img.replaceWith(h("div", { class: "stage-missing" }, h("p", {}, error.message)));
    });
  const link = state.key ? null : h("a", { href: url.href, download: `${meta.id}-${stage}.png` }, "Download PNG");
  const view = h("div", { class: "stage-view" }, img);
  return h(
    "figure",
    { class: "stage", "data-stage": stage, "data-available": "true" },
    view,
    caption,
    link,
  );
}

// ---- zoom, synced panning and the compare slider ------------------------------------------

function applyZoom(meta) {
  const zoom = $("#detail-zoom").value;
  const dialog = $("#detail");
  dialog.dataset.zoom = zoom;
  for (const element of dialog.querySelectorAll(".zoomable")) {
    if (zoom === "fit") {
      element.style.width = "";
      element.style.height = "";
    } else {
      // CSS pixels: at 1:1 one image pixel is one pixel of the page.
      element.style.width = `${meta.width * Number(zoom)}px`;
      element.style.height = `${meta.height * Number(zoom)}px`;
    }
  }
}

function syncScroll(source) {
  if (state.syncing) return;
  state.syncing = true;
  for (const view of $("#detail").querySelectorAll(".stage-view")) {
    if (view === source) continue;
    view.scrollLeft = source.scrollLeft;
    view.scrollTop = source.scrollTop;
  }
  requestAnimationFrame(() => {
    state.syncing = false;
  });
}

function dragToPan(view) {
  let start = null;
  view.addEventListener("pointerdown", (event) => {
    start = { x: event.clientX, y: event.clientY, left: view.scrollLeft, top: view.scrollTop };
    view.setPointerCapture(event.pointerId);
  });
  view.addEventListener("pointermove", (event) => {
    if (!start) return;
    view.scrollLeft = start.left - (event.clientX - start.x);
    view.scrollTop = start.top - (event.clientY - start.y);
  });
  const stop = () => {
    start = null;
  };
  view.addEventListener("pointerup", stop);
  view.addEventListener("pointercancel", stop);
}

function setSplit(percent) {
  $("#compare-left-image").style.clipPath = `inset(0 ${100 - percent}% 0 0)`;
  $("#compare-divider").style.left = `${percent}%`;
  $("#compare").dataset.split = String(percent);
}

async function showCompared(side, stage) {
  const img = $(`#compare-${side}-image`);
  img.dataset.stage = stage;
  img.alt = `${STAGE_LABELS[stage]} stage`;
  const url = await state.stageImages.get(stage);
  if (img.dataset.stage === stage) img.src = url; // unless another pick came meanwhile
}

function renderCompare(meta) {
  const available = STAGES.filter((stage) => meta.stages?.[stage]?.available);
  const compare = $("#compare");
  compare.hidden = available.length < 2;
  if (compare.hidden) return;
  const canvas = $("#compare-canvas");
  canvas.style.aspectRatio = `${meta.width} / ${meta.height}`;
  canvas.style.setProperty("--aspect", String(meta.width / meta.height));
  // Left: the least recovered stage; right: the most, so the slider shows what recovery did.
  const picks = { left: available[0], right: available[available.length - 1] };
  for (const side of ["left", "right"]) {
    const select = $(`#compare-${side}`);
    select.replaceChildren(
      ...available.map((stage) => h("option", { value: stage }, STAGE_LABELS[stage])),
    );
    select.value = picks[side];
    showCompared(side, picks[side]).catch(reportError);
  }
  setSplit(Number($("#compare-split").value));
}

function setUpViews() {
  $("#detail-zoom").addEventListener("change", () => {
    const meta = state.detailMeta;
    if (meta) applyZoom(meta);
  });
  $("#compare-split").addEventListener("input", (event) => setSplit(Number(event.target.value)));
  for (const side of ["left", "right"]) {
    $(`#compare-${side}`).addEventListener("change", (event) => {
      showCompared(side, event.target.value).catch(reportError);
    });
  }
  // Scroll events do not bubble: listen in the capture phase for every view, present and future.
  $("#detail").addEventListener(
    "scroll",
    (event) => {
      if (event.target.classList?.contains("stage-view")) syncScroll(event.target);
    },
    true,
  );
  dragToPan($("#compare-view"));
}

function renderDetail(meta) {
  const dialog = $("#detail");
  dialog.dataset.imageId = meta.id;
  $("#detail-title").textContent = `${meta.device_id} · ${formatTime(meta.captured_at)}`;
  $("#detail-meta").replaceChildren(
    metaRow("Image id", h("code", {}, meta.id)),
    metaRow("Captured", timeElement(meta.captured_at)),
    metaRow("Received", timeElement(meta.received_at)),
    metaRow("Size", `${meta.width}×${meta.height}, ${meta.layout}`),
    metaRow(
      "Profile",
      `${meta.profile}, ${tablesText(meta, meta.quality === null ? "q" : "quality ")}`,
    ),
    metaRow("Payload", formatBytes(meta.payload_bytes)),
    metaRow("Compared JPEG", `${formatBytes(meta.jpeg_bytes)} (${ratioText(meta)})`),
    metaRow("Decode", formatMs(meta.timings_ms?.decode)),
    metaRow("Model", meta.model_version ?? "none"),
  );
  $("#detail-stages").replaceChildren(...STAGES.map((stage) => renderStage(meta, stage)));
  for (const view of $("#detail-stages").querySelectorAll(".stage-view")) dragToPan(view);
  state.detailMeta = meta;
  renderCompare(meta);
  applyZoom(meta);
}

async function openDetail(id) {
  const dialog = $("#detail");
  const known = state.shown.get(id);
  try {
    const meta = await getJson(`${API}/images/${encodeURIComponent(id)}`).catch((error) => {
      if (known) return known; // show what the card knows if the refresh fails
      throw error;
    });
    releaseDetail();
    renderDetail(meta);
    if (!dialog.open) dialog.showModal();
    history.replaceState(null, "", `#image=${encodeURIComponent(id)}`);
  } catch (error) {
    reportError(error);
  }
}

function releaseDetail() {
  for (const url of state.detailUrls) URL.revokeObjectURL(url);
  state.detailUrls = [];
  state.stageImages = new Map();
  state.detailMeta = null;
  for (const side of ["left", "right"]) $(`#compare-${side}-image`).removeAttribute("src");
}

function setUpDetail() {
  const dialog = $("#detail");
  dialog.querySelector("[data-close]").addEventListener("click", () => dialog.close());
  dialog.addEventListener("click", (event) => {
    if (event.target === dialog) dialog.close(); // a click on the backdrop
  });
  dialog.addEventListener("close", () => {
    releaseDetail();
    $("#detail-stages").replaceChildren();
    delete dialog.dataset.imageId;
    history.replaceState(null, "", `${location.pathname}${location.search}`);
  });
}

// ---- start -------------------------------------------------------------------------------

function start() {
  state.key = readKey();
  setUpDetail();
  setUpViews();
  $("#more").addEventListener("click", () => loadPage(false));
  $("#devices").addEventListener("click", (event) => {
    const button = event.target.closest(".device-filter");
    if (button) selectDevice(button.dataset.deviceId);
  });
  $("#key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY_STORAGE, $("#key-input").value);
    location.reload();
  });
  connectEvents();
  loadPage(true);
  loadDevices();
  setInterval(loadDevices, DEVICE_REFRESH_MS);
  const linked = /^#image=(.+)$/.exec(location.hash);
  if (linked) openDetail(decodeURIComponent(linked[1]));
}

start();
