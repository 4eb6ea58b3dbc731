// The colorize page: pick or drop a photo; it is uploaded once (POST /api/photos) and its
// lightness fetched once; each render asks only for the model's low-resolution colours
// (POST /api/ab, with the editor's hints) and composes the result here (lab.js), so an edit
// sends no image and the saturation slider sends nothing at all. "Restore first" sends the
// photo again with restore=1: the server keeps the restored lightness, shown as "before". Renders are debounced, one
// request in flight, the latest state sent when it ends.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { file: null, photo: null, light: null, width: 0, height: 0, ab: null, grid: null, models: {},
                maxBytes: 25 * 1024 * 1024, timer: null, busy: false, again: false, frame: 0, rendered: 0, sending: 0 };
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function setStatus(text, kind = "") {
  $("status").textContent = text;
  $("status").className = kind;
}

function progress(value) {  // a number in [0, 1]; null: working, no measure (indeterminate); false: hidden
  const bar = $("progress");
  bar.hidden = value === false;
  if (value === null) bar.removeAttribute("value"); else if (value !== false) bar.value = value;
}

class HttpError extends Error {
  constructor(status, detail) { super(detail); this.status = status; }
}

// XHR rather than fetch: it reports upload and download progress.
function request(method, url, body, responseType = "json", onProgress = null) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(method, url);
    xhr.responseType = responseType;
    if (onProgress) {
      xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(0.9 * e.loaded / e.total);
      xhr.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total);
    }
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) { resolve(xhr); return; }
      let detail = xhr.statusText || `HTTP ${xhr.status}`;
      const body = xhr.response;
      if (body && typeof body === "object" && !(body instanceof ArrayBuffer) && body.detail) detail = body.detail;
      else if (body instanceof ArrayBuffer) {
        try { detail = JSON.parse(new TextDecoder().decode(body)).detail || detail; } catch (_) { /* not JSON */ }
      }
      reject(new HttpError(xhr.status, typeof detail === "string" ? detail : JSON.stringify(detail)));
    };
    xhr.onerror = () => reject(new HttpError(0, "the server cannot be reached"));
    xhr.send(body);
  });
}

function form(fields) {
  const f = new FormData();
  for (const [name, value] of Object.entries(fields)) if (value !== undefined && value !== null) f.append(name, value);
  return f;
}

async function loadModels() {
  try {
    const [models, health] = await Promise.all([fetch("/api/models").then((r) => r.json()), fetch("/healthz").then((r) => r.json())]);
    for (const m of models.models) {
      $("model").add(new Option(m.name, m.name, m.name === models.default, m.name === models.default));
      state.models[m.name] = m;
    }
    state.maxBytes = health.limits.max_upload_mb * 1024 * 1024;
    modelChanged();
  } catch (err) {
    setStatus(`Cannot reach the server: ${err}`, "error");
  }
}

function modelChanged() {
  const m = state.models[$("model").value] || {};
  $("model-note").textContent = m.description ? `${m.description}${m.hint_inputs ? "; its network takes colour hints" : ""}` : "";
  HintEditor.setEnabled(Boolean(m.hints), Boolean(m.distribution));
}

async function choose(file) {
  if (!file) return;
  if (file.size > state.maxBytes) {
    setStatus(`${file.name} is ${(file.size / 2 ** 20).toFixed(1)} MB; the limit is ${(state.maxBytes / 2 ** 20).toFixed(0)} MB.`, "error");
    return;
  }
  Object.assign(state, { file, photo: null, ab: null });
  if (await upload(file)) render();
}

async function upload(file) {  // -> true once the photo is on the server and its lightness here
  const token = ++state.sending;  // a later upload (another photo, "Restore first" toggled) wins
  const stale = () => file !== state.file || token !== state.sending;
  document.body.dataset.state = "busy";
  setStatus(`Sending ${file.name}${$("restore").checked ? " to restore" : ""}…`, "busy");
  progress(0);
  const restoring = $("restore").checked;
  try {
    const restore = restoring;
    const sent = await request("POST", "/api/photos", form({ image: file, model: $("model").value, restore: restore ? "1" : "" }),
                               "json", (f) => progress(0.8 * f));
    if (stale()) return false;
    const { photo, width, height } = sent.response;
    setStatus(`Reading ${file.name}…`, "busy");
    const got = await request("GET", `/api/photos/${encodeURIComponent(photo)}/lightness`, null, "arraybuffer",
                              (f) => progress(0.8 + 0.2 * f));
    if (stale()) return false;
    const fresh = state.width !== width || state.height !== height || !state.light;
    Object.assign(state, { photo, width, height, light: new Uint16Array(got.response) });
    if (fresh || !state.ab) {
      for (const c of [$("before"), $("after")]) { c.width = width; c.height = height; }
      HintEditor.setPhoto(file.name, width, height);
    }
    paint($("before"), null);  // the photo's lightness as the server keeps it: restored or not
    $("before").setAttribute("aria-label", restore ? "your photo, restored (its lightness, what the model sees)"
                                                   : "your photo (its lightness, what the model sees)");
    const first = $("workspace").hidden;
    $("workspace").hidden = false;
    $("drop").classList.add("compact");
    fit();
    if (first) $("workspace").scrollIntoView({ block: "start" });
    return true;
  } catch (err) {
    if (stale()) return false;
    if ($("restore").checked) $("restore").checked = false;  // what the page shows is the photo as sent, if any
    fail(`Could not read ${file.name}${restoring ? " to restore it" : ""}: ${err.message}`);
    return false;
  }
}

function fail(text) {
  progress(false);
  setStatus(text, "error");
  document.body.dataset.state = "error";
}

function schedule(ms = 150) {  // debounce: edits in quick succession make one request
  clearTimeout(state.timer);
  state.timer = setTimeout(render, ms);
}

async function render() {  // one request in flight; what changes meanwhile is sent when it ends
  if (!state.photo) return;
  if (state.busy) { state.again = true; return; }
  state.busy = true;
  try {
    do { state.again = false; await colorize(); } while (state.again);
  } finally {
    state.busy = false;
  }
}

async function colorize() {
  const file = state.file, revision = HintEditor.revision;
  document.body.dataset.state = "busy";
  setStatus(`Colorizing ${file.name}…`, "busy");
  progress(null);
  const started = performance.now();
  let got;
  for (let attempt = 0; ; attempt++) {
    const fields = { photo: state.photo, model: $("model").value, ...HintEditor.fields() };
    try {
      got = await request("POST", "/api/ab", form(fields), "arraybuffer");
      break;
    } catch (err) {
      if (file !== state.file) return;
      if (err.status === 404 && attempt < 2) {  // the server dropped the photo: send it again
        if (!(await upload(file))) return;
        continue;
      }
      if (err.status === 503 && attempt < 5) {
        setStatus("The server is busy; trying again…", "busy");
        await sleep(2000);
        continue;
      }
      fail(`Could not colorize ${file.name}: ${err.message}`);
      return;
    }
  }
  if (file !== state.file) return;  // another photo was chosen meanwhile: its turn comes next
  const [w, h] = got.getResponseHeader("X-Tinct-Grid").split("x").map(Number);
  Object.assign(state, { ab: new Float32Array(got.response), grid: [w, h] });
  paint($("after"), state.ab);
  $("download").disabled = false;
  progress(false);
  const server = Number(got.getResponseHeader("X-Tinct-Seconds") || 0);
  setStatus(`Done: ${state.width}x${state.height} with ${got.getResponseHeader("X-Tinct-Model")} in ` +
            `${((performance.now() - started) / 1000).toFixed(2)} s (model ${server.toFixed(2)} s). ` +
            "Drag the slider under the photo to compare.", "ok");
  state.rendered = revision;
  document.body.dataset.rendered = String(revision);
  document.body.dataset.state = "done";
}

function paint(canvas, ab) {  // compose the lightness with ab (null: grey) at the page's saturation
  const ctx = canvas.getContext("2d");
  const image = ctx.createImageData(state.width, state.height);
  const [w, h] = ab ? state.grid : [1, 1];
  Lab.compose(state.light, state.width, state.height, ab, w, h, ab ? Number($("saturation").value) : 1, image.data, null);
  ctx.putImageData(image, 0, 0);
}

function fit() {  // the photo as large as its column and the screen allow (a tall one fits the screen's height)
  if (!state.width) return;
  const column = $("compare").clientWidth || state.width;
  const room = Math.max(160, window.innerHeight - 96);
  const scale = Math.min(column / state.width, room / state.height, 3);
  $("before").style.width = `${Math.floor(state.width * scale)}px`;
  $("before").style.height = `${Math.floor(state.height * scale)}px`;
}

function setSplit(percent) {
  $("after").style.clipPath = `inset(0 0 0 ${percent}%)`;
  $("divider").style.left = `${percent}%`;
  $("divider").hidden = Number(percent) <= 0;
}

function download() {  // the page's own result (at its saturation) as a PNG
  if (!state.ab) return;
  $("after").toBlob((blob) => {
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = `${state.file.name.replace(/\.[^.]*$/, "") || "photo"}-colorized.png`;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 5000);
  }, "image/png");
}

async function suggest(x, y, hints) {  // the model's likely colours at (x, y), for the editor's swatches
  const got = await request("POST", "/api/suggest", form({ photo: state.photo, model: $("model").value, x, y, k: 6, ...hints }));
  return got.response.colours;
}

async function palette(file) {  // a reference photo's palette, for the hints' reference
  const got = await request("POST", "/api/palette", form({ image: file }));
  return got.response;
}

function init() {
  HintEditor.init({ onChange: () => schedule(150), report: setStatus, suggest, palette });
  loadModels();
  $("file").addEventListener("change", () => choose($("file").files[0]));
  const drop = $("drop");
  for (const type of ["dragenter", "dragover"]) {
    drop.addEventListener(type, (e) => { e.preventDefault(); drop.classList.add("over"); });
  }
  for (const type of ["dragleave", "drop"]) {
    drop.addEventListener(type, () => drop.classList.remove("over"));
  }
  drop.addEventListener("drop", (e) => { e.preventDefault(); choose(e.dataTransfer.files[0]); });
  $("saturation").addEventListener("input", () => {  // in the page: no request
    $("saturation-value").textContent = Number($("saturation").value).toFixed(2);
    if (!state.ab || state.frame) return;
    state.frame = requestAnimationFrame(() => { state.frame = 0; paint($("after"), state.ab); });
  });
  $("model").addEventListener("change", () => { modelChanged(); render(); });
  $("restore").addEventListener("change", async () => {  // the photo goes again, to be restored (or not) once
    if (state.file && (await upload(state.file))) render();
  });
  $("split").addEventListener("input", () => setSplit($("split").value));
  $("download").addEventListener("click", download);
  window.addEventListener("resize", fit);
  setSplit($("split").value);
}

init();
