"""Colour module: published reference values, the torch path against scikit-image, round
trips, gradients, shapes, bins against Zhang et al.'s published table, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage import color as skcolor

from tinct import color


@pytest.fixture
def rgb_np():
    rng = np.random.default_rng(1)
    return rng.random((2, 5, 7, 3)).astype(np.float32)


# sRGB colours in CIELAB (D65, 2 degree observer) as published to two decimals (e.g. Bruce
# Lindbloom's calculator and the usual colour-science tables), not as any library computes
# them. Mid grey 0.5 is by hand: linear Y = ((0.5 + 0.055) / 1.055)^2.4 = 0.21404, so
# L = 116 Y^(1/3) - 16 = 53.39, and a grey has a = b = 0.
REFERENCE_LAB = {
    (1.0, 1.0, 1.0): (100.0, 0.0, 0.0),
    (0.0, 0.0, 0.0): (0.0, 0.0, 0.0),
    (1.0, 0.0, 0.0): (53.24, 80.09, 67.20),
    (0.0, 1.0, 0.0): (87.73, -86.18, 83.18),
    (0.0, 0.0, 1.0): (32.30, 79.19, -107.86),
    (1.0, 1.0, 0.0): (97.14, -21.55, 94.48),
    (0.0, 1.0, 1.0): (91.11, -48.09, -14.13),
    (1.0, 0.0, 1.0): (60.32, 98.23, -60.82),
    (0.5, 0.5, 0.5): (53.39, 0.0, 0.0),
}
REF_RGB = np.array([list(REFERENCE_LAB)], np.float64)  # (1, 9, 3): one row of pixels
REF_LAB = np.array([list(REFERENCE_LAB.values())], np.float64)
KINDS = ["numpy", "torch32", "torch64"]


def _through(fn, image: np.ndarray, kind: str) -> np.ndarray:
    """``fn`` (a ``tinct.color`` conversion) of an ``(H, W, 3)`` image by the numpy or the
    torch path (``(3, H, W)``, float32 or float64), back as float64 ``(H, W, 3)``."""
    if kind == "numpy":
        return fn(image.astype(np.float32)).astype(np.float64)
    t = torch.from_numpy(image).permute(2, 0, 1).to(torch.float32 if kind == "torch32" else torch.float64)
    return fn(t).permute(1, 2, 0).double().numpy()


@pytest.mark.parametrize("kind", KINDS)
def test_rgb_to_lab_gives_published_values(kind):
    # 0.02: the table's rounding (0.005) plus the spread of published white points (~0.005).
    np.testing.assert_allclose(_through(color.rgb_to_lab, REF_RGB, kind), REF_LAB, atol=0.02)


@pytest.mark.parametrize("kind", KINDS)
def test_lab_to_rgb_of_published_values_gives_the_colours(kind):
    np.testing.assert_allclose(_through(color.lab_to_rgb, REF_LAB, kind), REF_RGB, atol=1e-3)


@pytest.mark.parametrize("dtype,atol", [(torch.float32, 1e-3), (torch.float64, 1e-9)])
def test_torch_path_matches_skimage(rgb_np, dtype, atol):
    # kornia (the torch path) against scikit-image (the numpy path): two implementations.
    x = rgb_np.astype(np.float64)
    lab = color.rgb_to_lab(torch.from_numpy(x).permute(0, 3, 1, 2).to(dtype)).permute(0, 2, 3, 1).double().numpy()
    np.testing.assert_allclose(lab, skcolor.rgb2lab(x), atol=atol)
    ref_lab = skcolor.rgb2lab(x)
    back = color.lab_to_rgb(torch.from_numpy(ref_lab).permute(0, 3, 1, 2).to(dtype)).permute(0, 2, 3, 1).double().numpy()
    np.testing.assert_allclose(back, skcolor.lab2rgb(ref_lab), atol=atol)


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_round_trip(rgb_np, kind):
    if kind == "numpy":
        back = color.lab_to_rgb(color.rgb_to_lab(rgb_np))
    else:
        t = torch.from_numpy(rgb_np).permute(0, 3, 1, 2)
        back = color.lab_to_rgb(color.rgb_to_lab(t)).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(back, rgb_np, atol=2e-3)


def test_shapes_preserved():
    t = torch.rand(4, 3, 8, 9)
    assert color.rgb_to_lab(t).shape == (4, 3, 8, 9)
    assert color.rgb_to_lab(np.random.rand(8, 9, 3).astype(np.float32)).shape == (8, 9, 3)


def test_lab_to_rgb_clips_out_of_gamut():
    lab = torch.tensor([50.0, 120.0, -120.0]).view(1, 3, 1, 1)
    rgb = color.lab_to_rgb(lab)
    assert rgb.min() >= 0 and rgb.max() <= 1


@pytest.mark.parametrize("bad", [np.zeros((4, 4)), np.zeros((4, 4, 4), np.float32)])
def test_bad_numpy_shape(bad):
    with pytest.raises(ValueError, match="shape"):
        color.rgb_to_lab(bad)


def test_bad_numpy_dtype():
    with pytest.raises(TypeError, match="float"):
        color.rgb_to_lab(np.zeros((4, 4, 3), np.uint8))


def test_bad_torch_shape():
    with pytest.raises(ValueError, match=r"\(\*, 3, H, W\)"):
        color.rgb_to_lab(torch.zeros(1, 4, 5, 5))


def test_normalisation_round_trip():
    L = torch.tensor([0.0, 50.0, 100.0])
    assert torch.allclose(color.normalize_l(L), torch.tensor([-1.0, 0.0, 1.0]))
    assert torch.allclose(color.denormalize_l(color.normalize_l(L)), L)
    ab = torch.tensor([-110.0, 55.0])
    assert torch.allclose(color.denormalize_ab(color.normalize_ab(ab)), ab)


# Zhang et al.'s published resources/pts_in_hull.npy (ECCV 2016, richzhang/colorization):
# 313 ab bins on a grid of 10, listed by a, then b. Each a column is one unbroken run of b,
# so the table is written as a -> (lowest b, highest b); it adds up to 313 rows.
PTS_IN_HULL_COLUMNS = {
    -90: (50, 90), -80: (20, 90), -70: (0, 90), -60: (-20, 90), -50: (-30, 100), -40: (-40, 100),
    -30: (-50, 100), -20: (-50, 100), -10: (-60, 100), 0: (-70, 100), 10: (-80, 90), 20: (-80, 90),
    30: (-90, 90), 40: (-100, 90), 50: (-100, 80), 60: (-110, 80), 70: (-110, 80), 80: (-110, 70),
    90: (-110, 70), 100: (-90, 0),
}


def test_bins_313_are_the_published_pts_in_hull():
    published = np.array([(a, b) for a, (lo, hi) in sorted(PTS_IN_HULL_COLUMNS.items()) for b in range(lo, hi + 1, 10)])
    assert published.shape == (313, 2)
    np.testing.assert_array_equal(color.bins_313(), published)  # the same bins, in the same order


def test_every_srgb_colour_near_a_313_bin():
    rng = np.random.default_rng(0)
    ab = color.rgb_to_lab(rng.random((1, 5000, 3)).astype(np.float32))[0, :, 1:]
    d = np.sqrt(((ab[:, None] - color.bins_313()[None]) ** 2).sum(-1)).min(1)
    assert d.max() <= 5 * np.sqrt(2) + 1e-3  # within half a grid cell diagonal


def test_bins_16x16_and_quantize():
    c = color.bins_16x16()
    assert c.shape == (256, 2)
    ab = torch.from_numpy(c).T.reshape(1, 2, 16, 16)
    idx = color.quantize_16x16(ab)
    assert torch.equal(idx.flatten(), torch.arange(256))
    assert color.quantize_16x16(torch.full((1, 2, 1, 1), 500.0)).item() == 255


def test_bin_centers_unknown():
    with pytest.raises(ValueError, match="unknown ab bin set"):
        color.bin_centers("12x12")


def test_soft_encode_is_distribution_peaked_at_nearest():
    centers = torch.from_numpy(color.bins_313())
    ab = torch.tensor([[20.0, -30.0], [0.0, 0.0], [-43.0, 61.0]]).T.reshape(1, 2, 1, 3)
    z = color.soft_encode(ab, centers)
    assert z.shape == (1, 313, 1, 3)
    assert torch.allclose(z.sum(1), torch.ones(1, 1, 3))
    assert ((z > 0).sum(1) == 5).all()
    assert torch.equal(z.argmax(1), color.nearest_bin(ab, centers))


def test_soft_encode_hand_computed_weights():
    # (20, -30) is a bin centre whose four grid neighbours are bins too: its five nearest
    # centres are itself (d = 0) and those four (d = 10). With sigma 5 the Gaussian weights
    # are 1 and exp(-100 / 50) = e^-2, normalised by 1 + 4 e^-2.
    centers = torch.from_numpy(color.bins_313()).double()
    z = color.soft_encode(torch.tensor([20.0, -30.0], dtype=torch.float64).view(1, 2, 1, 1), centers)[0, :, 0, 0]
    expected = {(20, -30): 1.0, (10, -30): math.exp(-2), (30, -30): math.exp(-2), (20, -40): math.exp(-2),
                (20, -20): math.exp(-2)}
    total = sum(expected.values())
    got = {tuple(centers[q].int().tolist()): float(z[q]) for q in torch.nonzero(z).flatten()}
    assert got.keys() == expected.keys()
    for key, weight in expected.items():
        assert got[key] == pytest.approx(weight / total, rel=1e-9)  # 0.6488 and 0.0878


def test_annealed_mean_hand_computed():
    # Three bins with probabilities 0.5, 0.3, 0.2: at T = 1 the mean is
    # 0.5 (0, 0) + 0.3 (10, 0) + 0.2 (0, 20) = (3, 4). At T = 0.5 the probabilities are
    # squared and renormalised, (0.25, 0.09, 0.04) / 0.38: the mean is (0.9, 0.8) / 0.38.
    centers = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 20.0]], dtype=torch.float64)
    logits = torch.log(torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)).view(1, 3, 1, 1) + 7.0  # any offset
    mean = color.annealed_mean(logits, centers, 1.0)
    assert mean.shape == (1, 2, 1, 1)
    np.testing.assert_allclose(mean.flatten().numpy(), [3.0, 4.0], rtol=1e-12)
    np.testing.assert_allclose(color.annealed_mean(logits, centers, 0.5).flatten().numpy(),
                               [0.9 / 0.38, 0.8 / 0.38], rtol=1e-12)


def test_annealed_mean_limits():
    centers = torch.from_numpy(color.bins_313()).double()
    # Equal logits: the plain average of the 313 centres, whatever the temperature.
    flat = color.annealed_mean(torch.zeros(1, 313, 1, 1, dtype=torch.float64), centers, 0.38)
    np.testing.assert_allclose(flat.flatten().numpy(), color.bins_313().astype(np.float64).mean(0), atol=1e-9)
    # T -> 0: the mode, the centre of the largest logit.
    logits = torch.randn(1, 313, 2, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    mode = centers[logits.argmax(1)].permute(0, 3, 1, 2)
    assert torch.allclose(color.annealed_mean(logits, centers, 1e-4), mode, atol=1e-3)
    # decoding a soft-encoded target at T = 1 recovers the colour to within a bin
    ab = torch.tensor([31.0, -12.0], dtype=torch.float64).view(1, 2, 1, 1)
    z = color.soft_encode(ab, centers)
    rec = color.annealed_mean(torch.log(z + 1e-12), centers, 1.0)
    assert (rec - ab).abs().max() < 5
    with pytest.raises(ValueError):
        color.annealed_mean(logits, centers, 0.0)


# ----------------------------------------------------------------- gradients
# Double precision, inputs away from the kinks (the [0, 1] clamp and clip, sRGB's linear toe
# below 0.04045, CIELAB's cube-root threshold, ties between nearest bins).
def _rgb_inside(shape=(1, 3, 2, 3)) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return (0.2 + 0.6 * torch.rand(shape, generator=g, dtype=torch.float64)).requires_grad_()


def test_rgb_to_lab_gradcheck():
    assert torch.autograd.gradcheck(color.rgb_to_lab, (_rgb_inside(),))


def test_lab_to_rgb_gradcheck():
    lab = color.rgb_to_lab(_rgb_inside()).detach().requires_grad_()  # in gamut: the clip is inactive
    assert torch.autograd.gradcheck(color.lab_to_rgb, (lab,))


def test_annealed_mean_gradcheck():
    centers = torch.from_numpy(color.bins_313()).double()
    logits = torch.randn(1, 313, 1, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: color.annealed_mean(x, centers, 0.38), (logits.requires_grad_(),),
                                    fast_mode=True)


def test_soft_encode_gradcheck():
    centers = torch.from_numpy(color.bins_313()).double()
    ab = torch.tensor([[23.3, -31.7], [-41.2, 57.9], [4.1, 2.6]], dtype=torch.float64).T.reshape(1, 2, 1, 3)
    assert torch.autograd.gradcheck(lambda x: color.soft_encode(x, centers), (ab.requires_grad_(),), fast_mode=True)


@pytest.mark.parametrize("fn", [color.normalize_l, color.denormalize_l, color.normalize_ab, color.denormalize_ab])
def test_normalisation_gradcheck(fn):
    x = torch.tensor([0.0, 17.5, 50.0, 100.0], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(fn, (x,))


def test_rebalance_weights():
    prior = np.array([100.0, 10.0, 1.0, 0.0])
    w = color.rebalance_weights(prior, lam=0.5, sigma=0)
    p = prior / prior.sum()
    assert np.isclose((p * w).sum(), 1.0)
    assert w[0] < w[1] < w[2] <= w[3]  # rarer bins weigh more
    assert np.allclose(color.rebalance_weights(prior, lam=1.0, sigma=0), 1.0)  # lambda 1: uniform
