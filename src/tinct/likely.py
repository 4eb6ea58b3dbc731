"""The colours a bin model thinks likely at one point of a photo: the swatches of the web
editor (``POST /api/suggest``) and :meth:`tinct.Colorizer.likely_colours`.

A bin model's output is, at each cell of its output grid, a distribution over the 313 ab
bins. At a point (fractions of the width and height) the distribution is read bilinearly
from the grid (the logits with the model's stored prior correction, softmax at
temperature 1: the model's own probabilities, before the annealed mean sharpens them),
and its most probable bins are returned, best first. Bins closer than ``min_distance``
(Lab units) to a bin already chosen are passed over, so neighbouring bins (10 units apart
on the grid) do not fill the list with near-copies of one colour.

Each colour comes with a displayable sRGB hex of the same ab: at the lightness closest to
the photo's own there (taken within 30..85 where it can be, so a swatch is seldom
near-black or near-white) at which that ab is inside the sRGB gamut, so the hex's own ab (what a hint keeps,
:func:`tinct.hints.colour_ab`) is the bin's.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

DISPLAY_L = (30.0, 85.0)  # a swatch's lightness range


@dataclass(frozen=True)
class LikelyColour:
    """One likely colour: the bin's ab (Lab units), its probability, a displayable hex."""

    a: float
    b: float
    probability: float
    hex: str

    def as_dict(self) -> dict:
        return {"colour": self.hex, "a": round(self.a, 2), "b": round(self.b, 2),
                "probability": round(self.probability, 4)}


def distribution_at(colorizer, L: torch.Tensor, x: float, y: float, size: int | None = None,
                    guide=None) -> torch.Tensor:
    """The model's bin probabilities ``(Q,)`` at relative position (``x``, ``y``) of the photo
    whose full-resolution lightness is ``L`` ``(H, W)``, with ``guide`` (a
    :class:`tinct.hints.Guide` or None) as its hints.

    Raises:
        ValueError: the model does not output bins, or x, y outside [0, 1].
    """
    if not colorizer.spec.is_bins:
        raise ValueError(f"a {colorizer.spec.tag!r} model gives no colour distribution (a bin model does)")
    if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
        raise ValueError(f"x and y must be fractions in [0, 1], got {x}, {y}")
    raw = colorizer.predict_raw_averaged([L], size, 1, [guide] if guide else None)[0]  # (Q, h, w)
    if not colorizer.spec.hints:  # the non-learned path: only a reference changes the distributions
        raw = colorizer.shift_to_reference(raw, guide)
    if colorizer.prior_power:
        raw = raw - colorizer.prior_power * colorizer.log_prior.to(raw).view(-1, 1, 1)
    p = torch.softmax(raw.float(), 0)[None]
    grid = torch.tensor([[[[2 * x - 1, 2 * y - 1]]]], dtype=p.dtype)  # align_corners=False: -1, 1 are the edges
    return F.grid_sample(p, grid, mode="bilinear", padding_mode="border", align_corners=False)[0, :, 0, 0]


def top_bins(p: torch.Tensor, centers: torch.Tensor, k: int, min_distance: float = 15.0) -> list[tuple[int, float]]:
    """(bin, probability) of the ``k`` most probable bins of ``p`` ``(Q,)``, skipping bins within
    ``min_distance`` of one already chosen."""
    chosen: list[int] = []
    for q in torch.argsort(p, descending=True).tolist():
        if all(float((centers[q] - centers[j]).norm()) >= min_distance for j in chosen):
            chosen.append(q)
            if len(chosen) == k:
                break
    return [(q, float(p[q])) for q in chosen]


def display_hex(a: float, b: float, lightness: float = 60.0) -> str:
    """``#rrggbb`` showing (a, b): of the lightnesses at which sRGB holds (a, b), the one nearest
    ``lightness`` (clamped to :data:`DISPLAY_L`); where none does (a quarter of the 313 bins'
    centres lie just outside the gamut), the clipped colour whose ab comes nearest."""
    import kornia.color

    target = min(max(float(lightness), DISPLAY_L[0]), DISPLAY_L[1])
    Ls = torch.arange(0.0, 100.25, 0.25)
    lab = torch.stack([Ls, torch.full_like(Ls, a), torch.full_like(Ls, b)])[None, :, :, None]  # (1, 3, n, 1)
    rgb = kornia.color.lab_to_rgb(lab, clip=False).clamp(0, 1)
    shown = kornia.color.rgb_to_lab(rgb)[0, 1:, :, 0]  # (2, n): the ab each clipped colour really has
    miss = (shown - torch.tensor([[a], [b]])).norm(dim=0)
    score = torch.where(miss < 1.0, 0.0, miss) + 0.01 * (Ls - target).abs()  # in gamut (within 1): nearest L wins
    r, g, bl = (rgb[0, :, int(score.argmin()), 0] * 255 + 0.5).to(torch.uint8).tolist()
    return f"#{r:02x}{g:02x}{bl:02x}"


def likely_colours(colorizer, L: torch.Tensor, x: float, y: float, k: int = 6, size: int | None = None,
                   guide=None, min_distance: float = 15.0) -> list[LikelyColour]:
    """The ``k`` likeliest colours at (``x``, ``y``) (fractions of the width and height) of the
    photo of lightness ``L`` ``(H, W)``, best first (see the module's docstring).

    Raises:
        ValueError: not a bin model, x or y outside [0, 1], k outside 1..32.
    """
    if not 1 <= int(k) <= 32:
        raise ValueError(f"k must be from 1 to 32, got {k}")
    p = distribution_at(colorizer, L, x, y, size, guide)
    H, W = L.shape
    here = float(L[min(int(y * H), H - 1), min(int(x * W), W - 1)])
    out = []
    for q, prob in top_bins(p, colorizer.centers, int(k), min_distance):
        a, b = (float(v) for v in colorizer.centers[q])
        out.append(LikelyColour(a, b, prob, display_hex(a, b, here)))
    return out

