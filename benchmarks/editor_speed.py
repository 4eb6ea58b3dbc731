"""How long one edit in the web page's hint editor takes to show, for a 1 MP photo.

    PYTHONPATH=src python benchmarks/editor_speed.py                       # the bundled default
    PYTHONPATH=src python benchmarks/editor_speed.py --model random-hints  # a random-weight hint network

The real app runs under uvicorn on loopback (a thread of this process); a client moves one
hint point per edit (a new place each time) and times, per edit, the median of
``--repeats``:

- **page now**: ``POST /api/ab`` naming the stored photo (``POST /api/photos`` once) with
  the hints, plus composing the 1 MP result from the lightness and that ab in the page's
  own ``static/lab.js`` (run by Node, timed there; skipped without Node);
- **before**: what the page did before: ``POST /api/colorize`` with the whole photo (JPEG)
  and the hints, the PNG back, decoded (Pillow standing in for the browser);
- ``POST /api/colorize`` naming the stored photo (the server composes and encodes the PNG);
- the network pass alone (``Colorizer.predict_ab_batched``): the floor of any edit.

By default the model is the bundled ``default``, which follows the hints without hint
inputs (one network pass, the palette shift and the points spread on the working grid:
``tinct.Colorizer.follow``). ``--model random-hints`` times a hint network instead: a
random-weight ``effunet_bins313`` with hints at working size 160 (the ``default-hints``
recipe's) costs what a trained one does. Prints the figures, their ratio and whether an edit is within
``--budget`` (0.3 s). Timings are of this machine as it is (its load average is printed):
on a loaded machine they are an upper bound; compare the ratio.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

STATIC = Path(__file__).resolve().parents[1] / "src" / "tinct" / "serve" / "static"


def photo_jpeg(w: int, h: int) -> bytes:
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    g = 0.5 + 0.25 * np.sin(x / 37) * np.cos(y / 29) + 0.2 * ((x // 97 + y // 89) % 2 - 0.5)
    buf = io.BytesIO()
    Image.fromarray((np.clip(g, 0, 1) * 255).astype(np.uint8), "L").save(buf, "JPEG", quality=90)
    return buf.getvalue()


def multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes]], boundary: str = "tinctbench") -> tuple[bytes, str]:
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields.items()]
    for k, (name, data) in files.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"; filename="{name}"\r\n'
                     "Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


class Server:
    """The app under uvicorn on a free loopback port, in a thread."""

    def __init__(self, app):
        import uvicorn

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self):
        self.thread.start()
        while not self.server.started:
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=15)

    def post(self, path: str, fields: dict, files: dict | None = None) -> tuple[int, bytes, dict]:
        body, ctype = multipart(fields, files or {})
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=300)
        conn.request("POST", path, body, {"Content-Type": ctype, "Host": "localhost"})
        r = conn.getresponse()
        out = r.read(), dict(r.getheaders())
        conn.close()
        return r.status, *out


class Clock:
    """Wall seconds and this process's CPU seconds (all its threads: client, server, workers)
    of a block. On an idle machine the wall time of work on at most two threads is at most its
    CPU time; on a loaded one the CPU time is the steadier figure."""

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu


def hints_at(i: int) -> str:
    rng = np.random.default_rng(i)
    points = [{"x": float(rng.uniform(0.05, 0.95)), "y": float(rng.uniform(0.05, 0.95)), "colour": c}
              for c in ("#c03030", "#3050c0")]
    return json.dumps({"version": 1, "units": "relative", "points": points})


def node_compose_ms(w: int, h: int, grid: tuple[int, int], repeats: int) -> tuple[list[float], list[float]] | None:
    """(wall ms, CPU ms) of each run of lab.js composing a w x h photo, in Node; None without Node."""
    if shutil.which("node") is None:
        return None
    gw, gh = grid
    script = f"""
const Lab = require({json.dumps(str(STATIC / "lab.js"))});
const L = new Uint16Array({w * h}); for (let i = 0; i < L.length; i++) L[i] = (i * 7919) % 65535;
const ab = new Float32Array({2 * gw * gh}); for (let i = 0; i < ab.length; i++) ab[i] = Math.sin(i) * 60;
const out = new Uint8ClampedArray({w * h * 4}); const wall = [], cpu = [];
for (let r = 0; r < {repeats + 2}; r++) {{
  const t = process.hrtime.bigint(), c = process.cpuUsage(); Lab.compose(L, {w}, {h}, ab, {gw}, {gh}, 1.0, out, null);
  const u = process.cpuUsage(c); wall.push(Number(process.hrtime.bigint() - t) / 1e6); cpu.push((u.user + u.system) / 1e3); }}
console.log(JSON.stringify([wall.slice(2), cpu.slice(2)]));"""
    done = subprocess.run(["node", "-e", script], capture_output=True, text=True, timeout=600, check=True)
    return json.loads(done.stdout)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="default",
                   help="a model (checkpoint or bundled name; default: the bundled default), or random-hints")
    p.add_argument("--width", type=int, default=1200)
    p.add_argument("--height", type=int, default=834)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--threads", type=int, default=2, help="torch threads (the target is 2 cores)")
    p.add_argument("--budget", type=float, default=0.3, help="seconds an edit may take (0.3)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    from tinct import checkpoint
    from tinct.models import create_model
    from tinct.serve import ServeSettings, create_app, load_models

    tmp = Path(tempfile.mkdtemp(prefix="tinct-editor-bench-"))
    model = args.model
    if model == "random-hints":
        torch.manual_seed(0)
        model = str(tmp / "hints.pt")
        checkpoint.save(model, create_model("effunet_bins313", pretrained=False, hints=True).eval(), {"size": 160})
    models = load_models([f"hints={model}"])
    colorizer = models["hints"].colorizer
    app = create_app(ServeSettings(models=["hints"], db=tmp / "db" / "s.sqlite", max_upload_mb=50), models=models)
    jpeg = photo_jpeg(args.width, args.height)
    mp = args.width * args.height / 1e6
    names = ("ab", "before", "before_decode", "by_id", "network")
    wall: dict[str, list[float]] = {k: [] for k in names}
    cpu: dict[str, list[float]] = {k: [] for k in names}
    from tinct.hints import from_text

    with Server(app) as server:
        status, body, _ = server.post("/api/photos", {}, {"image": ("bench.jpg", jpeg)})
        assert status == 201, body
        photo = json.loads(body)["photo"]
        L = app.state.tinct.photos.get(photo).L
        for i in range(args.repeats + 1):  # the first of each is a warm-up
            h, clocks = hints_at(i), []
            with Clock() as c:
                status, body, head = server.post("/api/ab", {"photo": photo, "hints": h})
            assert status == 200, body
            clocks.append(c)
            grid = tuple(int(v) for v in head["x-tinct-grid"].split("x"))
            with Clock() as c:
                status, body, _ = server.post("/api/colorize", {"hints": h}, {"image": ("bench.jpg", jpeg)})
            assert status == 200, body
            clocks.append(c)
            with Clock() as c:
                Image.open(io.BytesIO(body)).load()
            clocks.append(c)
            with Clock() as c:
                status, body, _ = server.post("/api/colorize", {"photo": photo, "hints": h})
            assert status == 200, body
            clocks.append(c)
            with Clock() as c:
                colorizer.predict_ab_batched([L], None, None, 8, [from_text(h)])
            clocks.append(c)
            if i:
                for k, c in zip(names, clocks):
                    wall[k].append(c.wall)
                    cpu[k].append(c.cpu)
    compose = node_compose_ms(args.width, args.height, grid, args.repeats)
    med = {k: statistics.median(v) for k, v in wall.items()}
    mcpu = {k: statistics.median(v) for k, v in cpu.items()}
    comp = (statistics.median(compose[0]) / 1000, statistics.median(compose[1]) / 1000) if compose else (0.0, 0.0)
    load = os.getloadavg()
    print(f"editor_speed: {args.width}x{args.height} ({mp:.2f} MP), model {model} (working size {colorizer.size}, "
          f"grid {grid[0]}x{grid[1]}), torch threads {args.threads}, median of {args.repeats}")
    print(f"machine: {os.cpu_count()} CPUs, load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} "
          f"(a loaded machine makes every wall time an upper bound)")
    print(f"{'':46s}{'wall s':>8s}{'CPU s':>8s}")
    row = lambda label, k: print(f"  {label:44s}{med[k]:8.3f}{mcpu[k]:8.3f}")  # noqa: E731
    row("network pass alone", "network")
    row("page now: POST /api/ab (photo id)", "ab")
    if compose:
        print(f"  {'        + lab.js composing (Node)':44s}{comp[0]:8.3f}{comp[1]:8.3f}")
    edit = (med["ab"] + comp[0], mcpu["ab"] + comp[1])
    print(f"  {'        = one edit' + ('' if compose else ' (no Node: without composing)'):44s}{edit[0]:8.3f}{edit[1]:8.3f}")
    row("before: POST /api/colorize (whole JPEG)", "before")
    row("        + PNG decode (Pillow)", "before_decode")
    before = (med["before"] + med["before_decode"], mcpu["before"] + mcpu["before_decode"])
    print(f"  {'        = one edit before':44s}{before[0]:8.3f}{before[1]:8.3f}")
    row("POST /api/colorize (photo id, server PNG)", "by_id")
    print(f"  before / now: {before[0] / edit[0]:.2f}x wall, {before[1] / edit[1]:.2f}x CPU; one edit within "
          f"{args.budget} s: wall {'yes' if edit[0] <= args.budget else 'no'}, CPU {'yes' if edit[1] <= args.budget else 'no'}")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
