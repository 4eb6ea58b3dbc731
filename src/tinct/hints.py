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
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import color
from .config import HintsConfig

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
