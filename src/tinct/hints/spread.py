"""The non-learned hint baseline: spread each point's colour correction over the automatic output.

For an automatic output (lightness L, chroma ab at every pixel) and points k asking for
colours h_k at pixels p_k:

    d_k    = h_k - mean ab of the output in the window around p_k   (what the point corrects)
    L_k    = mean L in that window                                  (the lightness it stands on)
    w_k(p) = exp(-|p - p_k|^2 / (2 sigma_xy^2) - (L(p) - L_k)^2 / (2 sigma_L^2))
    ab'(p) = ab(p) + sum_k w_k(p) d_k / max(1, sum_k w_k(p))

so the correction is d_k in full on the point, fades with distance and with lightness
difference (it crosses an edge between a dark and a light object hardly at all), is 0 far
from every point, and where several points reach a pixel it is their weighted average (the
max(1, .) keeps it from adding up past any one correction). ``sigma_xy`` is a fraction of
the photo's short side, so the result does not depend on the resolution.

It cannot tell apart two objects of the same lightness that touch: the weight follows
straight-line distance, not a path inside an object (a geodesic or learned spread would).
Vectorised over pixels, in chunks of points (a 256 x 256 photo with 50 points takes a
few milliseconds).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .. import color

# Chosen on 40 training photos (experiments/spread_sigmas.py; table in docs/GUIDE.md): the best
# mean PSNR gain at 1, 10 and 20 points within 0.02 dB, and the more local of the two best.
SPREAD_SIGMA_XY = 0.2  # fraction of the short side (51 px on a 256 x 256 photo)
SPREAD_SIGMA_L = 16.0  # CIELAB L units
# The colorizer's width depends on the number of points K (each point stands for about 1/K of
# the photo): sigma_xy = 0.25 (10 / K) ** 0.44, within [0.08, 0.6]; fitted to the best width per K
# on the same 40 training photos (experiments/spread_per_count.py; docs/GUIDE.md).
SPREAD_SIGMA_AT_10 = 0.25
SPREAD_SIGMA_POWER = 0.44
SPREAD_SIGMA_RANGE = (0.08, 0.6)
WINDOW = 5  # pixels: where the output's colour at a point is read (as the hint obedience metric reads it)
_CHUNK_VALUES = 1 << 22  # points x pixels per step: bounds the memory (16 MB of float32)


def sigma_for(points: int) -> float:
    """The colorizer's spatial width (a fraction of the short side) for ``points`` points:
    ``0.25 * (10 / points) ** 0.44`` within [0.08, 0.6] (wide for one point, narrow for
    many). The ``spread:BASE`` baseline keeps the fixed :data:`SPREAD_SIGMA_XY`."""
    k = max(1, int(points))
    lo, hi = SPREAD_SIGMA_RANGE
    return float(min(hi, max(lo, SPREAD_SIGMA_AT_10 * (10 / k) ** SPREAD_SIGMA_POWER)))


def pixel_positions(points: Sequence, height: int, width: int, grid: tuple[int, int] | None = None) -> np.ndarray:
    """``(K, 2)`` int pixel (x, y) of points (:class:`tinct.hints.Hint` or
    :class:`tinct.hints.TruePoint`: anything with ``position(height, width)``) on a photo of
    ``height`` x ``width`` pixels, or, given ``grid`` = (h, w), on that grid laid over the
    same photo (a pixel point is a pixel of the photo, wherever it lands on the grid)."""
    xy = [p.position(height, width) for p in points]
    gh, gw = grid or (height, width)
    if not xy:
        return np.zeros((0, 2), dtype=int)
    f = np.asarray(xy, dtype=np.float64) * (gw, gh) - 0.5
    return np.clip(np.floor(f + 0.5).astype(int), 0, (gw - 1, gh - 1))


def spread_ab(L: np.ndarray, ab: np.ndarray, xy: np.ndarray, asked: np.ndarray,
              sigma_xy: float = SPREAD_SIGMA_XY, sigma_l: float = SPREAD_SIGMA_L, window: int = WINDOW) -> np.ndarray:
    """The automatic ab corrected by the points (the module's formula).

    Args:
        L: ``(H, W)`` lightness in [0, 100].
        ab: ``(H, W, 2)`` the automatic output's ab (Lab units).
        xy: ``(K, 2)`` int pixel (x, y) of the points.
        asked: ``(K, 2)`` the ab each point asks for.
        sigma_xy: spatial width, a fraction of the short side.
        sigma_l: lightness width, L units (``inf``: distance only).
        window: side of the square around a point where the output's ab and L are read.

    Returns:
        float32 ``(H, W, 2)``.
    """
    H, W = L.shape
    xy, asked = np.asarray(xy, dtype=int).reshape(-1, 2), np.asarray(asked, dtype=np.float64).reshape(-1, 2)
    if len(xy) == 0:
        return ab.astype(np.float32)
    r = window // 2
    d, Lk = np.empty((len(xy), 2)), np.empty(len(xy))  # each point's correction and lightness
    for k, (x, y) in enumerate(xy):
        ys, xs = slice(max(0, y - r), y + r + 1), slice(max(0, x - r), x + r + 1)
        d[k] = asked[k] - ab[ys, xs].reshape(-1, 2).mean(0)
        Lk[k] = L[ys, xs].mean()
    s2 = 2.0 * (sigma_xy * min(H, W)) ** 2
    l2 = 2.0 * sigma_l ** 2
    # The weight is exp of one sum of three exponents: one pass over (points, H, W) for exp.
    lx = torch.from_numpy(-(np.arange(W)[None, :] - xy[:, :1]) ** 2 / s2).float()  # (K, W)
    ly = torch.from_numpy(-(np.arange(H)[None, :] - xy[:, 1:]) ** 2 / s2).float()  # (K, H)
    Lt, Lk, d = torch.from_numpy(np.asarray(L, dtype=np.float32)), torch.from_numpy(Lk).float(), torch.from_numpy(d).float()
    num = torch.zeros(2, H * W)
    den = torch.zeros(H * W)
    step = max(1, _CHUNK_VALUES // (H * W))
    for k0 in range(0, len(xy), step):
        k = slice(k0, k0 + step)
        if np.isfinite(sigma_l):
            e = (Lt[None] - Lk[k, None, None]).square_().mul_(-1.0 / l2)  # (k, H, W)
        else:
            e = torch.zeros(len(Lk[k]), H, W)
        w = e.add_(ly[k, :, None]).add_(lx[k, None, :]).exp_().reshape(-1, H * W)
        num += d[k].T @ w
        den += w.sum(0)
    corr = (num / den.clamp_min(1.0)).reshape(2, H, W).permute(1, 2, 0).numpy()
    return (ab + corr).astype(np.float32)


def spread_rgb(rgb: np.ndarray, points: Sequence, sigma_xy: float = SPREAD_SIGMA_XY, sigma_l: float = SPREAD_SIGMA_L,
           window: int = WINDOW) -> np.ndarray:
    """An automatic output corrected by points: float RGB ``(H, W, 3)`` in [0, 1] in and out
    (lightness kept; the corrected colour clipped to the sRGB gamut).

    Args:
        rgb: the automatic output.
        points: :class:`tinct.hints.Hint` or :class:`tinct.hints.TruePoint` (their ``ab``).
    """
    lab = color.rgb_to_lab(np.asarray(rgb, dtype=np.float32))
    if not len(points):
        return np.asarray(rgb, dtype=np.float32)
    H, W = lab.shape[:2]
    ab = spread_ab(lab[..., 0], lab[..., 1:], pixel_positions(points, H, W), np.array([p.ab for p in points]),
                   sigma_xy, sigma_l, window)
    return color.lab_to_rgb(np.concatenate([lab[..., :1], ab], -1).astype(np.float32))


def spread_grid(L: torch.Tensor, ab_small: torch.Tensor, points: Sequence, photo: tuple[int, int]) -> torch.Tensor:
    """The points of a model that takes no hints, as the colorizer applies them: ``L``
    ``(h, w)`` the lightness on the working grid (the grid the network saw) of a photo of
    ``photo`` = (H, W) pixels, ``ab_small`` ``(2, h', w')`` the model's low-resolution ab,
    enlarged to the working grid and corrected there (:func:`spread_ab`, width
    :func:`sigma_for`). Returns ``(2, h, w)``; the render enlarges it to the photo and
    recombines it with the full L.
    """
    shape = tuple(L.shape)
    ab_w = F.interpolate(ab_small[None].float(), size=shape, mode="bilinear", align_corners=False)[0]
    out = spread_ab(L.float().numpy(), ab_w.permute(1, 2, 0).numpy(), pixel_positions(points, *photo, grid=shape),
                    np.array([p.ab for p in points]), sigma_for(len(points)))
    return torch.from_numpy(out).permute(2, 0, 1)
