"""Mean chroma of a photo folder: the constant behind the ``mean-ab`` baseline.

Prints the pixel-weighted mean a and b (CIELAB, D65) over every photo found recursively
under DIR at its stored resolution. ``tinct.evaluate.MEAN_AB`` holds the result for the
tinct training corpus, so that the baseline never sees the colours of the photos it is
evaluated on:

    python experiments/mean_ab.py ../shared/corpus/train
"""

from __future__ import annotations

import argparse

import numpy as np
from tqdm import tqdm

from tinct import color
from tinct.io import find_images, load_image


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data", help="folder of photos (searched recursively)")
    args = p.parse_args()
    files = find_images(args.data)
    total, count = np.zeros(2, dtype=np.float64), 0
    for f in tqdm(files, unit="img"):
        ab = color.rgb_to_lab(load_image(f).rgb)[..., 1:].reshape(-1, 2)
        total += ab.sum(0, dtype=np.float64)
        count += len(ab)
    a, b = total / count
    print(f"{len(files)} photos, {count} pixels: mean a = {a:.4f}, mean b = {b:.4f}")


if __name__ == "__main__":
    main()
