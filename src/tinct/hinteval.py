"""``tinct evaluate --hints``: the usual figures, with colour hints simulated from the truth.

Every photo is evaluated under several *conditions*: no hints (the automatic output), N
points for each N asked (:func:`tinct.hints.truth_points`: fixed per photo by the seed and
the photo's id, the same for every model; each asks for its 5 x 5 patch's mean true ab),
and with ``--reference self`` the photo's own palette as the global hint
(:func:`tinct.hints.palette_hint`, as a reference photo's is made). Each (model, condition)
is one report row, named ``MODEL @ 10 hints``: the report's tables, intervals, paired
differences and gallery treat it as a model.

Which model runs under which condition:

- a checkpoint or bundled model (``default``, a run folder, ...): every condition it can
  follow, as :meth:`tinct.Colorizer.colorize` follows hints (a hint model's network takes
  them; any other model's output is corrected by the points on its working grid and, a
  bin model, shifted to the reference's palette);
- ``spread:BASE`` (:class:`SpreadModel`, the non-learned baseline the issue named): BASE's
  automatic output corrected by each point at the photo's resolution
  (:func:`tinct.hints.spread_rgb`); points only;
- a baseline with no model (``gray``, ``mean-ab``): no hints only (the summary says so).

Each hinted row also measures hint obedience (:func:`tinct.metrics.hint_obedience`, the
mean CIEDE2000 between the asked colour and the output around each point) for its own
output and for its model's automatic output at the same points.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import color, hints, metrics
from .io import Photo, to_pil

EXTRA_COLUMNS = ("hints", "reference_self", "hint_de00", "hint_de00_auto")  # metrics.csv, hinted runs only
MAX_HINTS = hints.MAX_POINTS


@dataclass(frozen=True)
class Condition:
    """What one row's outputs were given: ``points`` simulated hints and/or the photo's palette."""

    points: int = 0
    reference: bool = False

    @property
    def auto(self) -> bool:
        return not self.points and not self.reference

    @property
    def label(self) -> str:
        if self.reference:
            return "reference self" + (f" + {self.points} hints" if self.points else "")
        return f"{self.points} hint" + ("" if self.points == 1 else "s")


@dataclass(frozen=True)
class Row:
    """One report row: ``model`` under ``condition``, reported as ``name``."""

    name: str
    model: str
    condition: Condition


def takes_points(fn) -> bool:
    return bool(getattr(fn, "takes_points", False))


def takes_reference(fn) -> bool:
    return bool(getattr(fn, "takes_reference", False))


def _quantize(rgb: np.ndarray) -> np.ndarray:
    return np.asarray(to_pil(rgb), dtype=np.float32) / 255.0


class SpreadModel:
    """The non-learned baseline ``spread:BASE``: BASE's automatic output, with each point's
    correction spread by a Gaussian in x, y and L (:mod:`tinct.hints.spread`).

    Called as every evaluated model is, ``(photo) -> RGB``, and with a guide
    ``(photo, guide, auto=BASE's output)``: the automatic output is given by the caller
    (it is this model's no-hints row), so a hinted row costs the spreading alone.
    """

    takes_points = True
    takes_reference = False

    def __init__(self, base, sigma_xy: float = hints.SPREAD_SIGMA_XY, sigma_l: float = hints.SPREAD_SIGMA_L):
        self.base, self.sigma_xy, self.sigma_l = base, sigma_xy, sigma_l

    def __call__(self, photo: Photo, guide: hints.Guide | None = None, auto: np.ndarray | None = None) -> np.ndarray:
        if guide is None or not guide.points:
            return self.base(photo)
        rgb = auto if auto is not None else self.base(photo)
        return _quantize(hints.spread_rgb(rgb, guide.points, self.sigma_xy, self.sigma_l))


def conditions(counts=None, reference: str | None = None) -> list[Condition]:
    """The conditions of a run: no hints first (always: the other rows' reference), then
    each count in increasing order, then the photo's own palette when ``reference == "self"``."""
    counts = sorted({int(n) for n in counts or ()} - {0})
    if any(n < 0 or n > MAX_HINTS for n in counts):
        raise ValueError(f"hint counts must be 0 to {MAX_HINTS}, got {counts}")
    if reference not in (None, "self"):
        raise ValueError(f"reference must be 'self', got {reference!r}")
    return [Condition(), *(Condition(n) for n in counts), *([Condition(reference=True)] if reference else [])]


class Plan:
    """The rows of one evaluation and how to make each photo's outputs.

    Without counts and reference (a plain ``tinct evaluate``) there is one row per model,
    named as the model, and nothing else changes.

    Args:
        models: name -> callable, from :func:`tinct.evaluate.load_models`.
        counts: the numbers of simulated points (``--hints``), or None.
        reference: ``"self"`` (``--reference self``) or None.
        seed: the points' seed.
    """

    def __init__(self, models: dict, counts=None, reference: str | None = None, seed: int = 0):
        self.hinted = counts is not None or reference is not None
        self.conditions = conditions(counts, reference) if self.hinted else [Condition()]
        self.seed = seed
        self.rows: list[Row] = []
        self.notes: list[str] = []
        for m, fn in models.items():
            for c in self.conditions:
                if c.auto or (c.points and takes_points(fn)) or (c.reference and takes_reference(fn)):
                    self.rows.append(Row(f"{m} @ {c.label}" if self.hinted else m, m, c))
            if self.hinted and not takes_points(fn):
                self.notes.append(f"{m} takes no hints: reported without hints only (the non-learned baseline "
                                  f"on its output: --model spread:{m})")
            elif self.hinted and reference and not takes_reference(fn):
                self.notes.append(f"{m} takes no reference: not run with reference self")
        self.auto = {r.model: r.name for r in self.rows if r.condition.auto}

    @property
    def names(self) -> list[str]:
        return [r.name for r in self.rows]

    @property
    def extra_columns(self) -> tuple[str, ...]:
        return EXTRA_COLUMNS if self.hinted else ()

    def guides(self, truth: np.ndarray, photo_id: str) -> dict[Condition, hints.Guide]:
        """Each hinted condition's guide for one photo (its points and palette from ``truth``)."""
        if not self.hinted:
            return {}
        most = max(c.points for c in self.conditions)
        points = hints.truth_points(truth, most, photo_id, self.seed)
        palette = hints.palette_hint(truth) if any(c.reference for c in self.conditions) else None
        return {c: hints.Guide(points[:c.points], palette if c.reference else None)
                for c in self.conditions if not c.auto}

    def output(self, row: Row, fn, gray: Photo, guides: dict, outputs: dict) -> np.ndarray:
        """``row``'s output for one photo (its model's automatic output is in ``outputs``
        already: rows of a model come after its no-hints row)."""
        if row.condition.auto:
            return fn(gray)
        return fn(gray, guides[row.condition], auto=outputs[self.auto[row.model]])

    def extras(self, row: Row, guides: dict, outputs: dict, L: np.ndarray) -> dict:
        """``row``'s hint columns for one photo (:data:`EXTRA_COLUMNS`; none for a plain run)."""
        if not self.hinted:
            return {}
        c = row.condition
        out = {"hints": c.points, "reference_self": int(c.reference), "hint_de00": float("nan"),
               "hint_de00_auto": float("nan")}
        if c.points:
            pts = guides[c].points
            xy = hints.pixel_positions(pts, *L.shape)
            asked = np.array([p.ab for p in pts])
            out["hint_de00"] = metrics.hint_obedience(outputs[row.name], L, xy, asked, hints.HINT_PATCH)
            out["hint_de00_auto"] = metrics.hint_obedience(outputs[self.auto[row.model]], L, xy, asked, hints.HINT_PATCH)
        return out

    def config(self) -> dict | None:
        """What the report needs to know of the hints (``summary.json``'s ``config.hints``)."""
        if not self.hinted:
            return None
        return {"counts": [c.points for c in self.conditions if not c.reference],
                "reference": "self" if any(c.reference for c in self.conditions) else None,
                "seed": self.seed, "patch": hints.HINT_PATCH, "point_size": hints.DEFAULT_POINT_SIZE,
                "spread": {"sigma_xy": hints.SPREAD_SIGMA_XY, "sigma_l": hints.SPREAD_SIGMA_L},
                "rows": {r.name: {"model": r.model, "points": r.condition.points, "reference": r.condition.reference}
                         for r in self.rows},
                "notes": list(self.notes)}


def lightness(photo: Photo) -> np.ndarray:
    """``(H, W)`` L of the grey input: the lightness an asked colour takes."""
    return color.rgb_to_lab(photo.rgb)[..., 0]

