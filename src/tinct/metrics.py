"""Image-quality metrics for colorization: pure functions on sRGB images.

Every per-image metric takes a prediction and a ground truth as numpy float arrays
``(H, W, 3)`` in [0, 1] (sRGB, channels last, the layout of :class:`tinct.io.Photo`) and
returns a float. Colour conversions come from :mod:`tinct.color`; PSNR, SSIM and CIEDE2000
are scikit-image's. The exact definitions and conventions are in ``docs/EVALUATION.md``.

Colour statistics of one image (no truth needed): :func:`colourfulness`, :func:`chroma`
(mean ab length) and :func:`variety` (how many hues share the photo; 0 = one hue laid
over everything).

Set-level metrics (the Frechet distance between EfficientNet-Lite0 features) take
feature matrices; :class:`EfficientNetProbe` computes those features and the top-1
ImageNet labels used for semantic interpretability.

Video flicker (:func:`flicker`, :func:`video_flicker`, used to tune ``tinct video``'s
smoothing) is the mean ab change between consecutive frames after motion compensation,
with the flow computed once from the luminance and shared by every variant compared;
definitions and figures in ``docs/VIDEO.md``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from . import color, flow

AUC_MAX_THRESHOLD = 150  # Zhang et al. 2016: ab error thresholds 0..150
HIST_BIN = color.GRID_313  # ab histogram bins: 10 x 10 Lab units ...
HIST_RANGE = color.AB_RANGE  # ... over [-110, 110]^2 (values outside fall in the edge bins)
PROBE_SIZE = 224  # EfficientNet-Lite0's ImageNet input side
VARIETY_MIN_CHROMA = 0.5  # Lab units: below this mean chroma a photo is neutral and its variety is 0


def _check_pair(pred: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, target = np.asarray(pred), np.asarray(target)
    for name, a in (("pred", pred), ("target", target)):
        if a.ndim != 3 or a.shape[-1] != 3:
            raise ValueError(f"expected {name} as an RGB image of shape (H, W, 3), got {a.shape}")
        if not np.issubdtype(a.dtype, np.floating):
            raise TypeError(f"expected {name} as float RGB in [0, 1], got dtype {a.dtype}")
    if pred.shape != target.shape:
        raise ValueError(f"pred and target differ in shape: {pred.shape} vs {target.shape}")
    return pred.astype(np.float64), target.astype(np.float64)


# ----------------------------------------------------------------- fidelity
def psnr(pred: np.ndarray, target: np.ndarray) -> float:
    """Peak signal-to-noise ratio on RGB, peak 1.0 (skimage).

    Args:
        pred, target: float ``(H, W, 3)`` in [0, 1].

    Returns:
        PSNR in dB; ``inf`` when the images are identical (MSE 0). Summaries cap it (see
        :data:`tinct.evaluate.PSNR_CAP`); this function never does.
    """
    from skimage.metrics import peak_signal_noise_ratio

    pred, target = _check_pair(pred, target)
    with np.errstate(divide="ignore"):  # MSE 0 -> inf, by definition
        return float(peak_signal_noise_ratio(target, pred, data_range=1.0))


def ssim(pred: np.ndarray, target: np.ndarray) -> float:
    """Structural similarity on RGB, the mean over the three channels (skimage).

    Uses Wang et al.'s settings (Gaussian window sigma 1.5, population covariance,
    data range 1), as scikit-image documents for matching the original implementation.

    Args:
        pred, target: float ``(H, W, 3)`` in [0, 1], both sides at least 11 pixels.

    Returns:
        SSIM in [-1, 1]; 1 for identical images.
    """
    from skimage.metrics import structural_similarity

    pred, target = _check_pair(pred, target)
    if min(pred.shape[:2]) < 11:
        raise ValueError(f"SSIM needs images of at least 11x11 pixels, got {pred.shape[1]}x{pred.shape[0]}")
    return float(structural_similarity(target, pred, data_range=1.0, channel_axis=-1, gaussian_weights=True,
                                       sigma=1.5, use_sample_covariance=False))


def ab_errors(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per-pixel Euclidean distance between the ab channels, ``(H, W)`` in Lab units."""
    pred, target = _check_pair(pred, target)
    d = color.rgb_to_lab(pred)[..., 1:].astype(np.float64) - color.rgb_to_lab(target)[..., 1:]
    return np.sqrt((d**2).sum(-1))


def auc_from_errors(errors: np.ndarray, max_threshold: int = AUC_MAX_THRESHOLD) -> float:
    """Area under the cumulative error curve (Zhang et al. 2016), normalised to [0, 1].

    For each integer threshold t = 0, 1, ..., ``max_threshold`` the curve holds the
    fraction of pixels with error <= t; the area is the trapezoidal rule over those points
    divided by ``max_threshold``, so a perfect prediction (all errors 0) scores 1.

    Args:
        errors: per-pixel errors, any shape, >= 0.
        max_threshold: the last threshold (150 in Zhang et al.).

    Returns:
        AUC in [0, 1].
    """
    e = np.sort(np.asarray(errors, dtype=np.float64).ravel())
    if e.size == 0:
        raise ValueError("auc_from_errors needs at least one error value")
    t = np.arange(max_threshold + 1, dtype=np.float64)
    frac = np.searchsorted(e, t, side="right") / e.size  # fraction of errors <= t
    return float(np.trapezoid(frac, t) / max_threshold)


def auc_ab(pred: np.ndarray, target: np.ndarray) -> float:
    """AUC of the per-pixel ab error curve over thresholds 0..150 (see :func:`auc_from_errors`)."""
    return auc_from_errors(ab_errors(pred, target))


def ciede2000(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean CIEDE2000 colour difference over pixels (skimage ``deltaE_ciede2000``), >= 0."""
    pred, target = _check_pair(pred, target)
    from skimage.color import deltaE_ciede2000

    return float(deltaE_ciede2000(color.rgb_to_lab(target), color.rgb_to_lab(pred)).mean())


def hint_obedience(pred: np.ndarray, L: np.ndarray, xy: np.ndarray, asked: np.ndarray, window: int = 5) -> float:
    """How well colour hints are obeyed: the mean CIEDE2000 between the asked colour and
    the prediction over the ``window`` x ``window`` pixels around each point (cut at the
    photo's edges). The asked colour at a pixel is (L there, the point's a, b): a hint
    gives only chroma, the lightness is the photo's own.

    Args:
        pred: float RGB ``(H, W, 3)`` in [0, 1].
        L: ``(H, W)`` the photo's lightness (the grey input's).
        xy: ``(K, 2)`` int pixel (x, y) of the points.
        asked: ``(K, 2)`` their ab.

    Returns:
        the mean over every window pixel of every point (>= 0); NaN with no points.
    """
    from skimage.color import deltaE_ciede2000

    xy = np.asarray(xy, dtype=int).reshape(-1, 2)
    if len(xy) == 0:
        return float("nan")
    lab = color.rgb_to_lab(np.asarray(pred, dtype=np.float32)).astype(np.float64)
    r = window // 2
    got, want = [], []
    for (x, y), (a, b) in zip(xy, np.asarray(asked, dtype=np.float64).reshape(-1, 2)):
        ys, xs = slice(max(0, y - r), y + r + 1), slice(max(0, x - r), x + r + 1)
        got.append(lab[ys, xs].reshape(-1, 3))
        l_here = np.asarray(L, dtype=np.float64)[ys, xs].reshape(-1)
        want.append(np.stack([l_here, np.full_like(l_here, a), np.full_like(l_here, b)], -1))
    return float(deltaE_ciede2000(np.concatenate(want), np.concatenate(got)).mean())


# ----------------------------------------------------------------- colour statistics
def colourfulness(rgb: np.ndarray) -> float:
    """Hasler & Susstrunk (2003) colourfulness on 0..255 RGB.

    rg = R - G, yb = (R + G) / 2 - B; CF = sqrt(sd_rg^2 + sd_yb^2) + 0.3 sqrt(mean_rg^2 +
    mean_yb^2), with population standard deviations over all pixels.

    Args:
        rgb: float ``(H, W, 3)`` in [0, 1].

    Returns:
        CF >= 0; exactly 0 for a grey image (R = G = B).
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[-1] != 3 or not np.issubdtype(rgb.dtype, np.floating):
        raise ValueError(f"expected a float RGB image of shape (H, W, 3), got {rgb.shape} {rgb.dtype}")
    r, g, b = np.moveaxis(rgb.astype(np.float64) * 255.0, -1, 0)
    rg, yb = r - g, 0.5 * (r + g) - b
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


def _ab_pixels(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[-1] != 3 or not np.issubdtype(rgb.dtype, np.floating):
        raise ValueError(f"expected a float RGB image of shape (H, W, 3), got {rgb.shape} {rgb.dtype}")
    return color.rgb_to_lab(rgb)[..., 1:].reshape(-1, 2).astype(np.float64)  # (N, 2) Lab units


def chroma(rgb: np.ndarray) -> float:
    """Mean chroma ``mean(sqrt(a^2 + b^2))`` over all pixels, Lab units (>= 0; 0 for grey).

    Args:
        rgb: float ``(H, W, 3)`` in [0, 1].
    """
    return float(np.hypot(*_ab_pixels(rgb).T).mean())


def variety(rgb: np.ndarray) -> float:
    """Hue variety inside one photo: ``1 - |mean(ab)| / mean(|ab|)`` over all pixels, in [0, 1].

    0 when every pixel has the same hue (a wash: all ab vectors point one way, whatever
    their lengths); 1 when the ab vectors cancel out (e.g. two opposite hues of equal
    chroma on equal areas). The ratio is undefined for a neutral image, so a photo whose
    mean chroma is below :data:`VARIETY_MIN_CHROMA` (no visible colour, e.g. the ``gray``
    baseline) scores 0: no colour, no variety of hue.

    Args:
        rgb: float ``(H, W, 3)`` in [0, 1].
    """
    ab = _ab_pixels(rgb)
    mean_norm = float(np.hypot(*ab.T).mean())
    if mean_norm < VARIETY_MIN_CHROMA:
        return 0.0
    return float(min(max(1.0 - np.hypot(*ab.mean(0)) / mean_norm, 0.0), 1.0))  # clipped against rounding


def ab_histogram(rgb: np.ndarray) -> np.ndarray:
    """Normalised 2-D histogram of ab: 22 x 22 bins of 10 Lab units over [-110, 110]^2.

    Values beyond the range are counted in the edge bins.

    Returns:
        float64 ``(22, 22)`` summing to 1 (rows: a, columns: b).
    """
    ab = color.rgb_to_lab(np.asarray(rgb))[..., 1:].reshape(-1, 2).astype(np.float64)
    ab = np.clip(ab, -HIST_RANGE, HIST_RANGE)
    edges = np.arange(-HIST_RANGE, HIST_RANGE + HIST_BIN / 2, HIST_BIN)
    h, _, _ = np.histogram2d(ab[:, 0], ab[:, 1], bins=[edges, edges])
    return h / h.sum()


def histogram_intersection(pred: np.ndarray, target: np.ndarray) -> float:
    """Intersection sum(min(h_pred, h_target)) of the two ab histograms, in [0, 1]; 1 = same."""
    pred, target = _check_pair(pred, target)
    return float(np.minimum(ab_histogram(pred), ab_histogram(target)).sum())


# ----------------------------------------------------------------- semantics
class EfficientNetProbe:
    """The offline ImageNet EfficientNet-Lite0, loaded once, as a frozen judge.

    Each image is resized (short side to 224, antialiased bilinear), centre-cropped to
    224x224 and normalised to (rgb - 0.5) / 0.5, as the Lite models were trained.

    Example:
        >>> probe = EfficientNetProbe()  # doctest: +SKIP
        >>> labels, feats = probe([rgb_a, rgb_b])  # (2,), (2, 1280)  # doctest: +SKIP
    """

    feature_dim = 1280

    def __init__(self, device: str = "cpu"):
        from .models.layers import load_efficientnet_lite0

        self.device = torch.device(device)
        self.net = load_efficientnet_lite0(pretrained=True).eval().to(self.device)

    @staticmethod
    def preprocess(rgb: np.ndarray) -> torch.Tensor:
        """float ``(H, W, 3)`` in [0, 1] -> ``(3, 224, 224)`` in [-1, 1]."""
        x = torch.from_numpy(np.ascontiguousarray(rgb, dtype=np.float32)).permute(2, 0, 1)[None]
        h, w = x.shape[-2:]
        s = PROBE_SIZE / min(h, w)
        hh, ww = max(PROBE_SIZE, round(h * s)), max(PROBE_SIZE, round(w * s))
        x = F.interpolate(x, size=(hh, ww), mode="bilinear", align_corners=False, antialias=s < 1)
        top, left = (hh - PROBE_SIZE) // 2, (ww - PROBE_SIZE) // 2
        x = x[..., top:top + PROBE_SIZE, left:left + PROBE_SIZE]
        return (x[0].clamp(0, 1) - 0.5) / 0.5

    @torch.no_grad()
    def classify(self, images: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Top-1 ImageNet class, its softmax probability, and pooled features of a batch.

        Args:
            images: float RGB ``(H, W, 3)`` in [0, 1], any sizes.

        Returns:
            labels: int64 ``(B,)`` ImageNet class indices in [0, 1000).
            confidence: float64 ``(B,)`` the softmax probability of that class (how sure
                the judge is).
            features: float64 ``(B, 1280)``, the global average of the last conv layer
                (the classifier's input).
        """
        if not images:
            raise ValueError("EfficientNetProbe needs at least one image")
        x = torch.stack([self.preprocess(im) for im in images]).to(self.device)
        net = self.net
        feats = net.extract_features(x).mean((2, 3))  # (B, 1280)
        logits = net._fc(feats)  # (B, 1000); dropout is inactive in eval mode
        confidence, labels = F.softmax(logits, 1).max(1)
        return labels.cpu().numpy(), confidence.double().cpu().numpy(), feats.double().cpu().numpy()

    def __call__(self, images: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Top-1 ImageNet class ``(B,)`` and pooled features ``(B, 1280)``: :meth:`classify`
        without the confidence."""
        labels, _, feats = self.classify(images)
        return labels, feats

    def top1(self, images: list[np.ndarray], batch_size: int = 32) -> np.ndarray:
        """Top-1 ImageNet class of each image, ``batch_size`` at a time (bounded memory)."""
        if not len(images):
            raise ValueError("EfficientNetProbe needs at least one image")
        return np.concatenate([self(images[k:k + batch_size])[0] for k in range(0, len(images), batch_size)])


def frechet_distance(feats_a: np.ndarray, feats_b: np.ndarray, eps: float = 1e-6) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (as in FID).

    d = |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2)), with the matrix square root
    from ``scipy.linalg.sqrtm``. When there are fewer samples than dimensions (N + M <= D)
    both covariances live in the span of the centred features, so the traces are computed
    there, in an orthonormal basis of that span (exact, and k x k instead of D x D). If
    the square root is not finite, eps * I is added to both covariances (pytorch-fid's
    fallback). Tiny negative results from rounding are clipped to 0.

    Args:
        feats_a, feats_b: ``(N, D)`` and ``(M, D)`` features, N, M >= 2.

    Returns:
        the distance, >= 0.
    """
    from scipy import linalg

    a, b = np.asarray(feats_a, dtype=np.float64), np.asarray(feats_b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"expected feature matrices (N, D) and (M, D), got {a.shape} and {b.shape}")
    if min(len(a), len(b)) < 2:
        raise ValueError("the Frechet distance needs at least two samples per set")
    mu_a, mu_b = a.mean(0), b.mean(0)
    a_c, b_c = a - mu_a, b - mu_b  # (N, D), (M, D)
    if len(a) + len(b) <= a.shape[1]:
        basis = linalg.orth(np.concatenate([a_c, b_c]).T)  # (D, k), k <= N + M
        if basis.shape[1] == 0:  # both sets are constant
            return float(((mu_a - mu_b) ** 2).sum())
        a_c, b_c = a_c @ basis, b_c @ basis  # (N, k), (M, k)
    s_a, s_b = a_c.T @ a_c / (len(a) - 1), b_c.T @ b_c / (len(b) - 1)
    with warnings.catch_warnings():  # singular products are expected with few samples
        warnings.simplefilter("ignore")
        covmean = linalg.sqrtm(s_a @ s_b)
        if not np.isfinite(covmean).all():
            offset = np.eye(len(s_a)) * eps
            covmean = linalg.sqrtm((s_a + offset) @ (s_b + offset))
    covmean = np.real(covmean)
    d = float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a) + np.trace(s_b) - 2.0 * np.trace(covmean))
    return max(d, 0.0)


# ----------------------------------------------------------------- video flicker
@dataclass
class Motion:
    """Flow from frame t to t-1 at full resolution and the pixels it can be trusted on."""

    flow: np.ndarray  # (H, W, 2)
    valid: np.ndarray  # (H, W) bool: inside, forward-backward consistent, not a shot change


class MotionEstimator:
    """Full-resolution flow between consecutive luminance frames, for the flicker metric.

    DIS (medium preset) both ways; a pixel is valid when its flow stays inside the frame
    and passes the forward-backward check of Sundaram et al. (2010):
    ``|f(x) + b(x + f(x))|^2 < 0.01 (|f|^2 + |b|^2) + 0.5``, which drops occlusions. At a
    shot change no pixel is valid.
    """

    def __init__(self):
        self.dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)

    def __call__(self, L_prev: np.ndarray, L: np.ndarray) -> Motion:
        g, g_prev = flow.grey_u8(L), flow.grey_u8(L_prev)
        fw = flow.optical_flow(g, g_prev, self.dis)  # t -> t-1
        bw = flow.optical_flow(g_prev, g, self.dis)  # t-1 -> t
        bw_at, inside = flow.warp(bw, fw)
        L_warped, _ = flow.warp(L_prev.astype(np.float32), fw)
        if flow.is_shot_change(L, L_warped, inside):
            return Motion(fw, np.zeros_like(inside))
        err = ((fw + bw_at) ** 2).sum(-1)
        consistent = err < 0.01 * ((fw**2).sum(-1) + (bw_at**2).sum(-1)) + 0.5
        return Motion(fw, inside & consistent)


def lab_of(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB ``(H, W, 3)`` -> float32 Lab ``(H, W, 3)``."""
    return color.rgb_to_lab(rgb.astype(np.float32) / 255.0)


def flicker(ab_prev: np.ndarray, ab: np.ndarray, motion: Motion) -> float | None:
    """Mean ab change ``|ab(t) - warp(ab(t-1))|`` (Euclidean, Lab units) over the valid pixels.

    Args:
        ab_prev, ab: ``(H, W, 2)`` float32 chroma of frames t-1 and t.
        motion: from :class:`MotionEstimator` on the same frames' luminance.

    Returns:
        the mean, or None when no pixel is valid (a shot change).
    """
    if not motion.valid.any():
        return None
    warped, _ = flow.warp(np.ascontiguousarray(ab_prev), motion.flow)
    return float(np.sqrt(((ab - warped) ** 2).sum(-1))[motion.valid].mean())


def video_flicker(videos: dict[str, list[np.ndarray]], reference: list[np.ndarray]) -> dict[str, float]:
    """Flicker of several versions of one clip, all judged along the same flow.

    Args:
        videos: name -> uint8 RGB frames ``(H, W, 3)``, as many as ``reference``.
        reference: uint8 RGB frames whose luminance gives the flow (the original).

    Returns:
        name -> mean over frame pairs (shot changes skipped) of :func:`flicker`.
    """
    estimate = MotionEstimator()
    L = [lab_of(f)[..., 0] for f in reference]
    motions = [estimate(L[t - 1], L[t]) for t in range(1, len(L))]
    out = {}
    for name, frames in videos.items():
        ab = [lab_of(f)[..., 1:] for f in frames]
        values = [flicker(ab[t - 1], ab[t], m) for t, m in enumerate(motions, 1)]
        values = [v for v in values if v is not None]
        out[name] = float(np.mean(values)) if values else float("nan")
    return out
