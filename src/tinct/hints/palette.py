"""A reference palette for a model that takes no hints: shift its per-pixel distributions
until, over the photo, they add up to the reference's.

A bin model predicts at every pixel x a distribution p(q | x) over the 313 ab bins (the
softmax of its logits at the decoding temperature, after the prior correction). Its photo
marginal m(q) = mean_x p(q | x) is the palette it is about to paint. Given a reference
palette r(q) (:func:`tinct.hints.reference_hint`), :func:`palette_offsets` finds one
offset u(q) per bin such that the shifted distributions

    p_u(q | x) = p(q | x) exp(u(q)) / sum_q' p(q' | x) exp(u(q'))

have the marginal r: Sinkhorn's iteration (each pixel's row is normalised by the softmax,
each bin's column scaled by exp(u) toward r), from u = 0. Each pixel keeps its own
preferences (a bin it gives no mass gets none), so the reference's colours go where the
model already thought them possible: a blue-ish sky becomes the reference's blue, not the
grass.

``strength`` s in [0, 1] aims at r^s m^(1 - s) (renormalised) instead of r: 0 changes
nothing, 1 matches the reference in full. The reference is mixed with a little of the
uniform distribution first (:data:`FLOOR`), so a bin missing from a small reference is
damped, not forbidden.

This is the non-learned path (no training, any bin model; docs/GUIDE.md); a hint network
(``spec.hints``) takes the reference as an input instead.
"""

from __future__ import annotations

import torch

from .points import HintError

MAX_OFFSET = 8.0  # |u| cap: a bin the model gives no pixel any mass stays out of reach instead of blowing up
ITERATIONS = 30  # Sinkhorn steps; the marginal's largest relative error is below 1% by then on real photos
FLOOR = 1e-3  # share of the uniform distribution mixed into the reference
STRENGTH = 0.75  # see the module docstring; chosen on 40 training photos (experiments/palette_strength.py, docs/GUIDE.md)


def palette_offsets(z: torch.Tensor, reference: torch.Tensor, strength: float = STRENGTH,
                    iterations: int = ITERATIONS) -> torch.Tensor:
    """The per-bin offsets ``(Q,)`` to add to ``z`` so that softmax(z + u) has the reference's marginal.

    Args:
        z: ``(Q, h, w)`` the logits as decoded (divided by the temperature, prior-corrected):
            softmax over Q is each pixel's distribution.
        reference: ``(Q,)`` the reference palette (any non-negative weights; normalised here).
        strength: in [0, 1], how far to go from the model's own marginal to the reference's.
        iterations: Sinkhorn steps.

    Raises:
        ValueError: shapes that do not match, a reference with no mass, a strength outside [0, 1].
    """
    Q = z.shape[0]
    if z.ndim != 3 or tuple(reference.shape) != (Q,):
        raise ValueError(f"logits (Q, h, w) and a (Q,) reference expected, got {tuple(z.shape)} and "
                         f"{tuple(reference.shape)}")
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be in [0, 1], got {strength}")
    r = reference.double().clamp_min(0)
    if not float(r.sum()) > 0:
        raise ValueError("the reference palette has no mass")
    r = (1 - FLOOR) * r / r.sum() + FLOOR / Q
    logp = torch.log_softmax(z.double().reshape(Q, -1), 0)  # (Q, N)
    log_n = torch.log(torch.tensor(float(logp.shape[1]), dtype=torch.float64))
    log_m = torch.logsumexp(logp, 1) - log_n  # the model's own palette
    log_target = strength * torch.log(r) + (1 - strength) * log_m
    log_target = log_target - torch.logsumexp(log_target, 0)
    u = torch.zeros(Q, dtype=torch.float64)
    for _ in range(iterations):
        shifted = torch.log_softmax(logp + u[:, None], 0)
        u = (u + log_target - (torch.logsumexp(shifted, 1) - log_n)).clamp_(-MAX_OFFSET, MAX_OFFSET)
    return u.to(z.dtype)


def palette_shift(raw: torch.Tensor, reference: torch.Tensor, temperature: float, log_prior: torch.Tensor | None = None,
                  prior_power: float = 0.0, strength: float = STRENGTH) -> torch.Tensor:
    """A bin model's raw logits ``(Q, h, w)`` shifted so that, decoded at ``temperature``
    (with the prior correction ``prior_power * log_prior`` that :func:`tinct.decode.decode_ab`
    applies), the photo's palette is ``reference`` ``(Q,)`` (:func:`palette_offsets`).

    Raises:
        tinct.hints.HintError: the model's output is not a distribution over the reference's bins.
    """
    if raw.ndim != 3 or raw.shape[0] != reference.shape[0]:
        raise HintError(f"a reference palette needs a model with a distribution over the {reference.shape[0]} ab bins "
                        "(the default family) or a hint model; this one outputs something else")
    z = raw.double()
    if prior_power:
        z = z - prior_power * log_prior.to(z).view(-1, 1, 1)
    u = palette_offsets(z / temperature, reference, strength)
    return raw + (temperature * u).to(raw.dtype).view(-1, 1, 1)


def marginal(z: torch.Tensor) -> torch.Tensor:
    """``(Q,)``: the photo marginal mean_x softmax(z)(q | x) of ``(Q, h, w)`` logits."""
    return torch.softmax(z.reshape(z.shape[0], -1), 0).mean(1)
