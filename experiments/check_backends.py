"""ONNX Runtime vs PyTorch on real photos: the largest ab and 8-bit RGB differences.

Usage:
    python experiments/check_backends.py ../shared/corpus/val [--every 15] [--model default]
"""

from __future__ import annotations

import argparse

import numpy as np

from tinct import Colorizer
from tinct.io import find_images, load_image


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data")
    ap.add_argument("--every", type=int, default=15, help="take every k-th photo (sorted by path)")
    ap.add_argument("--model", default="default")
    args = ap.parse_args()
    photos = find_images(args.data)[:: args.every]
    cols = [Colorizer.load(args.model, backend=b) for b in ("torch", "onnx")]
    worst_ab, worst_rgb, means = 0.0, 0, []
    for path in photos:
        L = Colorizer.luminance(load_image(path).pixels)
        ab = [c.predict_ab_batched([L], None, None, 1)[0] for c in cols]
        d = (ab[0] - ab[1]).abs()
        worst_ab, means = max(worst_ab, d.max().item()), means + [d.mean().item()]
        rgb = [np.asarray(c.render(L, a), dtype=int) for c, a in zip(cols, ab)]
        worst_rgb = max(worst_rgb, int(np.abs(rgb[0] - rgb[1]).max()))
    print(f"{len(photos)} photos: max |delta ab| {worst_ab:.5f} (mean {np.mean(means):.2e}) Lab units; "
          f"max 8-bit RGB difference {worst_rgb}")


if __name__ == "__main__":
    main()
