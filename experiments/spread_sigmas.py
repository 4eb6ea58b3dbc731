"""Choose the spread baseline's two widths (tinct.hints.spread) on training photos, never on val.

For about 40 training photos spread over the corpus's sources (256 x 256 centre crops), the
bundled default's automatic output is corrected with 1, 10 and 20 simulated points
(tinct.hints.truth_points, seed 0) at every (sigma_xy, sigma_L) of a small grid; prints the
mean PSNR gain over the automatic output for each. The defaults are the best mean gain over
the three counts (docs/GUIDE.md records the table).

    OMP_NUM_THREADS=1 python experiments/spread_sigmas.py ../shared/corpus/train
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from tinct import Colorizer, color, hints, metrics
from tinct.evaluate import load_truth, quantize
from tinct.io import Photo, find_images

COUNTS = (1, 10, 20)
SIGMA_XY = (0.08, 0.12, 0.2, 0.3, 0.5)
SIGMA_L = (8.0, 12.0, 16.0, 24.0, 32.0, float("inf"))


def automatic_outputs(folder: str, n: int = 40):
    """(truth, photo id, the bundled default's automatic output, its PSNR) of ``n`` training
    photos evenly spread over ``folder`` (256 x 256 centre crops); experiments/spread_per_count.py
    uses the same photos."""
    photos = find_images(Path(folder))
    col = Colorizer.load("default")
    for path in photos[:: max(1, len(photos) // n)][:n]:
        truth = load_truth(path, 256)
        pid = path.relative_to(folder).as_posix()
        auto = np.asarray(col.colorize(Photo(color.grey(truth), None, pid, True)), dtype=np.float32) / 255.0
        yield truth, pid, auto, metrics.psnr(auto, truth)


def main(folder: str, n: int = 40) -> None:
    gains = {(s, l, k): [] for s in SIGMA_XY for l in SIGMA_L for k in COUNTS}
    done = 0
    for truth, pid, auto, base in automatic_outputs(folder, n):
        done += 1
        points = hints.truth_points(truth, max(COUNTS), pid)
        for s in SIGMA_XY:
            for l in SIGMA_L:
                for k in COUNTS:
                    out = quantize(hints.spread_rgb(auto, points[:k], s, l))
                    gains[(s, l, k)].append(metrics.psnr(out, truth) - base)
    print(f"{done} photos; mean PSNR gain (dB) over the automatic output at {COUNTS} points")
    print("sigma_xy sigma_L " + " ".join(f"{k:>6}" for k in COUNTS) + "   mean")
    for s in SIGMA_XY:
        for l in SIGMA_L:
            g = [float(np.mean(gains[(s, l, k)])) for k in COUNTS]
            print(f"{s:8.2f} {l:7.1f} " + " ".join(f"{v:+6.2f}" for v in g) + f" {np.mean(g):+6.2f}")


if __name__ == "__main__":
    main(sys.argv[1])
