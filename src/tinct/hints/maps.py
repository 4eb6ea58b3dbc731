"""The hints as the network takes them: the local map ``(B, 3, H, W)`` (ab_n where a hint
lies, 0 elsewhere, and a mask channel) and the global hint ``(B, 314)`` (a distribution
over the 313 ab bins and a "given" flag; all zeros = none)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import color

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

