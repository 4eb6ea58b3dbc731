"""Hints simulated from the true colours.

- for training (:func:`simulate`): a random number of points (many crops with none), at
  random places, each a small square whose colour is the square's mean true ab; the
  global hint on a random share of crops, the crop's own histogram. Everything is drawn
  from a generator seeded by (seed, step) (:func:`step_generator`), so a run's hints are a
  pure function of its step, as its batches are;
- for evaluation (:func:`truth_points`, ``tinct evaluate --hints``): points fixed per photo,
  drawn from (seed, the photo's id) alone, so every model (and the non-learned baseline)
  gets the same points, and the first N of them are the points of any smaller count.
  Each asks for the mean true ab of the :data:`HINT_PATCH` x :data:`HINT_PATCH` pixels
  around it: the colour a user who knew it would pick there.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import torch

from .. import color
from ..config import HintsConfig
from .maps import empty, global_hint, histogram

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


# ---------------------------------------------------------------- evaluation
HINT_PATCH = 5  # photo pixels: a simulated evaluation point asks for this square's mean true ab
_STREAM = 0x48494E54  # "HINT": keeps these draws apart from other per-photo streams (tinct.evaluate)


@dataclass(frozen=True)
class TruePoint:
    """A point whose colour is known exactly (simulated from the true colours): what a
    :class:`tinct.hints.Guide` takes in place of a :class:`tinct.hints.Hint` (the same
    ``position``, ``size`` and ``ab``), without the round trip of the ab through a colour name.

    Attributes:
        x, y: the pixel (column, row) of the photo it was drawn on.
        L, a, b: the mean true CIELAB of the patch around it (L only names :attr:`colour`).
        size: the side of its square on the network's input (None: the guide's default).
    """

    x: int
    y: int
    L: float
    a: float
    b: float
    size: int | None = None
    relative = False

    @property
    def ab(self) -> tuple[float, float]:
        return self.a, self.b

    @property
    def colour(self) -> str:
        """The hex sRGB of (L, a, b), clipped to the gamut: what a hints file can hold."""
        lab = np.array([[[self.L, self.a, self.b]]], dtype=np.float32)
        rgb = np.clip(color.lab_to_rgb(lab)[0, 0], 0, 1)
        return "#" + "".join(f"{int(v * 255 + 0.5):02x}" for v in rgb)

    def position(self, height: int, width: int) -> tuple[float, float]:
        """(x, y) as fractions of a ``height`` x ``width`` photo (the pixel's centre)."""
        return (self.x + 0.5) / width, (self.y + 0.5) / height


def truth_points(truth: np.ndarray, count: int, photo_id: str, seed: int = 0,
                 patch: int = HINT_PATCH) -> list[TruePoint]:
    """``count`` points on a photo, each asking for the mean true ab of its patch.

    Positions are uniform over the places whose ``patch`` x ``patch`` square lies inside
    the photo, drawn from ``(seed, crc32(photo_id))`` only: the same photo gets the same
    points in every run, for every model, and the points of a smaller count are the first
    ones of a larger.

    Args:
        truth: float RGB ``(H, W, 3)`` in [0, 1], at least ``patch`` pixels each way.
        count: how many points (>= 0).
        photo_id: the photo's id (its path relative to the data folder).

    Returns:
        the points, in the order drawn.
    """
    H, W = truth.shape[:2]
    if min(H, W) < patch:
        raise ValueError(f"a {W}x{H} photo is smaller than the {patch}x{patch} hint patch")
    r = patch // 2
    u = np.random.default_rng([seed, zlib.crc32(photo_id.encode()), _STREAM]).random((count, 2))  # row k: point k
    xs = r + np.minimum((u[:, 0] * (W - 2 * r)).astype(int), W - 2 * r - 1)
    ys = r + np.minimum((u[:, 1] * (H - 2 * r)).astype(int), H - 2 * r - 1)
    lab = color.rgb_to_lab(truth.astype(np.float32))
    out = []
    for x, y in zip(xs.tolist(), ys.tolist()):
        L, a, b = lab[y - r:y - r + patch, x - r:x - r + patch].reshape(-1, 3).astype(np.float64).mean(0)
        out.append(TruePoint(x, y, float(L), float(a), float(b)))
    return out
