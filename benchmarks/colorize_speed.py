"""Time the bundled default model on one photo size, end to end in memory (PIL in, PIL out).

Usage:
    python benchmarks/colorize_speed.py --size 256 --repeats 30
Reports the median and 90th percentile over the repeats after a warm-up, with the torch
thread count used.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from PIL import Image

from tinct import Colorizer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--size", type=int, default=256, help="photo side in pixels (square)")
    ap.add_argument("--repeats", type=int, default=30)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    photo = Image.fromarray((rng.random((args.size, args.size)) * 255).astype(np.uint8), "L")
    col = Colorizer.load(args.model)
    for _ in range(3):
        col.colorize(photo)
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        col.colorize(photo)
        times.append(time.perf_counter() - t0)
    times.sort()
    print(f"{args.size}x{args.size} photo, model {args.model} (working size {col.size}, flip {col.flip}), "
          f"{torch.get_num_threads()} threads: median {1000 * statistics.median(times):.1f} ms, "
          f"p90 {1000 * times[int(0.9 * len(times))]:.1f} ms over {args.repeats} runs")


if __name__ == "__main__":
    main()
