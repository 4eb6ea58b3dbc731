"""The per-pixel path of a large photo, before and after issue 25, in one run; and memory speed.

Usage:
    python benchmarks/pixels.py [--size 6000x4000] [--rounds 5] [--threads 2] [--baseline-src ../main/src]

The per-pixel path is what every output pixel costs whatever the network: L of the decoded
8-bit grey photo (:meth:`tinct.Colorizer.luminance`), ab upsampled from the network's grid,
Lab -> sRGB and 8-bit output into a PIL image (:meth:`tinct.Colorizer.render`). It is timed
with ab of the default model's output shape for that photo, interleaved in rounds with the
implementation it replaced (megapixel tiles through torch and kornia, kept below as
``previous_render``), medians of wall and CPU time. Also measured: this machine's memory
bandwidth (numpy copies of a 512 MB array on one and on N threads), how far the path is from
it, and, with ``--baseline-src``, the peak RSS of ``tinct colorize`` on a 24 MP JPEG for this
tree and the baseline tree, each in a fresh process.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from tinct import Colorizer, color


def previous_render(L: torch.Tensor, ab_small: torch.Tensor, saturation: float = 1.0) -> Image.Image:
    """Colorizer.render before issue 25: megapixel tiles, torch taps, kornia's Lab -> sRGB."""
    H, W = L.shape
    h, w = ab_small.shape[-2:]
    ab_small = ab_small.float() * saturation
    im = Image.new("RGB", (W, H))
    cols = max(1, min(W, 1 << 20))
    rows = max(1, (1 << 20) // cols)

    def taps(a, b, n_out, n_in):
        src = ((torch.arange(a, b, dtype=torch.float64) + 0.5) * (n_in / n_out) - 0.5).clamp(min=0)
        i0 = src.floor().long().clamp(max=n_in - 1)
        return i0, (i0 + 1).clamp(max=n_in - 1), (src - i0).float()

    for y0 in range(0, H, rows):
        for x0 in range(0, W, cols):
            y1, x1 = min(H, y0 + rows), min(W, x0 + cols)
            i0, i1, t = taps(y0, y1, H, h)
            r = ab_small[:, i0] * (1 - t)[:, None] + ab_small[:, i1] * t[:, None]
            j0, j1, u = taps(x0, x1, W, w)
            ab = r[:, :, j0] * (1 - u) + r[:, :, j1] * u
            rgb = color.lab_to_rgb(torch.cat([L[None, y0:y1, x0:x1], ab], 0)[None])[0]
            tile = (rgb.clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).permute(1, 2, 0).numpy()
            im.paste(Image.fromarray(np.ascontiguousarray(tile), "RGB"), (x0, y0))
    return im


def grey_photo(w: int, h: int) -> np.ndarray:
    """As benchmarks/performance.py makes them: gradients plus fine noise, uint8 grey."""
    rng = np.random.default_rng(2)
    y = np.linspace(0, 1, h, dtype=np.float32)[:, None]
    x = np.linspace(0, 1, w, dtype=np.float32)[None, :]
    g = 0.5 + 0.3 * np.sin(6 * x + 3 * y) * np.cos(4 * y) + rng.normal(0, 0.03, (h, w)).astype(np.float32)
    return (np.clip(g, 0, 1) * 255).astype(np.uint8)


def timed(fn) -> tuple[float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def bandwidth(threads: int, mb: int = 512, repeats: int = 5) -> float:
    """GB/s of a numpy copy (bytes read + bytes written), split over ``threads`` threads."""
    a = np.ones(mb << 20, np.uint8)
    b = np.empty_like(a)
    parts = np.array_split(np.arange(a.size), threads)
    spans = [(p[0], p[-1] + 1) for p in parts]
    pool = ThreadPoolExecutor(threads)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        list(pool.map(lambda s: np.copyto(b[s[0]:s[1]], a[s[0]:s[1]]), spans))
        best = min(best, time.perf_counter() - t0)
    pool.shutdown()
    return 2 * a.nbytes / best / 1e9


def peak_rss_mb(src: str, args: list[str]) -> float:
    code = ("import re, sys\nfrom tinct.cli import main\nrc = main(sys.argv[1:])\n"
            "print('RSS', re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1))\nsys.exit(rc)")
    env = {**os.environ, "PYTHONPATH": src}
    run = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env)
    if run.returncode != 0:
        raise RuntimeError(run.stderr)
    return int(run.stdout.split("RSS")[-1]) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="6000x4000", help="WxH of the photo (default 24 MP)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--baseline-src", default=None, help="src/ of the tree to compare peak RSS with")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    W, H = (int(v) for v in args.size.split("x"))
    pixels = grey_photo(W, H)
    col = Colorizer.load("default", backend="torch")
    work = col.working_shape(H, W, None)
    ab_small = torch.from_numpy(np.random.default_rng(0).uniform(-60, 60, (2, work[0] // 4, work[1] // 4)).astype(np.float32))
    print(f"{W}x{H} grey photo, ab {tuple(ab_small.shape)}, {args.threads} threads, {os.cpu_count()} cores")

    new = lambda: col.render(col.luminance(pixels), ab_small)  # noqa: E731
    old = lambda: previous_render(col.luminance(pixels), ab_small)  # noqa: E731
    a, b = np.asarray(new()), np.asarray(old())
    diff = np.abs(a.astype(int) - b)
    print(f"outputs: max |new - previous| = {diff.max()} 8-bit steps, {100 * (diff > 0).mean():.3f}% of values differ")
    res = {"new": [], "previous": []}
    for r in range(args.rounds):
        for name, fn in (("new", new), ("previous", old)):
            res[name].append(timed(fn))
        print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1][0]:.3f} s wall / {v[-1][1]:.3f} s CPU" for k, v in res.items()),
              flush=True)
    med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in res.items()}
    for k, (w, c) in med.items():
        print(f"per-pixel path, {k}: {w:.3f} s wall, {c:.3f} s CPU (median of {args.rounds})")
    print(f"previous / new: {med['previous'][0] / med['new'][0]:.2f}x wall, {med['previous'][1] / med['new'][1]:.2f}x CPU")
    lum = statistics.median(timed(lambda: col.luminance(pixels))[0] for _ in range(3))
    print(f"  of which L from the photo: {lum:.3f} s wall")

    bw1, bwn = bandwidth(1), bandwidth(args.threads)
    n = W * H
    floor = 4 * n / (max(bw1, bwn) * 1e9)  # read 1 byte of grey, write 3 of RGB: the least any path moves
    print(f"memory bandwidth (numpy copy of 512 MB, read + write): {bw1:.1f} GB/s on 1 thread, {bwn:.1f} GB/s on "
          f"{args.threads}")
    print(f"the path moves at least 4 bytes a pixel ({4 * n / 1e6:.0f} MB): {1000 * floor:.0f} ms at that bandwidth; "
          f"new path {med['new'][0] / floor:.1f}x that, previous {med['previous'][0] / floor:.1f}x")

    if args.baseline_src:
        with tempfile.TemporaryDirectory() as tmp:
            big = Path(tmp) / "photo.jpg"
            Image.fromarray(pixels, "L").save(big, quality=92)
            here = str(Path(__file__).resolve().parents[1] / "src")
            for label, src in (("this tree", here), ("baseline", args.baseline_src)):
                rss = peak_rss_mb(src, ["colorize", str(big), "-o", str(Path(tmp) / "out.png"), "-q", "--overwrite",
                                        *(["--precision", "fp32"] if src == here else [])])
                print(f"peak RSS, tinct colorize {W}x{H} JPEG -> PNG, onnx fp32, {label}: {rss:.0f} MB")


if __name__ == "__main__":
    main()
