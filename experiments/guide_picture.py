"""The README's "Guide the colours" picture: examples/rhea.jpg as given (grey), colorized by
the bundled default, and colorized with four colour points (drawn as rings).

    python experiments/guide_picture.py docs/images/guide-rhea.jpg

The same points on the command line:

    tinct colorize examples/rhea.jpg --hint 0.4,0.4,#9a7050 --hint 0.25,0.06,#708a40 \\
        --hint 0.75,0.12,#708a40 --hint 0.85,0.6,#708a40
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image, ImageDraw

from tinct import Colorizer
from tinct.hints import Hint

PHOTO = Path(__file__).resolve().parents[1] / "examples" / "rhea.jpg"
POINTS = [Hint(0.4, 0.4, "#9a7050"), Hint(0.25, 0.06, "#708a40"), Hint(0.75, 0.12, "#708a40"), Hint(0.85, 0.6, "#708a40")]
GAP = 10


def main(out: str) -> None:
    col = Colorizer.load("default")
    grey = Image.open(PHOTO).convert("RGB")
    auto, guided = col.colorize(PHOTO), col.colorize(PHOTO, hints=POINTS)
    draw = ImageDraw.Draw(guided)
    w, h = grey.size
    for p in POINTS:
        x, y = p.x * w, p.y * h
        draw.ellipse([x - 6, y - 6, x + 6, y + 6], fill=p.colour, outline="white", width=2)
    sheet = Image.new("RGB", (3 * w + 2 * GAP, h), "white")
    for i, im in enumerate((grey, auto, guided)):
        sheet.paste(im, (i * (w + GAP), 0))
    sheet.save(out, quality=90)


if __name__ == "__main__":
    main(sys.argv[1])
