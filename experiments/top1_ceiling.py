"""How much top-1 agreement true colours buy: an upper bound for any colorizer's.

Each val photo (resized and centre-cropped as in the quality targets) keeps its own L; its
true ab is area-averaged down to a coarse grid (optionally scaled), upsampled and composed
with it as the colorizer composes (bilinear upsampling, 8-bit output). The EfficientNet-Lite0 judge of `tinct evaluate` then
compares its top-1 class with the original's. A 40x40 grid is the default model's output
resolution at working size 160; 1x1 is the photo's mean colour.

Usage:
    python experiments/top1_ceiling.py --data ../shared/corpus/val --grids 40 20 10 1
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F

from tinct import Colorizer, color, metrics
from tinct.evaluate import load_truth, quantize
from tinct.io import find_images


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/corpus/val")
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--grids", type=int, nargs="+", default=[40, 20, 10, 1], help="ab grid sides to try")
    ap.add_argument("--chroma", type=float, nargs="+", default=[1.0], help="multiply the true ab by these")
    args = ap.parse_args()
    truths = [load_truth(p, args.crop) for p in find_images(args.data)]
    probe = metrics.EfficientNetProbe()
    top1_truth = probe.top1(truths)
    print(f"{len(truths)} photos\ngrid  chroma  top-1  PSNR")
    for grid in args.grids:
        for k in args.chroma:
            outs = []
            for t in truths:
                lab = color.rgb_to_lab(torch.from_numpy(t).permute(2, 0, 1)[None])
                ab = F.interpolate(lab[:, 1:], size=(grid, grid), mode="area")[0] * k
                wide = F.interpolate(ab[None], size=lab.shape[-2:], mode="bilinear", align_corners=False)[0]
                rgb = Colorizer.compose(lab[0, 0], wide)  # as tinct composes: own L, upsampled ab
                outs.append(quantize(rgb))
            agree = (probe.top1(outs) == top1_truth).mean()
            psnr = np.mean([metrics.psnr(o, t) for o, t in zip(outs, truths)])
            print(f"{grid:<5} {k:<7.2f} {agree:.3f}  {psnr:.2f}", flush=True)


if __name__ == "__main__":
    main()
