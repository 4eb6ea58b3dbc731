"""Colour science for tinct: the only module that knows about CIELAB.

Conversions delegate to well-kept libraries (scikit-image for numpy, kornia for torch)
rather than re-deriving the sRGB/XYZ/Lab formulas. Everything else in tinct -- data,
models, metrics, inference -- imports the normalisation constants and helpers from here.

Conventions:
    rgb: sRGB in [0, 1], channels last for numpy ``(H, W, 3)``, channels first for torch
        ``(*, 3, H, W)``.
    L: lightness in [0, 100]; ab: chroma, roughly [-110, 110] for sRGB colours.
    L_n = L / L_NORM - 1 in [-1, 1] (also what the ImageNet EfficientNet-Lite expects,
    since that model was trained on (rgb - 0.5) / 0.5); ab_n = ab / AB_NORM.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

L_NORM = 50.0  # L_n = L / L_NORM - 1
AB_NORM = 110.0  # ab_n = ab / AB_NORM

GRID_313 = 10.0  # Zhang et al. ECCV16 bin spacing
GRID_16 = 16  # bins per axis for the 16x16 grid (seed 002)
AB_RANGE = 110.0  # the 16x16 grid spans [-AB_RANGE, AB_RANGE) on each axis


# ---------------------------------------------------------------- conversions
def _check_numpy_rgb(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.ndim < 3 or rgb.shape[-1] != 3:
        raise ValueError(f"expected an RGB array of shape (..., H, W, 3), got {rgb.shape}")
    if not np.issubdtype(rgb.dtype, np.floating):
        raise TypeError(f"expected float RGB in [0, 1], got dtype {rgb.dtype}")
    return rgb


def _check_torch(x: torch.Tensor, what: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor for {what}, got {type(x).__name__}")
    if x.dim() < 3 or x.shape[-3] != 3:
        raise ValueError(f"expected {what} of shape (*, 3, H, W), got {tuple(x.shape)}")


def rgb_to_lab(rgb):
    """sRGB in [0, 1] to CIELAB (D65, 2 degree observer).

    Args:
        rgb: numpy float array ``(..., H, W, 3)`` or torch tensor ``(*, 3, H, W)``.

    Returns:
        Lab of the same kind and layout: L in [0, 100], a and b roughly in [-110, 110].
    """
    if isinstance(rgb, torch.Tensor):
        _check_torch(rgb, "rgb")
        import kornia.color

        return kornia.color.rgb_to_lab(rgb.clamp(0, 1))
    from skimage import color as skcolor

    return skcolor.rgb2lab(np.clip(_check_numpy_rgb(rgb), 0, 1)).astype(np.float32)


def lab_to_rgb(lab):
    """CIELAB to sRGB in [0, 1], clipped to the gamut.

    Args:
        lab: numpy array ``(..., H, W, 3)`` or torch tensor ``(*, 3, H, W)``.

    Returns:
        sRGB in [0, 1] of the same kind and layout.
    """
    if isinstance(lab, torch.Tensor):
        _check_torch(lab, "lab")
        import kornia.color

        return kornia.color.lab_to_rgb(lab, clip=True)
    from skimage import color as skcolor

    lab = np.asarray(lab, dtype=np.float64)
    if lab.ndim < 3 or lab.shape[-1] != 3:
        raise ValueError(f"expected a Lab array of shape (..., H, W, 3), got {lab.shape}")
    import warnings

    with warnings.catch_warnings():  # out-of-gamut Lab is expected; we clip it
        warnings.simplefilter("ignore")
        return np.clip(skcolor.lab2rgb(lab), 0, 1).astype(np.float32)


# The same conversion as kornia's lab_to_rgb (the reference: tests/test_color.py), for
# 8-bit outputs of any size: D65 white, its XYZ -> linear sRGB matrix, the sRGB curve.
_XYZ_WHITE = (0.95047, 1.0, 1.08883)
_XYZ_TO_RGB = ((3.2404813432005266, -1.5371515162713185, -0.4985363261688878),
               (-0.9692549499965682, 1.8759900014898907, 0.0415559265582928),
               (0.0556466391351772, -0.2040413383665112, 1.0573110696453443))
_F0 = 6.0 / 29.0  # where the Lab curve f^-1 turns from linear to cubic
SRGB8_STEPS = 1 << 16  # linear-light resolution of the 8-bit sRGB table: 1/65536 << one 8-bit step


@functools.lru_cache(maxsize=None)
def _srgb8_table() -> np.ndarray:
    """uint8 sRGB code of linear light i / SRGB8_STEPS, i = 0..SRGB8_STEPS (rounded, clipped)."""
    lin = np.arange(SRGB8_STEPS + 1, dtype=np.float64) / SRGB8_STEPS
    srgb = np.where(lin > 0.0031308, 1.055 * np.maximum(lin, 0.0031308) ** (1 / 2.4) - 0.055, 12.92 * lin)
    return np.floor(np.clip(srgb, 0, 1) * 255 + 0.5).astype(np.uint8)


def _lab_finv(f: np.ndarray, out: np.ndarray, tmp: np.ndarray) -> None:
    """out = the inverse Lab curve of f (CIE: (f - 4/29) / 7.787 below 6/29, f^3 above), as
    the linear part plus d^2 (d + 3 f0) with d = max(f - f0, 0): the cube is the linear part
    (its tangent at f0) plus that, so no per-pixel branch is needed."""
    np.subtract(f, np.float32(_F0), out=tmp)
    np.maximum(tmp, 0, out=tmp)
    np.add(tmp, np.float32(3 * _F0), out=out)
    out *= tmp
    out *= tmp
    np.multiply(f, np.float32(1 / 7.787), out=tmp)
    tmp -= np.float32(4 / 29 / 7.787)
    out += tmp


def lab_to_srgb8(L: np.ndarray, a: np.ndarray, b: np.ndarray, out: np.ndarray, work: list[np.ndarray] | None = None) -> None:
    """CIELAB planes -> 8-bit sRGB, written into ``out``: what ``lab_to_rgb`` then
    ``round(255 * rgb)`` give, within one 8-bit step, at a fraction of the time and memory.

    Meant for pieces of a large image small enough to stay in a core's cache (a few tens of
    thousands of pixels): float32 throughout, every step in place, and the sRGB curve and the
    rounding read from a table of linear light (:data:`SRGB8_STEPS` entries).

    Args:
        L, a, b: float32 ``(n, m)``: L in [0, 100], a and b in Lab units.
        out: uint8 ``(n, m, 3)`` (fastest C-contiguous).
        work: six float32 ``(n, m)`` scratch arrays (reused between calls); made if None.
    """
    if work is None:
        work = [np.empty(L.shape, np.float32) for _ in range(6)]
    fy, fx, X, Y, Z, t = work
    np.add(L, np.float32(16), out=fy)
    fy *= np.float32(1 / 116)
    np.multiply(a, np.float32(1 / 500), out=fx)
    fx += fy
    _lab_finv(fx, X, t)
    _lab_finv(fy, Y, t)
    np.multiply(b, np.float32(-1 / 200), out=fx)
    fx += fy
    np.maximum(fx, 0, out=fx)  # Z < 0 is out of range: clamped, as kornia does
    _lab_finv(fx, Z, t)
    table, steps = _srgb8_table(), np.float32(SRGB8_STEPS)
    index, code = fy.view(np.int32), fx  # fy and fx are free again: the table index and one channel's code
    planes = np.empty((3, *L.shape), np.uint8)  # one channel each, then interleaved by OpenCV (faster than
    for c in range(3):                           # numpy writing every third byte)
        (mx, my, mz), (wx, wy, wz) = _XYZ_TO_RGB[c], _XYZ_WHITE
        np.multiply(X, np.float32(mx * wx) * steps, out=code)
        code += np.float32(0.5)
        np.multiply(Y, np.float32(my * wy) * steps, out=t)
        code += t
        np.multiply(Z, np.float32(mz * wz) * steps, out=t)
        code += t
        np.copyto(index, code, casting="unsafe")  # truncation of x + 0.5: the nearest table entry
        np.take(table, index, out=planes[c], mode="clip")  # clip: out-of-gamut light -> 0 or 255
    import cv2

    if out.flags.c_contiguous:
        merged = cv2.merge(list(planes), dst=out)
        if merged is out:
            return
    out[...] = np.moveaxis(planes, 0, -1)


def neutral_from_l(L: np.ndarray) -> np.ndarray:
    """The neutral grey (R = G = B) of lightness L ``(H, W)`` in [0, 100] -> float32 ``(H, W, 3)``.

    Lab(L, 0, 0) -> sRGB leaves ~1e-5 differences between channels from the D65 white
    point's rounding; averaging them makes the grey exact, so its colourfulness is 0.
    """
    lab = np.stack([L, np.zeros_like(L), np.zeros_like(L)], -1)
    g = lab_to_rgb(lab).mean(-1, keepdims=True)
    return np.repeat(g, 3, axis=-1).astype(np.float32)


def grey(rgb: np.ndarray) -> np.ndarray:
    """A photo made grey: float sRGB ``(H, W, 3)`` -> the neutral grey of the same CIELAB L.

    What every colorizer is given in evaluations and the study: the photo's lightness and
    nothing of its colour (unlike a luma grey such as Pillow's ``convert("L")``, whose L
    differs from the original's).
    """
    return neutral_from_l(rgb_to_lab(rgb)[..., 0])


def normalize_l(L):
    """L in [0, 100] -> L_n in [-1, 1]."""
    return L / L_NORM - 1.0


def denormalize_l(L_n):
    return (L_n + 1.0) * L_NORM


def normalize_ab(ab):
    return ab / AB_NORM


def denormalize_ab(ab_n):
    return ab_n * AB_NORM


# ---------------------------------------------------------------- ab bins
@functools.lru_cache(maxsize=None)
def _srgb_ab_hull_vertices() -> np.ndarray:
    """Vertices of the convex hull of the ab projection of the whole sRGB gamut."""
    from scipy.spatial import ConvexHull
    from skimage import color as skcolor

    v = np.linspace(0, 1, 129)
    faces = []
    for axis in range(3):  # the gamut's outline in ab comes from the cube's surface
        for value in (0.0, 1.0):
            a, b = np.meshgrid(v, v, indexing="ij")
            planes = [a, b]
            planes.insert(axis, np.full_like(a, value))
            faces.append(np.stack(planes, -1).reshape(-1, 3))
    ab = skcolor.rgb2lab(np.concatenate(faces)[None])[0, :, 1:]
    return ab[ConvexHull(ab).vertices]


@functools.lru_cache(maxsize=None)
def bins_313() -> np.ndarray:
    """Zhang et al.'s quantised ab space: grid 10, the 313 in-gamut centres.

    A centre c on the 10-grid is kept when the square [c - 10, c + 10]^2 touches the
    convex hull of the sRGB gamut in the ab plane (the hull dilated by the square is the
    hull of its vertices plus the square's corners). This yields exactly 313 centres with
    a in [-90, 100] and b in [-110, 100], the range of Zhang's ``pts_in_hull``.

    Returns:
        float32 array ``(313, 2)`` of (a, b) centres, sorted by a then b.
    """
    from scipy.spatial import Delaunay

    verts = _srgb_ab_hull_vertices()
    corners = np.array([[-1, -1], [-1, 1], [1, -1], [1, 1]]) * GRID_313
    dilated = Delaunay((verts[:, None, :] + corners[None]).reshape(-1, 2))
    g = np.arange(-120, 121, GRID_313)
    A, B = np.meshgrid(g, g, indexing="ij")
    pts = np.stack([A.ravel(), B.ravel()], -1)
    return pts[dilated.find_simplex(pts) >= 0].astype(np.float32)


@functools.lru_cache(maxsize=None)
def bins_16x16() -> np.ndarray:
    """Centres of the 16x16 uniform grid over [-110, 110)^2 (seed 002), ``(256, 2)``."""
    step = 2 * AB_RANGE / GRID_16
    c = -AB_RANGE + step * (np.arange(GRID_16) + 0.5)
    A, B = np.meshgrid(c, c, indexing="ij")
    return np.stack([A.ravel(), B.ravel()], -1).astype(np.float32)


def bin_centers(kind: str) -> np.ndarray:
    """Bin centres by name: ``"313"`` or ``"16x16"``."""
    table = {"313": bins_313, "16x16": bins_16x16}
    if kind not in table:
        raise ValueError(f"unknown ab bin set {kind!r}; choose one of {sorted(table)}")
    return table[kind]()


def quantize_16x16(ab: torch.Tensor) -> torch.Tensor:
    """Hard class index on the 16x16 grid.

    Args:
        ab: ``(B, 2, H, W)`` in Lab units.

    Returns:
        long tensor ``(B, H, W)`` in [0, 256): index = a_idx * 16 + b_idx.
    """
    step = 2 * AB_RANGE / GRID_16
    idx = ((ab + AB_RANGE) / step).floor().long().clamp(0, GRID_16 - 1)
    return idx[:, 0] * GRID_16 + idx[:, 1]


def nearest_bin(ab: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    """Hard class index of the nearest bin centre: ``(B, 2, H, W)`` -> ``(B, H, W)``."""
    flat = ab.permute(0, 2, 3, 1).reshape(-1, 2)
    idx = torch.cdist(flat, centers.to(flat)).argmin(1)
    return idx.view(ab.shape[0], ab.shape[2], ab.shape[3])


def soft_encode(ab: torch.Tensor, centers: torch.Tensor, k: int = 5, sigma: float = 5.0) -> torch.Tensor:
    """Zhang et al.'s soft encoding: Gaussian weights on the k nearest bin centres.

    Args:
        ab: ``(B, 2, H, W)`` in Lab units.
        centers: ``(Q, 2)`` bin centres.
        k: number of nearest neighbours that share the mass.
        sigma: Gaussian width in Lab units.

    Returns:
        ``(B, Q, H, W)`` distribution (sums to 1 over Q).
    """
    B, _, H, W = ab.shape
    flat = ab.permute(0, 2, 3, 1).reshape(-1, 2)
    centers = centers.to(flat)
    d = torch.cdist(flat, centers)  # (N, Q)
    dist, idx = d.topk(k, dim=1, largest=False)
    w = torch.exp(-(dist**2) / (2 * sigma**2))
    w = w / w.sum(1, keepdim=True)
    out = torch.zeros_like(d).scatter_(1, idx, w)
    return out.view(B, H, W, -1).permute(0, 3, 1, 2)


def annealed_mean(logits: torch.Tensor, centers: torch.Tensor, temperature: float = 0.38) -> torch.Tensor:
    """Decode a distribution over ab bins to ab values (Zhang et al.'s annealed mean).

    softmax(logits / T) re-weights the bins; T=1 is the mean, T->0 the mode.

    Args:
        logits: ``(B, Q, H, W)`` unnormalised log-probabilities.
        centers: ``(Q, 2)`` bin centres.
        temperature: T > 0.

    Returns:
        ``(B, 2, H, W)`` ab in Lab units.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    p = torch.softmax(logits / temperature, dim=1)
    return torch.einsum("bqhw,qc->bchw", p, centers.to(p))


def rebalance_weights(prior: np.ndarray, lam: float = 0.5, sigma: float = 5.0, centers: np.ndarray | None = None) -> np.ndarray:
    """Zhang et al.'s class-rebalancing weights w ~ ((1 - lam) * p~ + lam / Q)^-1.

    Args:
        prior: ``(Q,)`` empirical bin frequencies (any scale).
        lam: mixing with the uniform distribution.
        sigma: Gaussian smoothing of the prior across neighbouring bins (Lab units);
            needs ``centers``; 0 disables it.
        centers: ``(Q, 2)`` bin centres, used for smoothing.

    Returns:
        ``(Q,)`` weights normalised so that sum(p~ * w) = 1.
    """
    p = np.asarray(prior, dtype=np.float64)
    p = p / p.sum()
    if sigma > 0 and centers is not None:
        d2 = ((centers[:, None, :] - centers[None, :, :]) ** 2).sum(-1)
        k = np.exp(-d2 / (2 * sigma**2))
        p = k @ p
        p = p / p.sum()
    w = 1.0 / ((1 - lam) * p + lam / len(p))
    return (w / (p * w).sum()).astype(np.float32)
