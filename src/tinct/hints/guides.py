"""Everything that guides one photo, gathered in a :class:`Guide`: points and a reference
photo's palette (:func:`reference_hint`), rasterised onto whatever working grid the
colorizer uses (:meth:`Guide.local`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from PIL import Image

from .. import color
from ..io import ImageError, Photo, load_image
from .maps import GLOBAL_DIM, global_hint, histogram
from .points import DEFAULT_POINT_SIZE, MAX_POINT_SIZE, MAX_POINTS, Hint, HintError, parse_hint

REFERENCE_SIDE = 128  # a reference photo is shrunk to this long side before its histogram


@dataclass
class Guide:
    """Everything that guides one photo: points and a reference palette, either may be absent.

    Attributes:
        points: the :class:`Hint` points.
        reference: a global hint ``(314,)`` (:func:`reference_hint`), or None.
        point_size: the square side of points that give none.
    """

    points: list[Hint] = field(default_factory=list)
    reference: torch.Tensor | None = None
    point_size: int = DEFAULT_POINT_SIZE

    def __post_init__(self):
        self.points = list(self.points)
        if isinstance(self.point_size, bool) or not isinstance(self.point_size, int) \
                or not 1 <= self.point_size <= MAX_POINT_SIZE:
            raise HintError(f"point size must be a whole number from 1 to {MAX_POINT_SIZE}, got {self.point_size!r}")
        if len(self.points) > MAX_POINTS:
            raise HintError(f"{len(self.points)} hints: at most {MAX_POINTS} points per photo")
        if self.reference is not None and tuple(self.reference.shape) != (GLOBAL_DIM,):
            raise HintError(f"reference must be a ({GLOBAL_DIM},) global hint, got shape {tuple(self.reference.shape)}")

    def __bool__(self) -> bool:
        return bool(self.points) or self.reference is not None

    def local(self, photo: tuple[int, int], work: tuple[int, int]) -> torch.Tensor:
        """The points on the network's input grid: ``(3, h, w)`` (ab_n, mask) for a photo of
        ``photo`` = (H, W) pixels that the colorizer resizes to ``work`` = (h, w).

        Each point is a square of its size centred where it falls on the grid (moved inside
        at the edges); a later point covers an earlier one where they overlap.
        """
        (H, W), (h, w) = photo, work
        local = torch.zeros(3, h, w)
        for p in self.points:
            fx, fy = p.position(H, W)
            s = min(p.size or self.point_size, h, w)
            x0 = min(max(math.floor(fx * w - s / 2 + 0.5), 0), w - s)
            y0 = min(max(math.floor(fy * h - s / 2 + 0.5), 0), h - s)
            a, b = p.ab
            local[0, y0:y0 + s, x0:x0 + s] = color.normalize_ab(a)
            local[1, y0:y0 + s, x0:x0 + s] = color.normalize_ab(b)
            local[2, y0:y0 + s, x0:x0 + s] = 1.0
        return local

    def global_hint(self) -> torch.Tensor:
        """``(314,)``: the reference's distribution and flag, or zeros (none)."""
        return self.reference if self.reference is not None else torch.zeros(GLOBAL_DIM)

    def merged(self, other: "Guide | None") -> "Guide":
        """This guide's points then ``other``'s (each keeping its guide's size); ``other``'s
        reference where it has one."""
        if not other:
            return self
        ref = other.reference if other.reference is not None else self.reference
        theirs = [p if p.size else replace(p, size=other.point_size) for p in other.points]
        return Guide(self.points + theirs, ref, self.point_size)


def guide(points=None, reference=None, point_size: int = DEFAULT_POINT_SIZE) -> Guide:
    """A :class:`Guide` from what :meth:`tinct.Colorizer.colorize` takes: points (Hints or
    ``"X,Y,COLOUR"`` strings) and a reference (an image as :func:`reference_hint` takes it,
    or a ``(314,)`` global hint)."""
    pts = [p if isinstance(p, Hint) else parse_hint(p) for p in (points or [])]
    ref = reference if reference is None or isinstance(reference, torch.Tensor) else reference_hint(reference)
    return Guide(pts, ref, point_size)


def reference_hint(image, name: str | None = None) -> torch.Tensor:
    """A reference photo's palette as a global hint ``(314,)``: the 313-bin histogram of its
    ab (decoded through :func:`tinct.io.load_image`, shrunk to :data:`REFERENCE_SIDE`).

    Args:
        image: a path, bytes, PIL image or :class:`tinct.io.Photo`.

    Raises:
        HintError: not a readable image, or a grey one (it has no colours to follow).
    """
    try:
        photo = image if isinstance(image, Photo) else load_image(image, name=name)
    except ImageError as e:
        raise HintError(f"reference: {e}") from None
    ab = _shrunk_ab(photo.pixels)
    if float(ab.norm(dim=1).mean()) < 2.0:
        raise HintError(f"reference {photo.name}: the photo is grey, it has no colours to follow")
    return global_hint(histogram(ab))[0]


def palette_hint(pixels: np.ndarray) -> torch.Tensor:
    """The global hint ``(314,)`` of decoded pixels (uint8, or float in [0, 1]; grey or RGB),
    made as :func:`reference_hint` makes it, without its refusal of grey photos
    (``tinct evaluate --reference self`` gives each photo its own palette)."""
    return global_hint(histogram(_shrunk_ab(pixels)))[0]


def _shrunk_ab(px: np.ndarray) -> torch.Tensor:
    """``(1, 2, h, w)`` ab of pixels shrunk to :data:`REFERENCE_SIDE` (box filter, 8 bits)."""
    if px.dtype != np.uint8:
        px = (np.clip(px, 0, 1) * 255 + 0.5).astype(np.uint8)
    im = Image.fromarray(px)
    im.thumbnail((REFERENCE_SIDE, REFERENCE_SIDE), Image.Resampling.BOX)
    rgb = torch.from_numpy(np.asarray(im.convert("RGB"), dtype=np.float32) / 255).permute(2, 0, 1)[None]
    return color.rgb_to_lab(rgb)[:, 1:]
