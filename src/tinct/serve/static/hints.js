// The colour-hint editor of the colorize page: points on the photo (click to add, drag to
// move, Delete to remove), their colour from an <input type=color>, a reference photo, and
// the hints file (docs/GUIDE.md: version 1, relative units) saved and loaded. It sends
// nothing itself: app.js asks it for the form fields (fields()) and re-renders on change.
"use strict";

const HintEditor = (() => {
  const el = (id) => document.getElementById(id);
  const POINT_SIZE = 5;  // tinct.hints.DEFAULT_POINT_SIZE
  const ed = { points: [], selected: -1, reference: null, referenceFile: null, enabled: false, stem: "photo",
               onChange: () => {}, drag: null };

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

  function changed() {
    draw();
    ed.onChange();
  }

  function draw() {
    const layer = el("hint-layer");
    layer.replaceChildren(...ed.points.map((p, i) => {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "hint-point" + (i === ed.selected ? " selected" : "");
      b.style.left = `${p.x * 100}%`;
      b.style.top = `${p.y * 100}%`;
      b.style.background = p.colour;
      b.dataset.index = i;
      b.setAttribute("aria-label", `point ${i + 1}, ${p.colour}, at ${Math.round(p.x * 100)}% across, ` +
                     `${Math.round(p.y * 100)}% down`);
      b.setAttribute("aria-pressed", String(i === ed.selected));
      return b;
    }));
    el("hint-delete").disabled = ed.selected < 0;
    el("hint-clear").disabled = ed.points.length === 0;
    el("reference-clear").hidden = !ed.referenceFile && !ed.reference;
  }

  function select(i) {
    ed.selected = i;
    if (i >= 0) el("hint-colour").value = ed.points[i].colour;
    draw();
    if (i >= 0) el("hint-layer").children[i].focus();
  }

  function where(event) {  // the pointer's place as fractions of the photo
    const r = el("hint-layer").getBoundingClientRect();
    return { x: clamp((event.clientX - r.left) / r.width), y: clamp((event.clientY - r.top) / r.height) };
  }

  function remove(i) {
    if (i < 0) return;
    ed.points.splice(i, 1);
    ed.selected = Math.min(i, ed.points.length - 1);
    changed();
    if (ed.selected >= 0) select(ed.selected); else el("hint-layer").focus();
  }

  function onPointerDown(event) {
    if (!ed.enabled || event.button !== 0) return;
    event.preventDefault();
    const marker = event.target.closest(".hint-point");
    if (marker) {
      select(Number(marker.dataset.index));
    } else {  // a click on the photo: a new point in the picker's colour
      ed.points.push({ ...where(event), colour: el("hint-colour").value });
      select(ed.points.length - 1);
      ed.onChange();
    }
    ed.drag = { id: event.pointerId, moved: false };
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
    const moved = ed.drag.moved;
    ed.drag = null;
    if (moved) { changed(); select(ed.selected); }
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
      const p = ed.points[ed.selected];
      p.x = clamp(p.x + moves[event.key][0]);
      p.y = clamp(p.y + moves[event.key][1]);
      changed();
      select(ed.selected);
    }
  }

  // ------------------------------------------------------------ the hints file
  function toJson() {  // the format of tinct.hints.to_json, relative units
    return { version: 1, units: "relative", point_size: POINT_SIZE,
             points: ed.points.map((p) => ({ x: round(p.x), y: round(p.y), colour: p.colour, ...(p.size ? { size: p.size } : {}) })),
             reference: ed.reference };
  }

  function fromJson(data, width, height) {  // -> points; throws an Error naming the problem
    if (!data || typeof data !== "object" || Array.isArray(data)) throw new Error("not a hints file (a JSON object)");
    if (data.version !== 1) throw new Error(`version must be 1, got ${JSON.stringify(data.version)}`);
    const units = data.units || "relative";
    if (units !== "relative" && units !== "pixels") throw new Error(`units must be relative or pixels, got ${units}`);
    if (units === "pixels" && !(width && height)) throw new Error("a file in pixels needs the photo first");
    if (!Array.isArray(data.points || [])) throw new Error("points must be a list");
    const size = data.point_size && data.point_size !== POINT_SIZE ? data.point_size : undefined;
    const points = (data.points || []).map((p, i) => {
      const colour = cssHex(p && (p.colour ?? p.color));
      let [x, y] = [Number(p && p.x), Number(p && p.y)];
      if (units === "pixels") [x, y] = [(x + 0.5) / width, (y + 0.5) / height];
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

  async function load(file, report) {
    if (!file) return;
    try {
      const img = el("hint-photo");
      const got = fromJson(JSON.parse(await file.text()), img.naturalWidth, img.naturalHeight);
      ed.points = got.points;
      ed.reference = got.reference;
      ed.selected = -1;
      report(`Loaded ${got.points.length} point(s) from ${file.name}` + (got.dropped ?
             `; its reference ${got.dropped} is a file name: choose it with "Reference photo".` : "."), "ok");
      changed();
    } catch (err) {
      report(`Cannot load ${file.name}: ${err.message}`, "error");
    }
  }

  // ------------------------------------------------------------ what app.js calls
  return {
    init(onChange, report) {
      ed.onChange = onChange;
      const layer = el("hint-layer");
      layer.tabIndex = 0;
      layer.addEventListener("pointerdown", onPointerDown);
      layer.addEventListener("pointermove", onPointerMove);
      layer.addEventListener("pointerup", onPointerUp);
      layer.addEventListener("pointercancel", onPointerUp);
      layer.addEventListener("keydown", onKey);
      el("hint-colour").addEventListener("input", () => {
        if (ed.selected < 0) return;
        ed.points[ed.selected].colour = el("hint-colour").value;
        changed();
      });
      el("hint-delete").addEventListener("click", () => remove(ed.selected));
      el("hint-clear").addEventListener("click", () => { ed.points = []; ed.selected = -1; changed(); });
      el("hints-save").addEventListener("click", save);
      el("hints-load").addEventListener("change", () => { load(el("hints-load").files[0], report); el("hints-load").value = ""; });
      el("reference").addEventListener("change", () => { ed.referenceFile = el("reference").files[0] || null; changed(); });
      el("reference-clear").addEventListener("click", () => {
        ed.referenceFile = null;
        ed.reference = null;
        el("reference").value = "";
        changed();
      });
      draw();
    },
    setPhoto(url, name) {  // a new photo: its own (empty) hints
      ed.points = [];
      ed.selected = -1;
      ed.reference = null;
      ed.stem = name.replace(/\.[^.]*$/, "") || "photo";
      el("hint-photo").src = url;
      el("editor").hidden = false;
      draw();
    },
    setResult(url) { el("hint-photo").src = url; },
    setEnabled(enabled) {  // the chosen model takes hints (or not)
      ed.enabled = enabled;
      el("hint-tools").disabled = !enabled;
      el("hint-layer").classList.toggle("off", !enabled);
      el("hint-note").textContent = enabled ?
        "Click the photo to add a colour point, drag a point to move it (or select it and use the arrow keys), " +
        "pick its colour above; Delete removes the selected point. The result updates as you edit." :
        "This model takes no colour hints: choose a hint model above to guide the colours.";
    },
    fields() {  // what to add to the /api/colorize form: hints JSON and the reference photo
      if (!ed.enabled) return {};
      const out = {};
      if (ed.points.length || ed.reference) out.hints = JSON.stringify(toJson());
      if (ed.referenceFile) out.reference = ed.referenceFile;
      return out;
    },
  };
})();
