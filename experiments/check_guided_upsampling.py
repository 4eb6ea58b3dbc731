"""Does edge-aware (guided-filter) upsampling of ab beat bilinear? A check, not part of tinct.

tinct predicts ab at 1/4 of the working size and upsamples it bilinearly. This compares
that with fast guided-filter upsampling (He et al. 2010; Wu et al. 2018): on the low-res
grid, fit ab = a * L + b in (2r+1)^2 windows, the guide being the photo's L area-averaged
to that grid, with regulariser eps (L units squared); upsample a and b bilinearly and
apply them to the full-resolution L. The ab comes from the bundled model (``--ab model``)
or from the photo's true ab area-averaged to a 40x40 grid (``--ab truth``). Run it on
training photos so the choice is not made on val.

Usage:
    python experiments/check_guided_upsampling.py --data ../shared/corpus/train --limit 150 --ab truth
    python experiments/check_guided_upsampling.py --data ../shared/corpus/train --limit 100 --ab model --eps 10 100 1000
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F

from tinct import Colorizer, color, metrics
from tinct.evaluate import load_truth, quantize
from tinct.io import find_images


def box(x: torch.Tensor, r: int) -> torch.Tensor:
    """Mean over (2r+1)^2 windows, edges replicated."""
    return F.avg_pool2d(F.pad(x, (r, r, r, r), mode="replicate"), 2 * r + 1, stride=1)


def guided_upsample(L: torch.Tensor, ab: torch.Tensor, r: int, eps: float) -> torch.Tensor:
    """L ``(H, W)`` + low-res ab ``(2, h, w)`` -> ab ``(2, H, W)``."""
    I = F.interpolate(L[None, None], size=ab.shape[-2:], mode="area")
    p = ab[None]
    mean_i, mean_p = box(I, r), box(p, r)
    a = (box(I * p, r) - mean_i * mean_p) / (box(I * I, r) - mean_i * mean_i + eps)
    b = mean_p - a * mean_i
    up = lambda x: F.interpolate(box(x, r), size=L.shape, mode="bilinear", align_corners=False)[0]  # noqa: E731
    return up(a) * L[None] + up(b)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/corpus/train")
    ap.add_argument("--limit", type=int, default=100, help="every k-th photo so that about this many are used")
    ap.add_argument("--ab", choices=["model", "truth"], default="model")
    ap.add_argument("--radius", type=int, nargs="+", default=[1])
    ap.add_argument("--eps", type=float, nargs="+", default=[1, 10, 100])
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    paths = find_images(args.data)
    paths = paths[:: max(1, len(paths) // args.limit)][: args.limit]
    truths = [load_truth(p, 256) for p in paths]
    col = Colorizer.load("default")
    pairs = []
    for t in truths:
        lab = color.rgb_to_lab(torch.from_numpy(t).permute(2, 0, 1)[None])
        L = lab[0, 0]
        ab = col.predict_ab_batched([L], None, None, 1)[0] if args.ab == "model" else \
            F.interpolate(lab[:, 1:], size=(40, 40), mode="area")[0]
        pairs.append((L, ab))
    probe = metrics.EfficientNetProbe()
    top1_truth = probe.top1(truths)
    print(f"{len(truths)} photos from {args.data}, ab from {args.ab}")

    def score(name, upsample):
        outs = []
        for L, ab in pairs:
            rgb = Colorizer.compose(L, upsample(L, ab))
            outs.append(quantize(rgb))
        m = np.array([(metrics.psnr(o, t), metrics.auc_ab(o, t), metrics.colourfulness(o)) for o, t in zip(outs, truths)])
        agree = (probe.top1(outs) == top1_truth).mean()
        print(f"{name:<22} PSNR {m[:, 0].mean():.3f}  AUC {m[:, 1].mean():.4f}  CF {m[:, 2].mean():.2f}  top-1 {agree:.3f}", flush=True)

    score("bilinear", lambda L, ab: F.interpolate(ab[None], size=L.shape, mode="bilinear", align_corners=False)[0])
    for r in args.radius:
        for eps in args.eps:
            score(f"guided r{r} eps{eps:g}", lambda L, ab: guided_upsample(L, ab, r, eps))


if __name__ == "__main__":
    main()
