// The colorize page: pick or drop a photo, POST it to /api/colorize, show before/after;
// colour hints from the editor (hints.js) go with it, and an edit re-renders: debounced,
// one request in flight, the latest state sent when it ends.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { file: null, resultUrl: null, beforeUrl: null, maxBytes: 25 * 1024 * 1024, timer: null,
                busy: false, again: false, hints: {} };
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

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
      state.hints[m.name] = Boolean(m.hints);
    }
    state.maxBytes = health.limits.max_upload_mb * 1024 * 1024;
    HintEditor.setEnabled(Boolean(state.hints[$("model").value]));
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
  HintEditor.setPhoto(state.beforeUrl, file.name);
  render();
}

function schedule(ms = 300) {  // debounce: edits in quick succession make one request
  clearTimeout(state.timer);
  state.timer = setTimeout(render, ms);
}

async function render() {  // one request in flight; what changes meanwhile is sent when it ends
  if (!state.file) return;
  if (state.busy) { state.again = true; return; }
  state.busy = true;
  try {
    do { state.again = false; await colorize(); } while (state.again);
  } finally {
    state.busy = false;
  }
}

async function colorize() {
  const file = state.file;
  let response;
  for (let attempt = 0; ; attempt++) {
    const form = new FormData();
    form.append("image", file, file.name);
    form.append("model", $("model").value);
    form.append("saturation", $("saturation").value);
    for (const [name, value] of Object.entries(HintEditor.fields())) form.append(name, value);
    setStatus(`Colorizing ${file.name}…`, "busy");
    document.body.dataset.state = "busy";
    try {
      response = await fetch("/api/colorize", { method: "POST", body: form });
    } catch (err) {
      setStatus(`Upload failed: ${err}`, "error");
      return;
    }
    if (response.status !== 503 || attempt >= 5 || file !== state.file) break;
    const wait = Number(response.headers.get("Retry-After") || 2);
    setStatus(`The server is busy; trying again in ${wait} s…`, "busy");
    await sleep(wait * 1000);
  }
  if (file !== state.file) return;  // another photo was chosen meanwhile: its turn comes next
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail; } catch (_) { /* not JSON */ }
    setStatus(`Could not colorize ${file.name}: ${detail}`, "error");
    document.body.dataset.state = "error";
    return;
  }
  const blob = await response.blob();
  if (file !== state.file) return;
  if (state.resultUrl) URL.revokeObjectURL(state.resultUrl);
  state.resultUrl = URL.createObjectURL(blob);
  $("after").src = state.resultUrl;
  HintEditor.setResult(state.resultUrl);
  await $("after").decode().catch(() => {});
  const stem = file.name.replace(/\.[^.]*$/, "") || "photo";
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
  HintEditor.init(() => schedule(300), setStatus);
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
    schedule(350);
  });
  $("model").addEventListener("change", () => {
    HintEditor.setEnabled(Boolean(state.hints[$("model").value]));
    render();
  });
  $("split").addEventListener("input", () => setSplit($("split").value));
  $("before").addEventListener("error", () => { $("before").alt = "(this browser cannot show the original's format)"; });
  setSplit(50);
}

init();
