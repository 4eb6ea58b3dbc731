"""Top-1 agreement split by how sure the judge is of the original, from a `tinct evaluate` metrics.csv.

The judge (ImageNet EfficientNet-Lite0) is itself unsure of many photos: when its top-1
probability on the original is low, a small change of colour flips its answer. This splits
each model's agreement by that probability (`top1_conf_gt`), to show where the misses are.

Usage:
    tinct evaluate --data ../shared/corpus/val --crop 256 --model gray --model default --out runs/eval
    python experiments/top1_by_confidence.py runs/eval/metrics.csv --edges 0 0.2 0.4 0.6 0.8 1
"""

from __future__ import annotations

import argparse
import csv

import numpy as np

from tinct.report import agreement_by_confidence


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("metrics_csv")
    ap.add_argument("--edges", type=float, nargs="+", default=[0, 0.4, 1],
                    help="bin edges of the judge's confidence on the original (last bin includes 1)")
    args = ap.parse_args()
    with open(args.metrics_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or "top1_conf_gt" not in rows[0]:
        raise SystemExit(f"{args.metrics_csv}: no top1_conf_gt column (written by tinct evaluate since 2026-12-03)")
    bins = list(zip(args.edges[:-1], args.edges[1:]))
    print(f"{'model':<28}" + "".join(f"{f'[{lo:.2f}, {hi:.2f}' + (']' if k == len(bins) - 1 else ')'):>16}"
                                     for k, (lo, hi) in enumerate(bins)) + f"{'all':>10}")
    for m, split in agreement_by_confidence(rows, args.edges).items():
        cells = [f"{mean:.3f} (n {n})" if n else "-" for mean, n in split]
        overall = np.mean([float(r["top1_agree"]) for r in rows if r["model"] == m])
        print(f"{m:<28}" + "".join(f"{c:>16}" for c in cells) + f"{overall:>10.3f}")


if __name__ == "__main__":
    main()
