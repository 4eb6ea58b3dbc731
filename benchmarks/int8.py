"""int8 against float32 for the bundled model on ONNX Runtime, in one run.

Usage:
    python benchmarks/int8.py [--rounds 15] [--threads 2]

Times, interleaved in rounds so a loaded machine slows both alike, medians of wall and CPU
time: the network alone (one pass) at the working shapes of a 256x256 and a 1 MP photo, and
whole colorizations (PIL image in memory -> PIL image: two working sizes, flipped) of a
256x256 and a 1 MP generated photo, with ``precision="fp32"`` and ``precision="int8"``.
The int8 model is built from the shipped calibration ranges (tinct.quantize) on first use.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from PIL import Image

from tinct import Colorizer
from tinct.quantize import int8_native


def photo(w: int, h: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    y = np.linspace(0, 1, h, dtype=np.float32)[:, None]
    x = np.linspace(0, 1, w, dtype=np.float32)[None, :]
    g = 0.5 + 0.3 * np.sin(6 * x + 3 * y) * np.cos(4 * y) + rng.normal(0, 0.03, (h, w)).astype(np.float32)
    return Image.fromarray((np.clip(g, 0, 1) * 255).astype(np.uint8), "L")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cols = {p: Colorizer.load("default", backend="onnx", precision=p) for p in ("fp32", "int8")}
    print(f"{args.threads} threads; int8 dot products (VNNI/AMX) on this CPU: {int8_native()}; "
          f"auto picks {Colorizer.load('default', precision='auto').precision}")
    c = cols["fp32"]
    cases = {}
    for label, (w, h) in (("256x256", (256, 256)), ("1 MP", (1152, 864))):
        for size in c.working_sizes(None):
            shape = c.working_shape(h, w, size)
            x = torch.zeros(1, 1, *shape)
            cases[f"network, one pass, {shape[0]}x{shape[1]} ({label})"] = {p: (lambda x=x, k=k: k.net(x)) for p, k in cols.items()}
    for label, (w, h) in (("256x256", (256, 256)), ("1 MP", (1152, 864))):
        im = photo(w, h)
        cases[f"colorize {label} (4 passes + per-pixel work)"] = {p: (lambda im=im, k=k: k.colorize(im)) for p, k in cols.items()}
    for name, fns in cases.items():
        for fn in fns.values():
            fn()
        times = {p: [] for p in fns}
        for _ in range(args.rounds):
            for p, fn in fns.items():
                t0, c0 = time.perf_counter(), time.process_time()
                fn()
                times[p].append((time.perf_counter() - t0, time.process_time() - c0))
        med = {p: (statistics.median(t for t, _ in v), statistics.median(c for _, c in v)) for p, v in times.items()}
        (w32, c32), (w8, c8) = med["fp32"], med["int8"]
        print(f"{name}: fp32 {1000 * w32:.1f} ms wall / {1000 * c32:.1f} ms CPU, int8 {1000 * w8:.1f} / {1000 * c8:.1f}; "
              f"fp32 / int8 {w32 / w8:.2f}x wall, {c32 / c8:.2f}x CPU", flush=True)


if __name__ == "__main__":
    main()
