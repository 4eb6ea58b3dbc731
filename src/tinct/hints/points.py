"""Points whose colour a user knows: :class:`Hint`, parsed from ``"X,Y,COLOUR"``
(:func:`parse_hint`), any CSS colour name or hex read by Pillow's ``ImageColor.getrgb``."""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass

import torch
from PIL import ImageColor

from .. import color
from ..errors import EXIT_USAGE, TinctError

DEFAULT_POINT_SIZE = 5  # a point's square side, pixels of the network's input (training drew 1-9)
MAX_POINTS = 1000  # per photo; more is a mistake (a file of every pixel), refused clearly
MAX_POINT_SIZE = 64


class HintError(TinctError, ValueError):
    """Hints that cannot be used: a malformed point or file, a model that takes none. The
    message names the bad part (and the file)."""

    exit_code = EXIT_USAGE


@functools.lru_cache(maxsize=4096)
def colour_ab(colour: str) -> tuple[float, float]:
    """The CIELAB (a, b) of a CSS colour name or hex (``"red"``, ``"#3050c0"``, ``"#35c"``,
    ``"rgb(48, 80, 192)"``: Pillow's ``ImageColor.getrgb``); its lightness is dropped.

    Raises:
        HintError: a colour Pillow does not know.
    """
    try:
        rgb = ImageColor.getrgb(colour.strip())[:3]
    except (ValueError, AttributeError):
        raise HintError(f"unknown colour {colour!r} (a CSS colour name such as red or steelblue, "
                        "or hex such as #3050c0)") from None
    lab = color.rgb_to_lab(torch.tensor(rgb, dtype=torch.float32).div(255).view(1, 3, 1, 1))
    return float(lab[0, 1, 0, 0]), float(lab[0, 2, 0, 0])


@dataclass(frozen=True)
class Hint:
    """A point whose colour is known.

    Attributes:
        x, y: pixels from the top-left corner (ints), or fractions of the width and
            height (floats in [0, 1]; 0.5, 0.5 is the centre).
        colour: a CSS colour name or hex; only its ab is used, the lightness stays the photo's.
        size: the side of the point's square in pixels of the network's input (None: the
            guide's default, :data:`DEFAULT_POINT_SIZE`).
    """

    x: int | float
    y: int | float
    colour: str
    size: int | None = None

    def __post_init__(self):
        for axis in ("x", "y"):
            v = getattr(self, axis)
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise HintError(f"{axis} must be a number, got {v!r}")
            if isinstance(v, float) and not (math.isfinite(v) and 0.0 <= v <= 1.0):
                raise HintError(f"{axis} {v} is outside [0, 1] (a number with a decimal point is a fraction of "
                                "the photo's width or height; write pixels as whole numbers)")
            if isinstance(v, int) and v < 0:
                raise HintError(f"{axis} {v} is negative (pixels count from the top-left corner)")
        if isinstance(self.x, float) != isinstance(self.y, float):
            raise HintError(f"x {self.x!r} and y {self.y!r} must be both pixels (whole numbers) or both fractions")
        if not isinstance(self.colour, str):
            raise HintError(f"colour must be a string, got {self.colour!r}")
        colour_ab(self.colour)
        if self.size is not None and (isinstance(self.size, bool) or not isinstance(self.size, int)
                                      or not 1 <= self.size <= MAX_POINT_SIZE):
            raise HintError(f"size must be a whole number from 1 to {MAX_POINT_SIZE}, got {self.size!r}")

    @property
    def ab(self) -> tuple[float, float]:
        return colour_ab(self.colour)

    @property
    def relative(self) -> bool:
        return isinstance(self.x, float) and isinstance(self.y, float)

    def position(self, height: int, width: int) -> tuple[float, float]:
        """(x, y) as fractions of a ``height`` x ``width`` photo (a pixel's centre for pixels).

        Raises:
            HintError: a pixel position outside the photo.
        """
        if (isinstance(self.x, int) and self.x >= width) or (isinstance(self.y, int) and self.y >= height):
            raise HintError(f"point ({self.x}, {self.y}) lies outside the {width}x{height} photo")
        fx = self.x if isinstance(self.x, float) else (self.x + 0.5) / width
        fy = self.y if isinstance(self.y, float) else (self.y + 0.5) / height
        return fx, fy


def _coordinate(text: str, axis: str) -> int | float:
    text = text.strip()
    if re.fullmatch(r"[+-]?\d+", text):
        return int(text)
    try:
        return float(text)
    except ValueError:
        raise HintError(f"{axis} {text!r} is not a number") from None


def parse_hint(text: str) -> Hint:
    """``"X,Y,COLOUR"`` -> :class:`Hint`: ``"120,340,#3050c0"`` (pixels), ``"0.5,0.2,red"``
    (fractions: either number has a decimal point). The colour may hold commas (``rgb(...)``).

    Raises:
        HintError: naming the bad part.
    """
    parts = text.split(",", 2)
    if len(parts) < 3 or not parts[2].strip():
        raise HintError(f"hint {text!r}: expected X,Y,COLOUR (e.g. 120,340,#3050c0 or 0.5,0.2,red)")
    try:
        x, y = _coordinate(parts[0], "x"), _coordinate(parts[1], "y")
        if isinstance(x, float) or isinstance(y, float):  # "0,0.5": fractions both
            x, y = float(x), float(y)
        return Hint(x, y, parts[2].strip())
    except HintError as e:
        raise HintError(f"hint {text!r}: {e}") from None


