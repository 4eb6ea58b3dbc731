"""Sweep decoding options (working size, annealed-mean temperature) of a model on val photos.

Model selection only: run it on the validation split, never on training photos. Each photo
is resized (short side 256) and centre-cropped to 256x256 as in the quality targets, made
grey, colorized, and compared with the original. Prints one row per setting.

Usage:
    python scripts/tune_decoding.py --model runs/default/last.pt --data ../shared/corpus/val \
        --sizes 160 192 224 256 --temperatures 0.3 0.38 0.5 --limit 100
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
    print("size  T     flip PSNR    SSIM    AUC     CF     |dCF|  dE00")
    g = np.array([(metrics.psnr(grey.rgb, t), metrics.ssim(grey.rgb, t), metrics.auc_ab(grey.rgb, t), 0.0,
                   metrics.ciede2000(grey.rgb, t)) for (_, grey), t in zip(greys, truths)])
    print(f"grey             {g[:, 0].mean():.3f}  {g[:, 1].mean():.4f}  {g[:, 2].mean():.4f}  0.00  {cf_truth:.2f}  "
          f"{g[:, 4].mean():.2f}", flush=True)
    for size, temp, flip in itertools.product(args.sizes, args.temperatures, args.flip):
        col.flip = bool(flip)
        rows = []
        for (L, grey), truth in zip(greys, truths):
            ab = col.predict_ab_batched([L], size, temp, 1)[0]
            out = np.asarray(col.render(L, ab), dtype=np.float32) / 255.0
            rows.append((metrics.psnr(out, truth), metrics.ssim(out, truth), metrics.auc_ab(out, truth),
                         metrics.colourfulness(out), metrics.ciede2000(out, truth)))
        r = np.array(rows)
        cf = r[:, 3].mean()
        print(f"{size:<5} {temp:<5.2f} {flip:<4} {r[:, 0].mean():.3f}  {r[:, 1].mean():.4f}  {r[:, 2].mean():.4f}  "
              f"{cf:.2f}  {abs(cf - cf_truth):.2f}  {r[:, 4].mean():.2f}", flush=True)


if __name__ == "__main__":
    main()
