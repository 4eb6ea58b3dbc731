"""Choose how far a reference palette moves a bin model's distributions (tinct.hints.palette)
on training photos, never on val.

For about 40 training photos spread over the corpus's sources (256 x 256 centre crops), the
bundled default follows the photo's own palette (``tinct evaluate --reference self``'s
global hint, :func:`tinct.hints.palette_hint`) at each strength and offset cap of a small
grid; prints the mean PSNR gain over the automatic output and the share of photos that
got worse. docs/GUIDE.md records the table and the choice.

    OMP_NUM_THREADS=1 python experiments/palette_strength.py ../shared/corpus/train
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from tinct import Colorizer, color, hints, metrics
from tinct.evaluate import load_truth
from tinct.hints import palette
from tinct.io import Photo, find_images

STRENGTHS = (0.25, 0.5, 0.75, 1.0)
CAPS = (2.0, 4.0, 8.0, 16.0)


def main(folder: str, n: int = 40) -> None:
    photos = find_images(Path(folder))
    photos = photos[:: max(1, len(photos) // n)][:n]
    col = Colorizer.load("default")
    gains = {(s, c): [] for s in STRENGTHS for c in CAPS}
    for path in photos:
        truth = load_truth(path, 256)
        grey = Photo(color.grey(truth), None, path.name, True)
        L = col.luminance(col.read_photo(grey).pixels)
        raw = col.predict_raw_averaged([L], None, 1)[0]
        ref = hints.palette_hint(truth)[:-1]

        def psnr(r):
            out = np.asarray(col.render(L, col.decode(r[None])[0]), dtype=np.float32) / 255.0
            return metrics.psnr(out, truth)

        base = psnr(raw)
        for c in CAPS:
            palette.MAX_OFFSET = c
            for s in STRENGTHS:
                shifted = palette.palette_shift(raw, ref, col.temperature, col.log_prior, col.prior_power, strength=s)
                gains[(s, c)].append(psnr(shifted) - base)
    print(f"{len(photos)} photos; PSNR gain (dB) over the automatic output with the photo's own palette")
    print("strength    cap   mean  median  worse")
    for c in CAPS:
        for s in STRENGTHS:
            g = np.array(gains[(s, c)])
            print(f"{s:8.2f} {c:6.1f} {g.mean():+6.2f} {np.median(g):+7.2f} {np.mean(g < 0):6.0%}")


if __name__ == "__main__":
    main(sys.argv[1])
