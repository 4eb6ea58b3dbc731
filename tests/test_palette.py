"""A reference palette followed without hint inputs (tinct.hints.palette): the photo's
decoded palette becomes the reference's, each pixel within what it already found possible."""

from __future__ import annotations

import pytest
import torch

from tinct import color
from tinct.hints import HintError, palette_offsets, palette_shift
from tinct.hints.palette import marginal

CENTERS = torch.from_numpy(color.bin_centers("313"))


def _nearest(ab) -> int:
    return int((CENTERS - torch.tensor(ab, dtype=torch.float32)).norm(dim=1).argmin())


def test_the_shifted_marginal_is_the_reference():
    torch.manual_seed(0)
    z = torch.randn(313, 24, 16) * 3
    r = torch.rand(313) ** 4
    target = r / r.sum()
    assert float((marginal(z) - target).abs().max()) > 5e-3  # far apart to begin with
    full = marginal(z + palette_offsets(z, r, strength=1.0)[:, None, None])
    assert float((full - target).abs().max()) < 1e-3
    assert float(palette_offsets(z, r, strength=0.0).abs().max()) < 1e-9
    half = marginal(z + palette_offsets(z, r, strength=0.5)[:, None, None])
    d0, d1 = (marginal(z) - target).abs().sum(), (full - target).abs().sum()
    assert d1 < (half - target).abs().sum() < d0


def test_each_pixel_keeps_its_own_choices():
    """Pixels torn between blue and yellow take the reference's blue; pixels that only ever
    thought of green stay green: the reference moves mass between what each pixel allows."""
    blue, yellow, green = _nearest((10, -50)), _nearest((0, 60)), _nearest((-40, 30))
    z = torch.full((313, 8, 8), -30.0)
    z[blue, :4], z[yellow, :4] = 0.0, 0.0  # top half: blue or yellow, evenly
    z[green, 4:] = 0.0  # bottom half: green only
    ref = torch.zeros(313)
    ref[blue] = 1.0
    before = color.annealed_mean(z[None], CENTERS, 1.0)[0]
    shifted = z + palette_offsets(z, ref, strength=1.0)[:, None, None]
    after = color.annealed_mean(shifted[None], CENTERS, 1.0)[0]
    assert float((after[:, :4] - CENTERS[blue][:, None, None]).norm(dim=0).max()) < 2.0
    assert float((before[:, :4] - CENTERS[blue][:, None, None]).norm(dim=0).min()) > 20.0
    assert float((after[:, 4:] - CENTERS[green][:, None, None]).norm(dim=0).max()) < 2.0


def test_the_shift_is_in_the_decoded_space():
    """palette_shift works on raw logits: decoded at the temperature with the prior correction,
    its marginal is the one palette_offsets aims at."""
    torch.manual_seed(1)
    raw, log_prior, T = torch.randn(313, 12, 12) * 2, torch.randn(313), 0.38
    ref = torch.rand(313)
    shifted = palette_shift(raw, ref, T, log_prior, 0.5, strength=1.0)
    z = (shifted - 0.5 * log_prior.view(-1, 1, 1)) / T
    assert float((marginal(z) - ((1 - 1e-3) * ref / ref.sum() + 1e-3 / 313)).abs().max()) < 1e-3


def test_bad_inputs():
    with pytest.raises(HintError, match="distribution over the 313"):
        palette_shift(torch.zeros(2, 4, 4), torch.ones(313), 0.38)
    with pytest.raises(ValueError, match="no mass"):
        palette_offsets(torch.zeros(313, 2, 2), torch.zeros(313))
    with pytest.raises(ValueError, match="strength"):
        palette_offsets(torch.zeros(313, 2, 2), torch.ones(313), strength=1.5)
