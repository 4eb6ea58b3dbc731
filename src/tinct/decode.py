"""A network's raw output -> ab: the one place that knows how each output kind decodes.

The colorizer (inference, in Lab units) and the training tasks (losses on ab_n, with
gradients) both call :func:`decode_ab`, so a model trained on what it decodes to is
served the same way.

Prior correction (bin models): ``prior_power`` > 0 subtracts ``prior_power * log(prior)``
from the logits before the annealed mean, dividing the predicted distribution by the
training photos' ab prior raised to that power, so the frequent desaturated browns lose
weight against rarer colours. The prior is :func:`decoding_prior` of the training photos'
bin counts (``tinct.tasks.estimate_prior``), carried in a checkpoint's meta (``ab_prior``,
with ``prior_power``).
"""

from __future__ import annotations

import numpy as np
import torch

from . import color
from .models.spec import ModelSpec


def bin_centers(spec: ModelSpec) -> torch.Tensor:
    """The ab centres ``(Q, 2)`` (Lab units, float32, CPU) of a bin model's bins."""
    if not spec.is_bins:
        raise ValueError(f"a {spec.tag!r} model has no ab bins")
    return torch.from_numpy(color.bin_centers(spec.bins))


PRIOR_SIGMA = 5.0  # Gaussian smoothing of the bin counts, Lab units (as training's class rebalancing)
PRIOR_MIX = 0.05  # mixed with the uniform distribution, so bins never seen get a finite log prior


def decoding_prior(counts: np.ndarray, kind: str = "313") -> np.ndarray:
    """Training photos' bin counts ``(Q,)`` -> the prior the decoding divides by: the counts
    normalised, smoothed (sigma :data:`PRIOR_SIGMA`) and mixed with the uniform distribution
    (weight :data:`PRIOR_MIX`), i.e. the inverse of Zhang's rebalancing weights at that
    lambda (``color.rebalance_weights``). float64 ``(Q,)`` summing to 1, all > 0."""
    p = 1.0 / color.rebalance_weights(counts, PRIOR_MIX, PRIOR_SIGMA, color.bin_centers(kind)).astype(np.float64)
    return p / p.sum()


def decode_ab(y: torch.Tensor, spec: ModelSpec, temperature: float = 0.38, *, centers: torch.Tensor | None = None,
              normalized: bool = False, log_prior: torch.Tensor | None = None, prior_power: float = 0.0) -> torch.Tensor:
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
        log_prior: ``(Q,)`` log of :func:`decoding_prior` (bin models only).
        prior_power: the logits minus ``prior_power * log_prior`` are decoded (0 = off).

    Raises:
        ValueError: a ``"critic"`` spec (its output is not a colour); a prior power without a prior.
    """
    if spec.output == "ab":
        return y if normalized else color.denormalize_ab(y)
    if spec.output == "bins":
        if prior_power:
            if log_prior is None:
                raise ValueError("prior_power needs the training photos' ab prior (log_prior)")
            y = y - prior_power * log_prior.to(y).view(1, -1, 1, 1)
        ab = color.annealed_mean(y, bin_centers(spec) if centers is None else centers, temperature)
    elif spec.output == "rgb":
        ab = color.rgb_to_lab(y.clamp(0, 1))[:, 1:]
    else:
        raise ValueError(f"model output kind {spec.tag!r} cannot be turned into ab")
    return color.normalize_ab(ab) if normalized else ab
