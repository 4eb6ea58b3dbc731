"""Colour module: values against scikit-image, round trips, shapes, bins, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import color as skcolor

from tinct import color


@pytest.fixture
def rgb_np():
    rng = np.random.default_rng(1)
    return rng.random((2, 5, 7, 3)).astype(np.float32)


def test_numpy_matches_skimage(rgb_np):
    np.testing.assert_allclose(color.rgb_to_lab(rgb_np), skcolor.rgb2lab(rgb_np), atol=1e-3)


def test_torch_matches_skimage(rgb_np):
    t = torch.from_numpy(rgb_np).permute(0, 3, 1, 2)
    lab = color.rgb_to_lab(t).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(lab, skcolor.rgb2lab(rgb_np), atol=2e-2)


def test_known_values():
    # white, black and pure red in CIELAB D65 (reference values as scikit-image gives them)
    rgb = np.array([[[1, 1, 1], [0, 0, 0], [1, 0, 0]]], np.float32)
    lab = color.rgb_to_lab(rgb)[0]
    np.testing.assert_allclose(lab[0], [100, 0, 0], atol=1e-2)
    np.testing.assert_allclose(lab[1], [0, 0, 0], atol=1e-2)
    np.testing.assert_allclose(lab[2], [53.24, 80.09, 67.20], atol=1e-2)


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


def test_bins_313_zhang():
    b = color.bins_313()
    assert b.shape == (313, 2)
    assert np.all(b % 10 == 0)
    np.testing.assert_array_equal(b.min(0), [-90, -110])
    np.testing.assert_array_equal(b.max(0), [100, 100])
    assert len(np.unique(b, axis=0)) == 313


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


def test_annealed_mean_limits():
    centers = torch.from_numpy(color.bins_313())
    logits = torch.randn(1, 313, 2, 2)
    p = torch.softmax(logits, 1)
    mean = torch.einsum("bqhw,qc->bchw", p, centers)
    assert torch.allclose(color.annealed_mean(logits, centers, 1.0), mean, atol=1e-4)
    mode = centers[logits.argmax(1)].permute(0, 3, 1, 2)
    assert torch.allclose(color.annealed_mean(logits, centers, 1e-4), mode, atol=1e-3)
    # decoding a soft-encoded target at low temperature recovers the colour to within a bin
    ab = torch.tensor([31.0, -12.0]).view(1, 2, 1, 1)
    z = color.soft_encode(ab, centers)
    rec = color.annealed_mean(torch.log(z + 1e-12), centers, 1.0)
    assert (rec - ab).abs().max() < 5
    with pytest.raises(ValueError):
        color.annealed_mean(logits, centers, 0.0)


def test_rebalance_weights():
    prior = np.array([100.0, 10.0, 1.0, 0.0])
    w = color.rebalance_weights(prior, lam=0.5, sigma=0)
    p = prior / prior.sum()
    assert np.isclose((p * w).sum(), 1.0)
    assert w[0] < w[1] < w[2] <= w[3]  # rarer bins weigh more
    assert np.allclose(color.rebalance_weights(prior, lam=1.0, sigma=0), 1.0)  # lambda 1: uniform
