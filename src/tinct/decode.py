"""A network's raw output -> ab: the one place that knows how each output kind decodes.

The colorizer (inference, in Lab units) and the training tasks (losses on ab_n, with
gradients) both call :func:`decode_ab`, so a model trained on what it decodes to is
served the same way.
"""

from __future__ import annotations

import torch

from . import color
from .models.spec import ModelSpec


def bin_centers(spec: ModelSpec) -> torch.Tensor:
    """The ab centres ``(Q, 2)`` (Lab units, float32, CPU) of a bin model's bins."""
    if not spec.is_bins:
        raise ValueError(f"a {spec.tag!r} model has no ab bins")
    return torch.from_numpy(color.bin_centers(spec.bins))


def decode_ab(y: torch.Tensor, spec: ModelSpec, temperature: float = 0.38, *, centers: torch.Tensor | None = None,
              normalized: bool = False) -> torch.Tensor:
    """Raw output ``(B, C, h, w)`` of a model with this spec -> ab ``(B, 2, h, w)``; differentiable.

    - ``"bins"``: the annealed mean of softmax(logits / temperature) over the bin centres;
    - ``"ab"``: the output is ab_n already;
    - ``"rgb"``: the chroma of the sRGB output (clamped to [0, 1] first: Lab of an
      out-of-gamut value is meaningless; a sigmoid output is unchanged by it).

    Args:
        temperature: annealed-mean temperature (bin models only), > 0.
        centers: the bins' centres, e.g. kept on the training device; default
            :func:`bin_centers` (moved to ``y``'s device and dtype).
        normalized: return ab_n = ab / 110 (what training compares) instead of Lab units.
            Each kind is converted once: an ``"ab"`` output is returned as it is.

    Raises:
        ValueError: a ``"critic"`` spec (its output is not a colour).
    """
    if spec.output == "ab":
        return y if normalized else color.denormalize_ab(y)
    if spec.output == "bins":
        ab = color.annealed_mean(y, bin_centers(spec) if centers is None else centers, temperature)
    elif spec.output == "rgb":
        ab = color.rgb_to_lab(y.clamp(0, 1))[:, 1:]
    else:
        raise ValueError(f"model output kind {spec.tag!r} cannot be turned into ab")
    return color.normalize_ab(ab) if normalized else ab
