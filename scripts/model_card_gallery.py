"""Gallery of random val photos for the model card: grey input / tinct / original, one JPEG.

The photos are drawn with a fixed seed from every photo under DATA (not picked by hand),
resized (short side 256) and centre-cropped to 256x256, made grey and colorized with the
model's default options.

Usage:
    python scripts/model_card_gallery.py --data ../shared/corpus/val --out docs/images/default_gallery.jpg
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from tinct import Colorizer, color
from tinct.evaluate import load_truth
from tinct.io import find_images, to_pil


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/corpus/val")
    ap.add_argument("--model", default="default")
    ap.add_argument("--out", type=Path, default=Path("docs/images/default_gallery.jpg"))
    ap.add_argument("--count", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tile", type=int, default=192)
    args = ap.parse_args()

    photos = find_images(args.data)
    pick = sorted(np.random.default_rng(args.seed).choice(len(photos), size=args.count, replace=False))
    col = Colorizer.load(args.model)
    t, pad, head = args.tile, 4, 22
    cols = 2  # two triplets side by side
    rows = (args.count + cols - 1) // cols
    sheet = Image.new("RGB", (cols * (3 * t + 2 * pad) + (cols - 1) * 3 * pad, head + rows * (t + pad)), "white")
    draw = ImageDraw.Draw(sheet)
    for c in range(cols):
        x0 = c * (3 * t + 5 * pad)
        for k, label in enumerate(("grey input", "tinct default", "original")):
            draw.text((x0 + k * (t + pad) + 4, 4), label, fill="black")
    for n, i in enumerate(pick):
        truth = load_truth(photos[i], 256)
        grey = to_pil(color.grey(truth))
        out = col.colorize(grey)
        x0 = (n % cols) * (3 * t + 5 * pad)
        y0 = head + (n // cols) * (t + pad)
        for k, im in enumerate((grey, out, to_pil(truth))):
            sheet.paste(im.resize((t, t), Image.BICUBIC), (x0 + k * (t + pad), y0))
        print(photos[i])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out, quality=85)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
