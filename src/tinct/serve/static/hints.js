// The colour-hint editor of the colorize page: points on the photo (click to add, drag or
// arrow keys to move, Delete to remove), their colour from the model's likely colours at
// that point (swatches, POST /api/suggest) or an <input type=color>, undo and redo, a
// reference photo's palette (POST /api/palette), and the hints file (docs/GUIDE.md:
// version 1, relative units) saved and loaded. It sends nothing to /api/ab itself: app.js
// asks it for the form fields (fields()) and re-renders when it calls onChange.
"use strict";

const HintEditor = (() => {
  const el = (id) => document.getElementById(id);
  const POINT_SIZE = 5;  // tinct.hints.DEFAULT_POINT_SIZE
  const ed = { points: [], selected: -1, reference: null, referenceName: null, enabled: false, swatchModel: false,
               stem: "photo", width: 0, height: 0, undo: [], redo: [], drag: null, picking: false, revision: 0, swatchPoint: null,
               ask: 0, hooks: { onChange() {}, report() {}, suggest: null, palette: null } };

  const clamp = (v) => Math.min(1, Math.max(0, v));
  const round = (v) => Math.round(v * 1e4) / 1e4;

  function cssHex(colour) {  // any CSS colour -> "#rrggbb", or null (the browser's own parser)
    const ctx = document.createElement("canvas").getContext("2d");
    ctx.fillStyle = "#010203";
    ctx.fillStyle = String(colour);
    const out = ctx.fillStyle;
    if (!/^#[0-9a-f]{6}$/.test(out)) return null;  // rgba(...): a transparent colour
    return out === "#010203" && !/^#010203$/i.test(String(colour).trim()) ? null : out;
  }

  // ------------------------------------------------------------ history
  const snapshot = () => JSON.stringify({ points: ed.points.filter((p) => !p.pending), reference: ed.reference,
                                           referenceName: ed.referenceName });
  function commit() {  // call before a change: what undo goes back to
    ed.undo.push(snapshot());
    if (ed.undo.length > 200) ed.undo.shift();
    ed.redo = [];
  }
  function restore(from, to) {
    if (!from.length) return;
    to.push(snapshot());
    const s = JSON.parse(from.pop());
    Object.assign(ed, { points: s.points, reference: s.reference, referenceName: s.referenceName });
    ed.selected = Math.min(ed.selected, ed.points.length - 1);
    changed();
    showSwatches();
  }

  function changed() {
    ed.revision++;
    draw();
    ed.hooks.onChange();
  }

  // ------------------------------------------------------------ drawing
  function draw() {
    el("hint-layer").replaceChildren(...ed.points.map((p, i) => {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "hint-point" + (i === ed.selected ? " selected" : "") + (p.pending ? " pending" : "");
      b.style.left = `${p.x * 100}%`;
      b.style.top = `${p.y * 100}%`;
      b.style.background = p.colour;
      b.dataset.index = i;
      b.setAttribute("aria-label", `point ${i + 1}, ${p.pending ? "colour coming" : p.colour}, at ` +
                     `${Math.round(p.x * 100)}% across, ${Math.round(p.y * 100)}% down`);
      b.setAttribute("aria-pressed", String(i === ed.selected));
      return b;
    }));
    el("hint-delete").disabled = ed.selected < 0;
    el("hint-clear").disabled = ed.points.length === 0;
    el("hint-undo").disabled = ed.undo.length === 0;
    el("hint-redo").disabled = ed.redo.length === 0;
    el("reference-clear").hidden = !ed.reference;
    el("reference-thumb").hidden = !ed.reference || !el("reference-thumb").src;
    document.body.dataset.revision = String(ed.revision);
  }

  function select(i, focus = true) {
    ed.selected = i;
    if (i >= 0 && !ed.points[i].pending) el("hint-colour").value = ed.points[i].colour;
    draw();
    if (i >= 0 && focus) el("hint-layer").children[i].focus();
  }

  // ------------------------------------------------------------ swatches
  async function showSwatches(fillPending = false) {
    const box = el("swatches");
    const i = ed.selected;
    if (i < 0 || !ed.swatchModel || !ed.hooks.suggest) { box.replaceChildren(); ed.swatchPoint = null; return; }
    const ask = ++ed.ask, point = ed.points[i];
    if (ed.swatchPoint !== point) box.replaceChildren();  // another point's swatches: not clickable meanwhile
    ed.swatchPoint = point;
    box.setAttribute("aria-busy", "true");
    let colours = [];
    try {
      colours = await ed.hooks.suggest(point.x, point.y, fields(point));
    } catch (err) {
      ed.hooks.report(`No swatches: ${err.message}`, "error");
    }
    if (ask !== ed.ask) return;  // another point was chosen meanwhile
    box.removeAttribute("aria-busy");
    if (fillPending && point.pending && ed.points.includes(point)) {  // a new point: the likeliest colour first
      point.colour = colours.length ? colours[0].colour : el("hint-colour").value;
      delete point.pending;
      if (ed.points[ed.selected] === point) el("hint-colour").value = point.colour;
      changed();
    }
    box.replaceChildren(...colours.map((c, n) => {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "swatch";
      b.dataset.colour = c.colour;
      b.title = `${c.colour}: ${(c.probability * 100).toFixed(0)}% likely here`;
      b.setAttribute("aria-label", `likely colour ${n + 1}, ${b.title}`);
      b.setAttribute("aria-pressed", String(point.colour === c.colour));
      const chip = document.createElement("span");
      chip.style.background = c.colour;
      const label = document.createElement("small");
      label.textContent = `${(c.probability * 100).toFixed(0)}%`;
      b.append(chip, label);
      b.addEventListener("click", () => setColour(point, c.colour));
      return b;
    }));
  }

  function setColour(point, colour) {
    if (!ed.points.includes(point) || point.colour === colour) return;
    commit();
    point.colour = colour;
    el("hint-colour").value = colour;
    for (const b of el("swatches").children) b.setAttribute("aria-pressed", String(b.dataset.colour === colour));
    changed();
  }

  // ------------------------------------------------------------ pointer and keys
  function where(event) {  // the pointer's place as fractions of the photo
    const r = el("hint-layer").getBoundingClientRect();
    return { x: clamp((event.clientX - r.left) / r.width), y: clamp((event.clientY - r.top) / r.height) };
  }

  function remove(i) {
    if (i < 0) return;
    commit();
    ed.points.splice(i, 1);
    ed.selected = Math.min(i, ed.points.length - 1);
    changed();
    if (ed.selected >= 0) select(ed.selected); else el("hint-layer").focus();
    showSwatches();
  }

  function onPointerDown(event) {
    if (!ed.enabled || event.button !== 0) return;
    event.preventDefault();
    const marker = event.target.closest(".hint-point");
    if (marker) {
      select(Number(marker.dataset.index));
      ed.drag = { id: event.pointerId, moved: false, before: snapshot() };
    } else {  // a click on the photo: a new point, coloured by the model's likeliest colour there
      commit();
      ed.points.push({ ...where(event), colour: el("hint-colour").value, pending: ed.swatchModel || undefined });
      select(ed.points.length - 1);
      if (ed.swatchModel) { draw(); showSwatches(true); } else { changed(); }
      ed.drag = { id: event.pointerId, moved: false, before: null };
    }
    el("hint-layer").setPointerCapture(event.pointerId);
  }

  function onPointerMove(event) {
    if (!ed.drag || event.pointerId !== ed.drag.id || ed.selected < 0) return;
    Object.assign(ed.points[ed.selected], where(event));
    ed.drag.moved = true;
    const marker = el("hint-layer").children[ed.selected];
    marker.style.left = `${ed.points[ed.selected].x * 100}%`;
    marker.style.top = `${ed.points[ed.selected].y * 100}%`;
  }

  function onPointerUp(event) {
    if (!ed.drag || event.pointerId !== ed.drag.id) return;
    const { moved, before } = ed.drag;
    ed.drag = null;
    if (!moved) { if (before) showSwatches(); return; }
    if (before) { ed.undo.push(before); ed.redo = []; }
    if (!ed.points[ed.selected].pending) changed();
    select(ed.selected);
    showSwatches(Boolean(ed.points[ed.selected].pending));
  }

  function onKey(event) {
    if (!ed.enabled || ed.selected < 0) return;
    const step = event.shiftKey ? 0.05 : 0.01;
    const moves = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
    if (event.key === "Delete" || event.key === "Backspace") {
      event.preventDefault();
      remove(ed.selected);
    } else if (moves[event.key]) {
      event.preventDefault();
      commit();
      const p = ed.points[ed.selected];
      p.x = clamp(p.x + moves[event.key][0]);
      p.y = clamp(p.y + moves[event.key][1]);
      changed();
      select(ed.selected);
      showSwatches();
    } else if (event.key === "Escape") {
      select(-1, false);
      showSwatches();
    }
  }

  function onGlobalKey(event) {  // Ctrl+Z undo, Ctrl+Shift+Z or Ctrl+Y redo (not inside a text field)
    if (!ed.enabled || !(event.ctrlKey || event.metaKey) || event.target.closest("input[type=text], textarea, select")) return;
    const key = event.key.toLowerCase();
    if (key === "z" && !event.shiftKey) { event.preventDefault(); restore(ed.undo, ed.redo); }
    else if (key === "y" || (key === "z" && event.shiftKey)) { event.preventDefault(); restore(ed.redo, ed.undo); }
  }

  // ------------------------------------------------------------ the hints file
  function toJson(except = null) {  // the format of tinct.hints.to_json, relative units
    const points = ed.points.filter((p) => !p.pending && p !== except);
    return { version: 1, units: "relative", point_size: POINT_SIZE,
             points: points.map((p) => ({ x: round(p.x), y: round(p.y), colour: p.colour, ...(p.size ? { size: p.size } : {}) })),
             reference: ed.reference };
  }

  function fromJson(data) {  // -> points; throws an Error naming the problem
    if (!data || typeof data !== "object" || Array.isArray(data)) throw new Error("not a hints file (a JSON object)");
    if (data.version !== 1) throw new Error(`version must be 1, got ${JSON.stringify(data.version)}`);
    const units = data.units || "relative";
    if (units !== "relative" && units !== "pixels") throw new Error(`units must be relative or pixels, got ${units}`);
    if (units === "pixels" && !(ed.width && ed.height)) throw new Error("a file in pixels needs the photo first");
    if (!Array.isArray(data.points || [])) throw new Error("points must be a list");
    if ((data.points || []).length > 1000) throw new Error(`${data.points.length} points: at most 1000`);
    const size = data.point_size && data.point_size !== POINT_SIZE ? data.point_size : undefined;
    const points = (data.points || []).map((p, i) => {
      const colour = cssHex(p && (p.colour ?? p.color));
      let [x, y] = [Number(p && p.x), Number(p && p.y)];
      if (units === "pixels") [x, y] = [(x + 0.5) / ed.width, (y + 0.5) / ed.height];
      if (!colour || !(x >= 0 && x <= 1 && y >= 0 && y <= 1)) throw new Error(`point ${i + 1} is not a valid point`);
      return { x, y, colour, ...(p.size || size ? { size: p.size || size } : {}) };
    });
    return { points, reference: data.reference && typeof data.reference === "object" ? data.reference : null,
             dropped: typeof data.reference === "string" ? data.reference : null };
  }

  function save() {
    const blob = new Blob([JSON.stringify(toJson(), null, 1) + "\n"], { type: "application/json" });
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = `${ed.stem}.hints.json`;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 1000);
  }

  async function load(file) {
    if (!file) return;
    try {
      const got = fromJson(JSON.parse(await file.text()));
      commit();
      Object.assign(ed, { points: got.points, reference: got.reference, selected: -1,
                          referenceName: got.reference ? file.name : null });
      el("reference-thumb").removeAttribute("src");
      ed.hooks.report(`Loaded ${got.points.length} point(s) from ${file.name}` + (got.dropped ?
        `; its reference ${got.dropped} is a file name: drop that photo on "Reference photo".` : "."), "ok");
      changed();
      showSwatches();
    } catch (err) {
      ed.hooks.report(`Cannot load ${file.name}: ${err.message}`, "error");
    }
  }

  async function setReference(file) {
    if (!file || !ed.hooks.palette) return;
    try {
      const reference = await ed.hooks.palette(file);
      commit();
      ed.reference = reference;
      ed.referenceName = file.name;
      el("reference-thumb").src = URL.createObjectURL(file);
      changed();
    } catch (err) {
      ed.hooks.report(`Cannot use ${file.name} as a reference: ${err.message}`, "error");
    }
  }

  function fields(except = null) {  // what to add to an /api/ab or /api/suggest form: the hints JSON
    if (!ed.enabled) return {};
    const data = toJson(except);
    return data.points.length || data.reference ? { hints: JSON.stringify(data) } : {};
  }

  // ------------------------------------------------------------ what app.js calls
  return {
    init(hooks) {
      Object.assign(ed.hooks, hooks);
      const layer = el("hint-layer");
      layer.tabIndex = 0;
      layer.addEventListener("pointerdown", onPointerDown);
      layer.addEventListener("pointermove", onPointerMove);
      layer.addEventListener("pointerup", onPointerUp);
      layer.addEventListener("pointercancel", onPointerUp);
      layer.addEventListener("keydown", onKey);
      layer.addEventListener("focusin", (e) => {  // Tab to a point selects it (then arrows, Delete)
        const marker = e.target.closest(".hint-point");
        if (marker && Number(marker.dataset.index) !== ed.selected) { select(Number(marker.dataset.index)); showSwatches(); }
      });
      document.addEventListener("keydown", onGlobalKey);
      el("hint-colour").addEventListener("input", () => {
        const p = ed.points[ed.selected];
        if (!p) return;
        if (!ed.picking) { commit(); ed.picking = true; }  // one undo step per use of the picker
        p.colour = el("hint-colour").value;
        delete p.pending;
        changed();
      });
      el("hint-colour").addEventListener("change", () => { ed.picking = false; });
      el("hint-delete").addEventListener("click", () => remove(ed.selected));
      el("hint-clear").addEventListener("click", () => { commit(); ed.points = []; ed.selected = -1; changed(); showSwatches(); });
      el("hint-undo").addEventListener("click", () => restore(ed.undo, ed.redo));
      el("hint-redo").addEventListener("click", () => restore(ed.redo, ed.undo));
      el("hints-save").addEventListener("click", save);
      el("hints-load").addEventListener("change", () => { load(el("hints-load").files[0]); el("hints-load").value = ""; });
      el("reference").addEventListener("change", () => { setReference(el("reference").files[0]); el("reference").value = ""; });
      const drop = el("reference-drop");
      for (const type of ["dragenter", "dragover"]) drop.addEventListener(type, (e) => { e.preventDefault(); drop.classList.add("over"); });
      for (const type of ["dragleave", "drop"]) drop.addEventListener(type, () => drop.classList.remove("over"));
      drop.addEventListener("drop", (e) => { e.preventDefault(); if (ed.enabled) setReference(e.dataTransfer.files[0]); });
      el("reference-clear").addEventListener("click", () => {
        commit();
        ed.reference = null;
        ed.referenceName = null;
        el("reference-thumb").removeAttribute("src");
        changed();
      });
      draw();
    },
    setPhoto(name, width, height) {  // a new photo: its own (empty) hints and history
      Object.assign(ed, { points: [], selected: -1, reference: null, referenceName: null, undo: [], redo: [],
                          stem: name.replace(/\.[^.]*$/, "") || "photo", width, height });
      el("reference-thumb").removeAttribute("src");
      el("swatches").replaceChildren();
      draw();
    },
    setEnabled(enabled, swatches) {  // the chosen model takes hints (and gives a distribution for swatches)
      ed.enabled = enabled;
      ed.swatchModel = Boolean(enabled && swatches);
      el("editor").hidden = !enabled;
      el("hint-tools").disabled = !enabled;
      el("hint-layer").classList.toggle("off", !enabled);
      el("hint-note").textContent = enabled ?
        "Click the photo to add a colour point, then pick one of the model's likely colours below or any colour. " +
        "Drag a point (or select it and use the arrow keys) to move it; Delete removes it; Ctrl+Z undoes, " +
        "Ctrl+Shift+Z redoes. The result updates after each edit." : "";
      showSwatches();
    },
    fields,
    get revision() { return ed.revision; },
  };
})();
