"""Should the spread's width depend on how many points there are? Chosen on training photos, never on val.

The same 40 training photos and simulated points as experiments/spread_sigmas.py (256 x 256
centre crops, the bundled default's automatic output, tinct.hints.truth_points seed 0);
sigma_L stays 16. For each number of points K, prints the mean PSNR gain at each sigma_xy of
a grid, and the gain of the rule tinct.hints.spread.sigma_for (docs/GUIDE.md records the table).

    OMP_NUM_THREADS=1 python experiments/spread_per_count.py ../shared/corpus/train
"""

from __future__ import annotations

import sys

import numpy as np

from spread_sigmas import automatic_outputs
from tinct import hints, metrics
from tinct.evaluate import quantize
from tinct.hints.spread import sigma_for

COUNTS = (1, 2, 5, 10, 20, 50)
SIGMA_XY = (0.12, 0.2, 0.3, 0.4, 0.5, 0.7)


def main(folder: str, n: int = 40) -> None:
    gains = {(s, k): [] for s in (*SIGMA_XY, "rule") for k in COUNTS}
    done = 0
    for truth, pid, auto, base in automatic_outputs(folder, n):
        done += 1
        points = hints.truth_points(truth, max(COUNTS), pid)
        for k in COUNTS:
            for s in (*SIGMA_XY, "rule"):
                sigma = sigma_for(k) if s == "rule" else s
                out = quantize(hints.spread_rgb(auto, points[:k], sigma, hints.SPREAD_SIGMA_L))
                gains[(s, k)].append(metrics.psnr(out, truth) - base)
    print(f"{done} photos; mean PSNR gain (dB) over the automatic output; sigma_L {hints.SPREAD_SIGMA_L}")
    print("sigma_xy " + " ".join(f"{k:>6}" for k in COUNTS))
    for s in (*SIGMA_XY, "rule"):
        label = f"{s:8.2f}" if s != "rule" else "    rule"
        print(label + " " + " ".join(f"{np.mean(gains[(s, k)]):+6.2f}" for k in COUNTS))
    print("rule:    " + " ".join(f"{sigma_for(k):6.2f}" for k in COUNTS))


if __name__ == "__main__":
    main(sys.argv[1])
