"""Colour hints: what a user knows about a photo's colours, as a network input.

Two kinds, after Zhang et al. 2017 ("Real-Time User-Guided Image Colorization with Learned
Deep Priors"):

- **local hints**: points whose colour is known. A point is an (x, y) position and a
  colour; only the colour's ab is used (the lightness stays the photo's own). On the
  network's input grid they are a ``(B, 3, H, W)`` map: ab_n where a hint lies, 0
  elsewhere, and a mask channel (1 at hinted pixels);
- **a global hint**: a distribution over the 313 ab bins (e.g. a reference photo's
  palette), ``(B, 314)``: the distribution and a flag (1 = given; all zeros = none).

Training simulates both from the true colours (:func:`simulate`): a random number of
points (many crops with none), at random places, each a small square whose colour is the
square's mean true ab; the global hint on a random share of crops, the crop's own
histogram. Everything is drawn from a generator seeded by (seed, step), so a run's hints
are a pure function of its step, as its batches are.

The user side (below :func:`resize_local`) turns what a person knows into those inputs:
:class:`Hint` points (pixel or relative coordinates, any CSS colour name or hex, parsed by
Pillow's ``ImageColor.getrgb``), the hints JSON file the web editor saves
(:func:`load_hints`, :func:`save_hints`; format in docs/GUIDE.md), a reference photo's
palette (:func:`reference_hint`), all gathered in a :class:`Guide` that rasterises its
points onto whatever working grid the colorizer uses (:meth:`Guide.local`).
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageColor

from . import color
from .config import HintsConfig
from .errors import EXIT_USAGE, TinctError
from .io import ImageError, Photo, load_image

GLOBAL_DIM = 314  # 313 bins + the "given" flag


def empty(batch: int, height: int, width: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """No hints: the zero local map and the zero global hint."""
    return torch.zeros(batch, 3, height, width, device=device), torch.zeros(batch, GLOBAL_DIM, device=device)


def histogram(ab: torch.Tensor, grid: int = 32) -> torch.Tensor:
    """``(B, 313)``: the 313-bin histogram of ``(B, 2, H, W)`` ab (Lab units), soft-encoded
    on a ``grid`` x ``grid`` average of the photo (as the bins' own targets are)."""
    small = F.adaptive_avg_pool2d(ab, (min(grid, ab.shape[-2]), min(grid, ab.shape[-1])))
    centers = torch.from_numpy(color.bin_centers("313"))
    return color.soft_encode(small, centers).mean((2, 3))


def global_hint(distribution: torch.Tensor) -> torch.Tensor:
    """``(B, 314)`` from ``(B, 313)`` distributions (normalised here)."""
    d = distribution / distribution.sum(1, keepdim=True).clamp_min(1e-8)
    return torch.cat([d, torch.ones(d.shape[0], 1, dtype=d.dtype, device=d.device)], 1)


def simulate(ab: torch.Tensor, cfg: HintsConfig, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Hints drawn from the true colours ``ab`` ``(B, 2, H, W)`` (Lab units, at the
    network's input size): ``(local (B, 3, H, W), global (B, 314))``."""
    B, _, H, W = ab.shape
    local, glob = empty(B, H, W)
    ab_n = color.normalize_ab(ab)
    lo, hi = cfg.patch
    u = torch.rand(B, generator=generator)
    # Geometric count >= 1 with the given mean, for the crops that get points.
    p = 1.0 / max(cfg.mean_points, 1.0)
    counts = torch.floor(torch.log1p(-torch.rand(B, generator=generator)) / torch.log1p(torch.tensor(-p))).long() + 1
    for i in range(B):
        if u[i] < cfg.p_none:
            continue
        for _ in range(min(int(counts[i]), cfg.max_points)):
            s = int(torch.randint(lo, hi + 1, (1,), generator=generator))
            s = min(s, H, W)
            y = int(torch.randint(0, H - s + 1, (1,), generator=generator))
            x = int(torch.randint(0, W - s + 1, (1,), generator=generator))
            local[i, :2, y:y + s, x:x + s] = ab_n[i, :, y:y + s, x:x + s].mean((1, 2))[:, None, None]
            local[i, 2, y:y + s, x:x + s] = 1
    given = torch.rand(B, generator=generator) < cfg.p_global
    if given.any():
        glob[given] = global_hint(histogram(ab[given]))
    return local, glob


def step_generator(seed: int, step: int, rank: int = 0) -> torch.Generator:
    """The generator of one step's hints (independent of the global RNG)."""
    return torch.Generator().manual_seed((seed * 1_000_003 + step) * 131 + rank + 7)


def resize_local(local: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A local hint map at another grid: ab averaged over each cell's hinted pixels, the
    mask the hinted share of the cell (area pooling; nearest when enlarging)."""
    if tuple(local.shape[-2:]) == tuple(size):
        return local
    if size[0] >= local.shape[-2]:
        return F.interpolate(local, size=size, mode="nearest")
    mask = F.adaptive_avg_pool2d(local[:, 2:], size)
    ab = F.adaptive_avg_pool2d(local[:, :2] * local[:, 2:], size) / mask.clamp_min(1e-6)
    return torch.cat([ab * (mask > 0), mask], 1)


# ---------------------------------------------------------------- the user side
DEFAULT_POINT_SIZE = 5  # a point's square side, pixels of the network's input (training drew 1-9)
MAX_POINTS = 1000  # per photo; more is a mistake (a file of every pixel), refused clearly
MAX_POINT_SIZE = 64
FILE_VERSION = 1
REFERENCE_SIDE = 128  # a reference photo is shrunk to this long side before its histogram


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
    px = photo.pixels
    if px.dtype != np.uint8:
        px = (np.clip(px, 0, 1) * 255 + 0.5).astype(np.uint8)
    im = Image.fromarray(px)
    im.thumbnail((REFERENCE_SIDE, REFERENCE_SIDE), Image.Resampling.BOX)
    rgb = torch.from_numpy(np.asarray(im.convert("RGB"), dtype=np.float32) / 255).permute(2, 0, 1)[None]
    ab = color.rgb_to_lab(rgb)[:, 1:]
    if float(ab.norm(dim=1).mean()) < 2.0:
        raise HintError(f"reference {photo.name}: the photo is grey, it has no colours to follow")
    return global_hint(histogram(ab))[0]


# ---------------------------------------------------------------- the hints file
def to_json(guide: Guide, photo_size: tuple[int, int] | None = None, reference_path: str | None = None) -> dict:
    """The hints file's content (docs/GUIDE.md) for ``guide``.

    Points are written in one unit: pixels when every point is in pixels, else fractions
    (pixel points converted with ``photo_size`` = (width, height)). The reference is
    ``reference_path`` when given, else its 313-bin distribution, else null.

    Raises:
        HintError: mixed pixel and relative points without ``photo_size``.
    """
    pixels = bool(guide.points) and not any(p.relative for p in guide.points)
    if not pixels and not all(p.relative for p in guide.points) and photo_size is None:
        raise HintError("points mix pixels and fractions: give the photo's size to write them as fractions")
    points = []
    for p in guide.points:
        x, y = (p.x, p.y) if pixels or p.relative else p.position(photo_size[1], photo_size[0])
        points.append({"x": x, "y": y, "colour": p.colour, **({"size": p.size} if p.size else {})})
    ref = reference_path if reference_path is not None else None if guide.reference is None else \
        {"distribution": [round(float(v), 6) for v in guide.reference[:-1]]}
    return {"version": FILE_VERSION, "units": "pixels" if pixels else "relative", "point_size": guide.point_size,
            "points": points, "reference": ref}


def from_json(data, name: str = "hints", base: Path | None = None) -> Guide:
    """A :class:`Guide` from a hints file's content; ``name`` is named in errors, ``base``
    is the folder a reference path is relative to (None: reference paths are refused).

    Raises:
        HintError: naming the file and the bad part.
    """
    if not isinstance(data, dict):
        raise HintError(f"{name}: expected a JSON object with version, points and reference")
    if data.get("version") != FILE_VERSION:
        raise HintError(f"{name}: version must be {FILE_VERSION}, got {data.get('version')!r}")
    units = data.get("units", "relative")
    if units not in ("relative", "pixels"):
        raise HintError(f"{name}: units must be 'relative' or 'pixels', got {units!r}")
    points = data.get("points", [])
    if not isinstance(points, list):
        raise HintError(f"{name}: points must be a list")
    if len(points) > MAX_POINTS:
        raise HintError(f"{name}: {len(points)} points: at most {MAX_POINTS} per photo")
    size = data.get("point_size", DEFAULT_POINT_SIZE)
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_POINT_SIZE:
        raise HintError(f"{name}: point_size must be a whole number from 1 to {MAX_POINT_SIZE}, got {size!r}")
    out = []
    for i, p in enumerate(points, 1):
        if not isinstance(p, dict):
            raise HintError(f"{name}: point {i} must be an object with x, y and colour")
        colour = p.get("colour", p.get("color"))
        missing = [k for k, v in (("x", p.get("x")), ("y", p.get("y")), ("colour", colour)) if v is None]
        if missing:
            raise HintError(f"{name}: point {i} has no {' or '.join(missing)}")
        try:
            xy = [_unit(p[k], units, k) for k in ("x", "y")]
            out.append(Hint(xy[0], xy[1], colour, p.get("size")))
        except HintError as e:
            raise HintError(f"{name}: point {i}: {e}") from None
    return Guide(out, _reference(data.get("reference"), name, base), size)


def _unit(v, units: str, axis: str):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise HintError(f"{axis} must be a number, got {v!r}")
    if units == "relative":
        return float(v)
    if float(v) != int(v):
        raise HintError(f"{axis} {v} is not a whole number of pixels (units: pixels)")
    return int(v)


def _reference(ref, name: str, base: Path | None) -> torch.Tensor | None:
    if ref is None:
        return None
    if isinstance(ref, str):
        if base is None:
            raise HintError(f"{name}: reference must be null or a distribution here, not a file name")
        path = Path(ref) if Path(ref).is_absolute() else base / ref
        try:
            return reference_hint(path)
        except HintError as e:
            raise HintError(f"{name}: {e}") from None
    dist = ref.get("distribution") if isinstance(ref, dict) else None
    if not isinstance(dist, list) or len(dist) != GLOBAL_DIM - 1 or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0 for v in dist) \
            or sum(dist) <= 0:
        raise HintError(f"{name}: reference must be null, an image file name, or "
                        f"{{\"distribution\": [{GLOBAL_DIM - 1} non-negative numbers, not all 0]}}")
    return global_hint(torch.tensor([dist], dtype=torch.float32))[0]


def load_hints(path: str | os.PathLike) -> Guide:
    """Read a hints file (docs/GUIDE.md); a reference path in it is relative to its folder.

    Raises:
        HintError: missing, unreadable, not JSON, or not a valid hints file; the message names it.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise HintError(f"{path}: no such hints file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise HintError(f"{path}: cannot read the hints file ({e})") from None
    return from_text(text, str(path), path.parent)


def from_text(text: str, name: str = "hints", base: Path | None = None) -> Guide:
    """A :class:`Guide` from a hints file's text (e.g. a REST form field); as :func:`from_json`."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise HintError(f"{name}: not JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None
    return from_json(data, name, base)


def save_hints(path: str | os.PathLike, guide: Guide, photo_size: tuple[int, int] | None = None,
               reference_path: str | None = None) -> None:
    """Write ``guide`` as a hints file (:func:`to_json`), atomically."""
    from .io import atomic_write

    text = json.dumps(to_json(guide, photo_size, reference_path), indent=1) + "\n"
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
