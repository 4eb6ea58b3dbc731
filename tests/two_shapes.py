"""The "two shapes" check of issue 22, for any hint model: a hint spreads to its object, not
the whole photo.

A generated photo holds two shapes on a mid-grey background: a light disc (A) and, a short
gap to its right, a dark square (B). One point is placed at A's centre, in the colour (of
a few) farthest from what the model gives A without hints. The check passes when A's mean
ab moves toward the asked colour by at least :data:`MIN_MOVE` and B's mean ab stays within
:data:`MAX_LEAK` of its automatic value (means over each shape's interior, 2 pixels in
from its edge, where the network's 1/4-resolution output is blurred alike with and without
hints).

The shapes differ in lightness (L 80 and 30) and the gap is narrow (12 px at 128 px), so a
method that spreads by distance alone leaks into B, and one that respects lightness edges
does not. Two shapes of one lightness would need a spread that follows objects (learned,
or geodesic), which the non-learned baseline does not attempt.

Use: ``check_two_shapes(colorize)`` with ``colorize(grey_image, hints) -> RGB image``
(PIL or float array), e.g. ``lambda im, h: colorizer.colorize(im, hints=h)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

from tinct import color
from tinct.hints import Hint

MIN_MOVE = 10.0  # Lab units toward the asked colour, shape A's mean
MAX_LEAK = 3.0  # Lab units, shape B's mean ab (the acceptance)
CANDIDATES = ("red", "blue", "green", "gold", "darkviolet")


def two_shapes_photo(size: int = 128) -> tuple[Image.Image, np.ndarray, np.ndarray, tuple[float, float]]:
    """(colour photo, A's interior mask, B's interior mask, A's centre as fractions)."""
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    s = size / 128
    lab = np.zeros((size, size, 3), np.float32)
    lab[..., 0] = 55 + 3 * np.sin(xx / (5 * s)) * np.sin(yy / (7 * s))  # a faintly textured background
    lab[..., 1:] = (4.0, 10.0)
    a = (xx - 40 * s) ** 2 + (yy - 64 * s) ** 2 <= (24 * s) ** 2  # disc, right edge at x = 64
    b = (xx >= 76 * s) & (xx < 124 * s) & (yy >= 40 * s) & (yy < 88 * s)  # square, 12 px to the right
    lab[a] = (80.0, -5.0, 60.0)  # a light yellow disc
    lab[b] = (30.0, 10.0, -40.0)  # a dark blue square
    rgb = np.clip(color.lab_to_rgb(lab), 0, 1)
    photo = Image.fromarray((rgb * 255 + 0.5).astype(np.uint8), "RGB")
    inner = lambda m: ndimage.binary_erosion(m, iterations=2)  # noqa: E731
    return photo, inner(a), inner(b), (40 * s / size, 64 * s / size)


def _ab(image) -> np.ndarray:
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32) / 255 if isinstance(image, Image.Image) else image
    return color.rgb_to_lab(np.asarray(rgb, dtype=np.float32))[..., 1:]


@dataclass
class TwoShapes:
    """What the check measured (Lab units)."""

    colour: str  # the asked colour
    moved_a: float  # A's mean ab change, projected on the direction toward the asked colour
    leak_b: float  # |B's mean ab change|

    @property
    def passed(self) -> bool:
        return self.moved_a >= MIN_MOVE and self.leak_b <= MAX_LEAK

    def __str__(self) -> str:
        return (f"hint {self.colour} on shape A: A moved {self.moved_a:.1f} toward it (need >= {MIN_MOVE}), "
                f"B's mean ab changed by {self.leak_b:.2f} (need <= {MAX_LEAK})")


def check_two_shapes(colorize, size: int = 128) -> TwoShapes:
    """Run the check with ``colorize(grey_image, hints)``; see the module docstring."""
    photo, a, b, (fx, fy) = two_shapes_photo(size)
    grey = Image.fromarray((color.grey(np.asarray(photo, dtype=np.float32) / 255)[..., 0] * 255 + 0.5).astype(np.uint8))
    auto = _ab(colorize(grey, []))
    base_a = auto[a].mean(0)
    colour = max(CANDIDATES, key=lambda c: float(np.linalg.norm(np.array(Hint(0, 0, c).ab) - base_a)))
    hinted = _ab(colorize(grey, [Hint(fx, fy, colour)]))
    toward = np.array(Hint(0, 0, colour).ab) - base_a
    moved = float((hinted[a].mean(0) - base_a) @ (toward / np.linalg.norm(toward)))
    leak = float(np.linalg.norm(hinted[b].mean(0) - auto[b].mean(0)))
    return TwoShapes(colour, moved, leak)
