// The colorize page: pick or drop a photo, POST it to /api/colorize, show before/after.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { file: null, request: 0, resultUrl: null, beforeUrl: null, maxBytes: 25 * 1024 * 1024, timer: null };

function setStatus(text, kind = "") {
  $("status").textContent = text;
  $("status").className = kind;
}

async function loadModels() {
  try {
    const [models, health] = await Promise.all([fetch("/api/models").then((r) => r.json()), fetch("/healthz").then((r) => r.json())]);
    for (const m of models.models) {
      const option = new Option(`${m.name}: ${m.description}`, m.name, m.name === models.default, m.name === models.default);
      $("model").add(option);
    }
    state.maxBytes = health.limits.max_upload_mb * 1024 * 1024;
  } catch (err) {
    setStatus(`Cannot reach the server: ${err}`, "error");
  }
}

function choose(file) {
  if (!file) return;
  if (file.size > state.maxBytes) {
    setStatus(`${file.name} is ${(file.size / 2 ** 20).toFixed(1)} MB; the limit is ${(state.maxBytes / 2 ** 20).toFixed(0)} MB.`, "error");
    return;
  }
  state.file = file;
  if (state.beforeUrl) URL.revokeObjectURL(state.beforeUrl);
  state.beforeUrl = URL.createObjectURL(file);
  $("before").src = state.beforeUrl;
  colorize();
}

async function colorize(attempt = 0) {
  if (!state.file) return;
  const id = ++state.request;  // answers to older requests are ignored
  const form = new FormData();
  form.append("image", state.file, state.file.name);
  form.append("model", $("model").value);
  form.append("saturation", $("saturation").value);
  setStatus(`Colorizing ${state.file.name}…`, "busy");
  document.body.dataset.state = "busy";
  let response;
  try {
    response = await fetch("/api/colorize", { method: "POST", body: form });
  } catch (err) {
    if (id === state.request) setStatus(`Upload failed: ${err}`, "error");
    return;
  }
  if (id !== state.request) return;
  if (response.status === 503 && attempt < 5) {
    const wait = Number(response.headers.get("Retry-After") || 2);
    setStatus(`The server is busy; trying again in ${wait} s…`, "busy");
    setTimeout(() => { if (id === state.request) colorize(attempt + 1); }, wait * 1000);
    return;
  }
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail; } catch (_) { /* not JSON */ }
    setStatus(`Could not colorize ${state.file.name}: ${detail}`, "error");
    document.body.dataset.state = "error";
    return;
  }
  const blob = await response.blob();
  if (id !== state.request) return;
  if (state.resultUrl) URL.revokeObjectURL(state.resultUrl);
  state.resultUrl = URL.createObjectURL(blob);
  $("after").src = state.resultUrl;
  await $("after").decode().catch(() => {});
  const stem = state.file.name.replace(/\.[^.]*$/, "") || "photo";
  $("download").href = state.resultUrl;
  $("download").download = `${stem}-colorized.png`;
  $("download").hidden = false;
  $("compare").hidden = false;
  const seconds = response.headers.get("X-Tinct-Seconds");
  setStatus(`Done: ${response.headers.get("X-Tinct-Size")} with ${response.headers.get("X-Tinct-Model")}` +
            (seconds ? ` in ${Number(seconds).toFixed(2)} s` : "") + ". Drag the slider to compare.", "ok");
  document.body.dataset.state = "done";
}

function setSplit(percent) {
  $("after").style.clipPath = `inset(0 0 0 ${percent}%)`;
  $("divider").style.left = `${percent}%`;
}

function init() {
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
  $("saturation").addEventListener("input", () => {
    $("saturation-value").textContent = Number($("saturation").value).toFixed(2);
    clearTimeout(state.timer);
    state.timer = setTimeout(() => colorize(), 350);
  });
  $("model").addEventListener("change", () => colorize());
  $("split").addEventListener("input", () => setSplit($("split").value));
  $("before").addEventListener("error", () => { $("before").alt = "(this browser cannot show the original's format)"; });
  setSplit(50);
}

init();
