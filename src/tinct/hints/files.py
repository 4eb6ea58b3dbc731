"""The hints file the web editor saves and ``tinct colorize --hints`` reads (format in
docs/GUIDE.md): :func:`load_hints`, :func:`save_hints`, :func:`from_text`."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import torch

from .guides import Guide, reference_hint
from .maps import GLOBAL_DIM, global_hint
from .points import DEFAULT_POINT_SIZE, MAX_POINT_SIZE, MAX_POINTS, Hint, HintError

FILE_VERSION = 1


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
    from ..io import atomic_write

    text = json.dumps(to_json(guide, photo_size, reference_path), indent=1) + "\n"
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
