"""tinct.metrics: known values, hand computations, references, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tinct import metrics

RED, GREEN, BLUE = (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)


@pytest.fixture
def photo() -> np.ndarray:
    """A smooth colourful 32x40 image, float32 in [0, 1]."""
    y, x = np.mgrid[0:32, 0:40] / np.array([31.0, 39.0])[:, None, None]
    return np.stack([x, y, 0.5 + 0.4 * np.sin(6 * x * y)], -1).astype(np.float32)


def _solid(rgb, h=12, w=12) -> np.ndarray:
    return np.broadcast_to(np.asarray(rgb, dtype=np.float32), (h, w, 3)).copy()


# ----------------------------------------------------------------- identical images
def test_identical_images_give_perfect_scores(photo):
    assert metrics.psnr(photo, photo) == math.inf
    assert metrics.ssim(photo, photo) == pytest.approx(1.0)
    assert metrics.auc_ab(photo, photo) == 1.0
    assert metrics.ciede2000(photo, photo) == 0.0
    assert metrics.histogram_intersection(photo, photo) == pytest.approx(1.0)
    assert abs(metrics.colourfulness(photo) - metrics.colourfulness(photo)) == 0.0


def test_different_images_score_worse(photo):
    noisy = np.clip(photo + np.random.default_rng(0).normal(0, 0.05, photo.shape), 0, 1).astype(np.float32)
    assert 15 < metrics.psnr(noisy, photo) < 40
    assert metrics.ssim(noisy, photo) < 1
    assert metrics.auc_ab(noisy, photo) < 1
    assert metrics.ciede2000(noisy, photo) > 0


# ----------------------------------------------------------------- PSNR against its definition
def test_psnr_matches_mse_definition(photo):
    target = photo * 0.5  # in [0, 0.5], so +0.1 stays in range: MSE = 0.01 exactly
    assert metrics.psnr(target + 0.1, target) == pytest.approx(20.0, abs=1e-4)  # 10 log10(1 / 0.01)


# ----------------------------------------------------------------- AUC
def test_auc_hand_computation_on_errors():
    # Errors 0, 10, 75.5, 200: fraction <= t is 1/4 for t < 10, 2/4 for 10 <= t <= 75,
    # 3/4 for t >= 76. Trapezoids over t = 0..150: 9 x 0.25 + (0.25 + 0.5) / 2 + 65 x 0.5
    # + (0.5 + 0.75) / 2 + 74 x 0.75 = 91.25, normalised by 150.
    assert metrics.auc_from_errors(np.array([0.0, 10.0, 200.0, 75.5])) == pytest.approx(91.25 / 150)


def test_auc_extremes():
    assert metrics.auc_from_errors(np.zeros(5)) == 1.0
    assert metrics.auc_from_errors(np.full(5, 151.0)) == 0.0
    assert metrics.auc_from_errors(np.full(4, 150.0)) == pytest.approx(0.5 / 150)  # only the last point counts, half


def test_auc_ab_on_a_synthetic_rgb_case():
    # Half the pixels exact, half red where the truth is green: ab distance ~166 > 150,
    # so the curve is 0.5 at every threshold and the AUC is 0.5.
    truth = _solid(GREEN, 8, 8)
    pred = truth.copy()
    pred[:, :4] = RED
    assert metrics.auc_ab(pred, truth) == pytest.approx(0.5)


def test_ab_errors_match_skimage():
    from skimage.color import rgb2lab

    a, b = _solid((0.2, 0.5, 0.7), 4, 4), _solid((0.6, 0.3, 0.1), 4, 4)
    ref = np.linalg.norm(rgb2lab(a)[..., 1:] - rgb2lab(b)[..., 1:], axis=-1)
    np.testing.assert_allclose(metrics.ab_errors(a, b), ref, rtol=1e-4)


# ----------------------------------------------------------------- colourfulness
def test_colourfulness_of_grey_is_zero():
    g = np.random.default_rng(1).random((10, 10, 1)).astype(np.float32)
    assert metrics.colourfulness(np.repeat(g, 3, -1)) == 0.0


def test_colourfulness_hand_computation():
    # One red and one blue pixel on 0..255: rg = [255, 0], yb = [127.5, -255];
    # mean_rg = 127.5, sd_rg = 127.5, mean_yb = -63.75, sd_yb = 191.25.
    img = np.array([[RED, BLUE]], dtype=np.float32)
    expected = math.sqrt(127.5**2 + 191.25**2) + 0.3 * math.sqrt(127.5**2 + 63.75**2)
    assert metrics.colourfulness(img) == pytest.approx(expected)  # ~272.62
    # A uniform red image: no spread, rg = 255, yb = 127.5.
    assert metrics.colourfulness(_solid(RED)) == pytest.approx(0.3 * math.hypot(255, 127.5))


# ----------------------------------------------------------------- histograms
def test_ab_histogram_is_normalised():
    h = metrics.ab_histogram(_solid(RED))
    assert h.shape == (22, 22) and h.sum() == pytest.approx(1.0) and h.max() == 1.0


def test_histogram_intersection_of_disjoint_colours_is_zero():
    assert metrics.histogram_intersection(_solid(RED), _solid(GREEN)) == 0.0
    half = _solid(GREEN)
    half[:6] = RED
    assert metrics.histogram_intersection(half, _solid(RED)) == pytest.approx(0.5)


# ----------------------------------------------------------------- Frechet
def test_frechet_distance_known_values():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(50, 3))
    shift = np.array([1.0, -2.0, 0.5])
    assert metrics.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    # Same covariance, shifted mean: the distance is |shift|^2.
    assert metrics.frechet_distance(a, a + shift) == pytest.approx(float(shift @ shift), rel=1e-6)


def test_frechet_distance_with_fewer_samples_than_dims_is_finite():
    rng = np.random.default_rng(0)
    d = metrics.frechet_distance(rng.normal(size=(5, 64)), rng.normal(size=(5, 64)))
    assert math.isfinite(d) and d > 0


def test_frechet_distance_in_the_span_matches_the_full_space_formula():
    import warnings

    from scipy import linalg

    rng = np.random.default_rng(1)
    a, b = rng.random((6, 32)), rng.random((7, 32)) * 1.3 + 0.1  # N + M <= D: the reduced path
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        covmean = np.real(linalg.sqrtm(s_a @ s_b))
    ref = ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(s_a + s_b - 2 * covmean)
    assert metrics.frechet_distance(a, b) == pytest.approx(ref, rel=1e-6)


def test_frechet_distance_rejects_bad_input():
    with pytest.raises(ValueError):
        metrics.frechet_distance(np.zeros((1, 4)), np.zeros((3, 4)))
    with pytest.raises(ValueError):
        metrics.frechet_distance(np.zeros((3, 4)), np.zeros((3, 5)))


# ----------------------------------------------------------------- semantics
def test_efficientnet_probe_shapes_and_determinism(photo):
    probe = metrics.EfficientNetProbe()
    big = np.repeat(np.repeat(photo, 8, 0), 8, 1)  # 256x320: resized down, centre-cropped
    labels, feats = probe([photo, big, photo])
    assert labels.shape == (3,) and feats.shape == (3, 1280)
    assert labels.dtype.kind == "i" and ((0 <= labels) & (labels < 1000)).all()
    assert labels[0] == labels[2]
    np.testing.assert_array_equal(feats[0], feats[2])
    labels2, feats2 = probe([photo, big, photo])
    np.testing.assert_array_equal(labels, labels2)
    np.testing.assert_array_equal(feats, feats2)


def test_probe_top1_in_chunks_matches_one_batch(photo):
    probe = metrics.EfficientNetProbe()
    rng = np.random.default_rng(3)
    images = [photo, photo[::-1], rng.random((40, 56, 3)), photo[:, ::-1], rng.random((64, 64, 3))]
    np.testing.assert_array_equal(probe.top1(images, batch_size=2), probe(images)[0])
    with pytest.raises(ValueError):
        probe.top1([])


def test_probe_confidence_is_the_softmax_of_its_label(photo):
    probe = metrics.EfficientNetProbe()
    images = [photo, photo[::-1], np.full((48, 48, 3), 0.5)]
    labels, conf, feats = probe.classify(images)
    with torch.no_grad():
        probs = torch.softmax(probe.net._fc(torch.from_numpy(feats).float()), 1).numpy()
    np.testing.assert_array_equal(labels, probs.argmax(1))
    np.testing.assert_allclose(conf, probs.max(1), rtol=1e-5)
    assert ((0 < conf) & (conf <= 1)).all()
    np.testing.assert_array_equal(probe(images)[0], labels)


def test_probe_preprocess_range_and_size(photo):
    x = metrics.EfficientNetProbe.preprocess(photo)
    assert tuple(x.shape) == (3, 224, 224)
    assert -1.0 <= float(x.min()) and float(x.max()) <= 1.0


# ----------------------------------------------------------------- validation
@pytest.mark.parametrize("fn", [metrics.psnr, metrics.ssim, metrics.auc_ab, metrics.ciede2000,
                                metrics.histogram_intersection])
def test_pair_metrics_reject_bad_input(fn, photo):
    with pytest.raises(ValueError):
        fn(photo, photo[:-1])
    with pytest.raises(ValueError):
        fn(photo[..., :2], photo[..., :2])
    with pytest.raises(TypeError):
        fn((photo * 255).astype(np.uint8), (photo * 255).astype(np.uint8))


def test_ssim_rejects_tiny_images():
    with pytest.raises(ValueError, match="11x11"):
        metrics.ssim(_solid(RED, 8, 8), _solid(RED, 8, 8))


def test_colourfulness_rejects_bad_input():
    with pytest.raises(ValueError):
        metrics.colourfulness(np.zeros((4, 4), dtype=np.float32))
