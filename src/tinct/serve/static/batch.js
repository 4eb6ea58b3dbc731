// Several photos at once: POST /api/batch (the upload's progress shown), then the batch's
// progress (GET /api/batch/{id}: photos done of the total) until its zip can be downloaded.
// Uses app.js's request() and form().
"use strict";

(() => {
  const el = (id) => document.getElementById(id);

  function show(text, kind = "", value = false) {
    el("batch-status").textContent = text;
    el("batch-status").className = kind;
    const bar = el("batch-progress");
    bar.hidden = value === false;
    if (value === null) bar.removeAttribute("value"); else if (value !== false) bar.value = value;
  }

  async function run(files) {
    if (!files.length) return;
    const total = files.reduce((n, f) => n + f.size, 0);
    if (total > state.maxBytes) {
      show(`${files.length} photos are ${(total / 2 ** 20).toFixed(1)} MB together; the limit is ` +
           `${(state.maxBytes / 2 ** 20).toFixed(0)} MB. Send fewer at a time.`, "error");
      return;
    }
    el("batch-download").hidden = true;
    document.body.dataset.batch = "busy";
    const f = form({ model: el("model").value, saturation: el("saturation").value, restore: el("restore").checked ? "1" : "" });
    for (const file of files) f.append("images", file, file.name);
    try {
      show(`Sending ${files.length} photos…`, "busy", 0);
      const started = await request("POST", "/api/batch", f, "json", (p) => show(`Sending ${files.length} photos…`, "busy", p * 0.1));
      let status = started.response;
      for (;;) {
        status = (await request("GET", `/api/batch/${encodeURIComponent(status.batch)}`)).response;
        show(`Colorized ${status.done} of ${status.total}…`, "busy", 0.1 + 0.9 * status.done / status.total);
        if (status.state === "done") break;
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
      const failed = status.failed.length;
      show(`Done: ${status.total - failed} of ${status.total} colorized` +
           (failed ? `; ${failed} failed (listed in errors.txt in the zip): ` +
                     status.failed.map((x) => `${x.name}: ${x.error}`).join("; ") : "."), failed ? "error" : "ok", 1);
      const link = el("batch-download");
      link.href = status.zip;
      link.download = `tinct-colorized-${status.total}.zip`;
      link.hidden = false;
      document.body.dataset.batch = "done";
    } catch (err) {
      show(`The batch failed: ${err.message}`, "error");
      document.body.dataset.batch = "error";
    }
  }

  el("batch-files").addEventListener("change", () => {
    run([...el("batch-files").files]);
    el("batch-files").value = "";
  });
})();
