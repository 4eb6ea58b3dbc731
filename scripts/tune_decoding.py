"""Sweep decoding options (working size, scales, temperature, chroma gain) of a model on val photos.

Model selection only: run it on the validation split, never on training photos. Each photo
is resized (short side 256) and centre-cropped to 256x256 as in the quality targets, made
grey, colorized, and compared with the original. Prints one row per setting.

Usage:
    python scripts/tune_decoding.py --model runs/default/last.pt --data ../shared/corpus/val \
        --sizes 160 192 224 256 --temperatures 0.3 0.38 0.5 --limit 100
    python scripts/tune_decoding.py --model default --sizes 160 --flip 1 --scales 1 0.8,1.4 0.8,1.2 \
        --gains 1.08 1.13

Scales are comma-separated multipliers of the working size (multi-scale averaging, see
``tinct.Colorizer``); gains replace the model's stored chroma gain.
"""

from __future__ import annotations

import argparse
import itertools

import numpy as np
import torch

from tinct import Colorizer, metrics
from tinct.evaluate import find_photos, load_truth, neutral_from_l
from tinct.io import Photo


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--data", default="../shared/corpus/val")
    ap.add_argument("--sizes", type=int, nargs="+", default=[256])
    ap.add_argument("--temperatures", type=float, nargs="+", default=[0.38])
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--limit", type=int, default=None, help="every k-th photo so that about this many are used")
    ap.add_argument("--flip", type=int, nargs="+", default=[0], help="test-time flip averaging off (0) / on (1)")
    ap.add_argument("--scales", nargs="+", default=None,
                    help="scale sets, each comma-separated (e.g. 1 0.8,1.4); default: the model's own")
    ap.add_argument("--gains", type=float, nargs="+", default=None, help="chroma gains; default: the model's own")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    photos = find_photos(args.data)
    if args.limit and args.limit < len(photos):
        photos = photos[:: len(photos) // args.limit][: args.limit]  # spread over all sources
    col = Colorizer.load(args.model)
    truths = [load_truth(p, args.crop) for p in photos]
    greys = []
    for t in truths:
        L = col.luminance(t)
        greys.append((L, Photo(pixels=neutral_from_l(L.numpy()), alpha=None, name="", is_gray=True)))
    cf_truth = np.mean([metrics.colourfulness(t) for t in truths])
    print(f"{len(photos)} photos, CF(originals) = {cf_truth:.2f}")
    scale_sets = [tuple(float(v) for v in spec.split(",")) for spec in args.scales] if args.scales else [col.scales]
    gains = args.gains or [col.chroma_gain]
    print("size  T     flip scales       gain  PSNR    SSIM    AUC     CF     |dCF|  dE00    top-1")
    probe = metrics.EfficientNetProbe()
    top1_truth = probe.top1(truths)
    g = np.array([(metrics.psnr(grey.rgb, t), metrics.ssim(grey.rgb, t), metrics.auc_ab(grey.rgb, t), 0.0,
                   metrics.ciede2000(grey.rgb, t)) for (_, grey), t in zip(greys, truths)])
    print(f"grey                               {g[:, 0].mean():.3f}  {g[:, 1].mean():.4f}  {g[:, 2].mean():.4f}  0.00  "
          f"{cf_truth:.2f}  {g[:, 4].mean():.2f}  {(probe.top1([grey.rgb for _, grey in greys]) == top1_truth).mean():.3f}",
          flush=True)
    for size, temp, flip, scales, gain in itertools.product(args.sizes, args.temperatures, args.flip, scale_sets, gains):
        col.flip, col.scales, col.chroma_gain = bool(flip), scales, gain
        rows, outs = [], []
        for (L, grey), truth in zip(greys, truths):
            ab = col.predict_ab_batched([L], size, temp, 1)[0]
            out = np.asarray(col.render(L, ab), dtype=np.float32) / 255.0
            outs.append(out)
            rows.append((metrics.psnr(out, truth), metrics.ssim(out, truth), metrics.auc_ab(out, truth),
                         metrics.colourfulness(out), metrics.ciede2000(out, truth)))
        r = np.array(rows)
        cf = r[:, 3].mean()
        agree = (probe.top1(outs) == top1_truth).mean()
        print(f"{size:<5} {temp:<5.2f} {flip:<4} {','.join(f'{v:g}' for v in scales):<12} {gain:<5.2f} "
              f"{r[:, 0].mean():.3f}  {r[:, 1].mean():.4f}  {r[:, 2].mean():.4f}  {cf:.2f}  {abs(cf - cf_truth):.2f}  "
              f"{r[:, 4].mean():.2f}  {agree:.3f}", flush=True)


if __name__ == "__main__":
    main()
