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


def test_psnr_of_one_wrong_value():
    # One channel of one pixel of a 16x16 image off by the full range: MSE = 1 / 768,
    # PSNR = 10 log10(768) = 28.854 dB (peak 1).
    target = _solid((0.0, 0.0, 0.0), 16, 16)
    pred = target.copy()
    pred[3, 5, 1] = 1.0
    assert metrics.psnr(pred, target) == pytest.approx(10 * math.log10(768), abs=1e-9)


# ----------------------------------------------------------------- SSIM on constant images
@pytest.mark.parametrize("a,b", [(0.2, 0.6), (0.5, 0.5), (0.9, 0.05)])
def test_ssim_of_constant_images(a, b):
    # No variance, so only Wang et al.'s luminance term is left in every window:
    # SSIM = (2 a b + C1) / (a^2 + b^2 + C1), C1 = (K1 L)^2 = (0.01 x 1)^2. For 0.2 vs 0.6:
    # 0.2401 / 0.4001 = 0.60010.
    c1 = 0.01**2
    a, b = float(np.float32(a)), float(np.float32(b))  # the images' values, exactly
    expected = (2 * a * b + c1) / (a * a + b * b + c1)
    assert metrics.ssim(_solid((a,) * 3, 16, 16), _solid((b,) * 3, 16, 16)) == pytest.approx(expected, abs=1e-9)


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


def test_ab_errors_of_published_primaries():
    # Published CIELAB (D65) ab of sRGB red (80.09, 67.20), green (-86.18, 83.18), blue
    # (79.19, -107.86); white and black have a = b = 0. Lightness must not count.
    pred = np.array([[RED, RED, BLUE, (1.0, 1.0, 1.0)]], np.float32)
    truth = np.array([[GREEN, BLUE, (0.0, 0.0, 0.0), (0.0, 0.0, 0.0)]], np.float32)
    expected = [math.hypot(80.09 + 86.18, 67.20 - 83.18),  # 167.04
                math.hypot(80.09 - 79.19, 67.20 + 107.86),  # 175.06
                math.hypot(79.19, -107.86),  # 133.81, blue's chroma
                0.0]
    np.testing.assert_allclose(metrics.ab_errors(pred, truth)[0], expected, atol=0.03)


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


def test_colourfulness_of_red_and_green_halves():
    # Half red, half green: rg = +-255 (mean 0, sd 255), yb = 127.5 everywhere (sd 0), so
    # CF = 255 + 0.3 x 127.5 = 293.25. Population sd: a sample sd (ddof 1) would give more.
    img = _solid(RED, 4, 6)
    img[:, 3:] = GREEN
    assert metrics.colourfulness(img) == pytest.approx(293.25, abs=1e-9)
    # Half the intensity: every term is linear in RGB, so CF halves.
    assert metrics.colourfulness(img * 0.5) == pytest.approx(293.25 / 2, abs=1e-9)


# ----------------------------------------------------------------- CIEDE2000
# Sharma, Wu & Dalal (2005), "The CIEDE2000 color-difference formula: implementation notes,
# supplementary test data, and mathematical observations", Table 1: pair number, Lab 1,
# Lab 2, published Delta E00 (four decimals). These rows include the hue-angle and mean-hue
# discontinuities (7-16) the paper was written about.
SHARMA_PAIRS = [
    (1, (50.0, 2.6772, -79.7751), (50.0, 0.0, -82.7485), 2.0425),
    (4, (50.0, -1.3802, -84.2814), (50.0, 0.0, -82.7485), 1.0000),
    (7, (50.0, 0.0, 0.0), (50.0, -1.0, 2.0), 2.3669),
    (9, (50.0, 2.4900, -0.0010), (50.0, -2.4900, 0.0009), 7.1792),
    (11, (50.0, 2.4900, -0.0010), (50.0, -2.4900, 0.0011), 7.2195),
    (13, (50.0, -0.0010, 2.4900), (50.0, 0.0009, -2.4900), 4.8045),
    (15, (50.0, -0.0010, 2.4900), (50.0, 0.0011, -2.4900), 4.7461),
    (17, (50.0, 2.5, 0.0), (73.0, 25.0, -18.0), 27.1492),
    (19, (50.0, 2.5, 0.0), (56.0, -27.0, -3.0), 31.9030),
    (25, (60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
    (31, (90.8027, -2.0831, 1.4410), (91.1528, -1.6435, 0.0447), 1.4441),
    (34, (2.0776, 0.0795, -1.1350), (0.9033, -0.0636, -0.5514), 0.9082),
]


def test_ciede2000_on_sharma_test_pairs(monkeypatch):
    # The pairs are Lab, not sRGB (most are outside the gamut): feed them as they are by
    # making the RGB -> Lab step the identity, and check each pair and their mean.
    monkeypatch.setattr(metrics.color, "rgb_to_lab", lambda x: np.asarray(x))
    lab1 = np.array([[p[1] for p in SHARMA_PAIRS]])
    lab2 = np.array([[p[2] for p in SHARMA_PAIRS]])
    published = np.array([p[3] for p in SHARMA_PAIRS])
    for k, (number, _, _, de) in enumerate(SHARMA_PAIRS):
        assert metrics.ciede2000(lab1[:, k:k + 1], lab2[:, k:k + 1]) == pytest.approx(de, abs=1e-4), number
        assert metrics.ciede2000(lab2[:, k:k + 1], lab1[:, k:k + 1]) == pytest.approx(de, abs=1e-4), number
    assert metrics.ciede2000(lab1, lab2) == pytest.approx(published.mean(), abs=1e-4)


def test_ciede2000_of_white_and_black():
    # L 100 vs 0 at a = b = 0: Delta L' = 100, and S_L = 1 at the mean lightness 50, so
    # Delta E00 = 100 (white's published a, b are 0 to within 0.005).
    assert metrics.ciede2000(_solid((1.0, 1.0, 1.0)), _solid((0.0, 0.0, 0.0))) == pytest.approx(100.0, abs=0.01)


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


@pytest.mark.parametrize("n,d", [(50, 3), (5, 64)])  # the full-space and the reduced (N + M <= D) paths
def test_frechet_distance_of_a_scaled_set(n, d):
    # b = 2 a + shift: S_b = 4 S_a and (S_a S_b)^(1/2) = 2 S_a, so the trace term is
    # tr(S_a + 4 S_a - 4 S_a) = tr(S_a), the sum of a's per-dimension sample variances.
    a = np.random.default_rng(2).normal(size=(n, d))
    shift = np.linspace(-1, 1, d)
    mu_b = 2 * a.mean(0) + shift
    expected = float(((a.mean(0) - mu_b) ** 2).sum() + a.var(0, ddof=1).sum())
    assert metrics.frechet_distance(a, 2 * a + shift) == pytest.approx(expected, rel=1e-6)


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


def test_probe_confidence_with_a_known_classifier(photo):
    # Swap the judge's classifier for one whose answer is known: constant logits, 0 for
    # every class but log(999) for class 7, so p(7) = 999 / (999 + 999 x 1) = 0.5 exactly.
    probe = metrics.EfficientNetProbe()
    images = [photo, photo[::-1], np.full((48, 48, 3), 0.5)]
    fc = torch.nn.Linear(1280, 1000)
    with torch.no_grad():
        fc.weight.zero_()
        fc.bias.zero_()
        fc.bias[7] = math.log(999)
    probe.net._fc = fc
    labels, conf, feats = probe.classify(images)
    np.testing.assert_array_equal(labels, [7, 7, 7])
    np.testing.assert_allclose(conf, 0.5, rtol=1e-6)
    assert feats.shape == (3, 1280)


def test_probe_classifies_the_features_it_returns(photo):
    # A classifier that passes the first 1000 pooled features through as logits: the label is
    # their argmax and the confidence their softmax maximum, 1 / sum(exp(f - max f)), in numpy.
    probe = metrics.EfficientNetProbe()
    images = [photo, photo[::-1], np.full((48, 48, 3), 0.5)]
    fc = torch.nn.Linear(1280, 1000, bias=False)
    with torch.no_grad():
        fc.weight.copy_(torch.eye(1000, 1280))
    probe.net._fc = fc
    labels, conf, feats = probe.classify(images)
    first = feats[:, :1000]
    np.testing.assert_array_equal(labels, first.argmax(1))
    np.testing.assert_allclose(conf, 1.0 / np.exp(first - first.max(1, keepdims=True)).sum(1), rtol=1e-5)
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


# ----------------------------------------------------------------- hue variety and chroma
def _from_ab(ab: np.ndarray, L: float = 60.0) -> np.ndarray:
    """float RGB of pixels with lightness L and the given ab ``(H, W, 2)`` (all in gamut)."""
    from tinct import color

    lab = np.concatenate([np.full(ab.shape[:2] + (1,), L), ab], -1).astype(np.float64)
    return color.lab_to_rgb(lab).astype(np.float64)


def _hues(angles_deg, chroma=20.0, rows=8) -> np.ndarray:
    """Vertical stripes of equal area, one hue angle each, at one chroma."""
    a = np.deg2rad(np.repeat(np.asarray(angles_deg, dtype=np.float64), 6))
    ab = np.stack([chroma * np.cos(a), chroma * np.sin(a)], -1)[None].repeat(rows, 0)
    return _from_ab(ab)


def test_variety_of_one_hue_is_zero():
    assert metrics.variety(_hues([40])) == pytest.approx(0.0, abs=1e-4)
    # one hue at several chromas is still one hue: all ab vectors point the same way
    a = np.deg2rad(40)
    ab = np.stack([np.linspace(5, 30, 24) * np.cos(a), np.linspace(5, 30, 24) * np.sin(a)], -1)[None].repeat(8, 0)
    assert metrics.variety(_from_ab(ab)) == pytest.approx(0.0, abs=1e-4)


def test_variety_of_two_opposite_hues_is_one():
    assert metrics.variety(_hues([30, 210])) == pytest.approx(1.0, abs=1e-4)
    assert metrics.variety(_hues([0, 120, 240])) == pytest.approx(1.0, abs=1e-4)  # three hues cancelling


def test_variety_of_hues_a_quarter_turn_apart():
    # two unit vectors 90 degrees apart: |mean| = sqrt(2) / 2, so variety = 1 - 0.7071
    assert metrics.variety(_hues([10, 100])) == pytest.approx(1 - math.sqrt(0.5), abs=1e-4)


def test_variety_of_a_neutral_image_is_zero():
    assert metrics.variety(_solid((0.4, 0.4, 0.4))) == 0.0
    assert metrics.variety(np.zeros((12, 12, 3), np.float32)) == 0.0


def test_chroma_is_the_mean_ab_length():
    assert metrics.chroma(_hues([30, 210], chroma=20.0)) == pytest.approx(20.0, abs=1e-3)
    assert metrics.chroma(_solid((0.4, 0.4, 0.4))) < 0.01  # grey: only the D65 white point's rounding


def test_variety_and_chroma_reject_bad_input():
    for fn in (metrics.variety, metrics.chroma):
        with pytest.raises(ValueError):
            fn(np.zeros((4, 4), np.float32))
        with pytest.raises(ValueError):
            fn(np.zeros((4, 4, 3), np.uint8))
