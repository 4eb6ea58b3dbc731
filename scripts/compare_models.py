"""Paired bootstrap of two models' per-photo metrics from a `tinct evaluate` metrics.csv.

Both models were run on the same photos, so each resample draws photos (not rows) and the
interval is for the difference B - A of the means: if it excludes 0, the change is
measurable on this set.

Usage:
    tinct evaluate --data ../shared/corpus/val --crop 256 --model default --model cand.safetensors --out runs/eval_cand
    python scripts/compare_models.py runs/eval_cand/metrics.csv default cand.safetensors
"""

from __future__ import annotations

import argparse
import csv

import numpy as np

METRICS = ("psnr", "ssim", "auc_ab", "ciede2000", "dcf", "cf", "top1_agree")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("metrics_csv")
    ap.add_argument("a", help="model name as in the csv's model column (the reference)")
    ap.add_argument("b", help="model name as in the csv's model column (the candidate)")
    ap.add_argument("--resamples", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    with open(args.metrics_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    by_model: dict[str, dict[str, dict]] = {}
    for r in rows:
        by_model.setdefault(r["model"], {})[r["photo"]] = r
    for m in (args.a, args.b):
        if m not in by_model:
            raise SystemExit(f"{args.metrics_csv}: no model {m!r}; it has {sorted(by_model)}")
    a, b = by_model[args.a], by_model[args.b]
    photos = sorted(a.keys() & b.keys())
    rng = np.random.default_rng(args.seed)
    idx = rng.integers(0, len(photos), size=(args.resamples, len(photos)))
    print(f"{len(photos)} photos, {args.resamples} paired resamples; B = {args.b}, A = {args.a}")
    print(f"{'metric':<12}{'A':>10}{'B':>10}{'B - A':>10}   95% interval")
    for m in METRICS:
        if m not in rows[0]:
            continue
        xa = np.array([float(a[p][m]) for p in photos])
        xb = np.array([float(b[p][m]) for p in photos])
        d = xb - xa
        lo, hi = np.percentile(d[idx].mean(1), [2.5, 97.5])
        print(f"{m:<12}{xa.mean():>10.4f}{xb.mean():>10.4f}{d.mean():>+10.4f}   [{lo:+.4f}, {hi:+.4f}]")


if __name__ == "__main__":
    main()
