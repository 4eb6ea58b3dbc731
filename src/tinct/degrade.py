"""Synthetic damage of old prints, on grey images: one module for ``tinct evaluate
--degrade``, training augmentation (``data.degrade``) and restoration's synthetic damage.

    grey (H, W) -> tone -> fade -> grain -> dust -> scratches -> blur -> scan -> jpeg -> grey

A degradation is a sequence of named :class:`Step`\\ s (:data:`STEPS`, each a small function
with parameters); :data:`PRESETS` names the ready-made ones (``"old-print"``). A parameter
given as a ``(low, high)`` pair is drawn uniformly for each image, so a seed gives one
print and another seed another print. Each step draws from its own generator spawned from
the seed (``numpy.random.SeedSequence``), so changing one step's parameters never moves
another step's draws. Spatial sizes (blur sigma, grain size, speck radius, scratch width)
are in pixels of a photo whose short side is :data:`REFERENCE_SIDE` and scale with the
image's short side; counts (specks, scratches) are per image and do not scale.

The damage steps (``dust``, ``scratches``, ``cracks``, ``torn_corner``) also return the mask
of the pixels they drew: :func:`degrade` with ``return_mask=True`` gives their union (the
truth for a damage detector). Steps after them (``blur``, ``scan``, ``jpeg``) spread the
damage by a pixel or so beyond the mask; leave them out where an exact mask matters.

Example:
    >>> out = degrade(grey_u8, "old-print", seed=3)                        # doctest: +SKIP
    >>> out, mask = degrade(grey_u8, [Step("scratches", {"count": 4})], seed=0, return_mask=True)  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass, field
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image
from scipy import ndimage

from . import color

REFERENCE_SIDE = 256  # spatial parameters are in pixels of a photo with this short side

StepFn = Callable[..., "tuple[np.ndarray, np.ndarray | None]"]
STEPS: dict[str, StepFn] = {}


def _register(name: str):
    def add(fn: StepFn) -> StepFn:
        if name in STEPS:
            raise ValueError(f"degradation step {name!r} is registered twice")
        STEPS[name] = fn
        return fn
    return add


@dataclass(frozen=True)
class Step:
    """One named step: ``params`` override the step function's defaults (a number, or a
    ``(low, high)`` range drawn per image); applied with probability ``p``."""

    name: str
    params: dict = field(default_factory=dict)
    p: float = 1.0


def _draw(rng: np.random.Generator, v) -> float:
    """A parameter's value for this image: a number as it is, a (low, high) pair drawn uniformly."""
    if isinstance(v, (tuple, list)):
        lo, hi = v
        return float(rng.uniform(lo, hi))
    return float(v)


# ----------------------------------------------------------------- tone and contrast
@_register("tone")
def tone(img, rng, scale, gamma=(0.8, 1.25), s_curve=(0.0, 0.4), gain=6.0):
    """The paper's tone curve: a gamma (``skimage.exposure.adjust_gamma``) blended with an
    S-curve (``adjust_sigmoid`` at cutoff 0.5, rescaled to keep 0 and 1) by ``s_curve``."""
    from skimage import exposure

    y = exposure.adjust_gamma(img, _draw(rng, gamma))
    g, w = _draw(rng, gain), _draw(rng, s_curve)
    s = exposure.adjust_sigmoid(y, cutoff=0.5, gain=g)
    lo, hi = 1 / (1 + np.exp(g * 0.5)), 1 / (1 + np.exp(-g * 0.5))
    return (1 - w) * y + w * (s - lo) / (hi - lo), None


@_register("fade")
def fade(img, rng, scale, black=(0.04, 0.14), white=(0.85, 0.97)):
    """Faded contrast and lifted blacks: [0, 1] mapped linearly onto [black, white]."""
    b, w = _draw(rng, black), _draw(rng, white)
    return b + (w - b) * img, None


# ----------------------------------------------------------------- noise and softness
@_register("grain")
def grain(img, rng, scale, amount=(0.015, 0.045), size=(0.5, 1.0)):
    """Film grain: Gaussian noise correlated over ``size`` pixels (``scipy.ndimage.gaussian_filter``),
    of standard deviation ``amount`` in the mid-tones, less in the shadows and highlights."""
    n = ndimage.gaussian_filter(rng.standard_normal(img.shape), _draw(rng, size) * scale)
    n /= max(float(n.std()), 1e-12)
    weight = np.sqrt(np.clip(4 * img * (1 - img), 0.1, 1.0))
    return img + _draw(rng, amount) * weight * n, None


@_register("blur")
def blur(img, rng, scale, sigma=(0.4, 1.0)):
    """Slight softness of the print and the scan: a Gaussian blur (``scipy.ndimage.gaussian_filter``)."""
    return ndimage.gaussian_filter(img, _draw(rng, sigma) * scale, mode="reflect"), None


@_register("scan")
def scan(img, rng, scale, banding=(0.004, 0.015), noise=(0.003, 0.01)):
    """Scanner noise: a slowly varying brightness offset per row (banding) plus white noise."""
    rows = ndimage.gaussian_filter1d(rng.standard_normal(img.shape[0]), 2.0 * scale, mode="wrap")
    rows /= max(float(rows.std()), 1e-12)
    return img + _draw(rng, banding) * rows[:, None] + _draw(rng, noise) * rng.standard_normal(img.shape), None


@_register("halftone")
def halftone(img, rng, scale, period=(2.5, 4.0), angle=(0.0, 90.0), strength=(0.3, 0.7)):
    """A printed halftone screen: the image thresholded against a rotated dot grid of
    ``period`` pixels, blurred by the scan, blended with the image by ``strength``."""
    h, w = img.shape
    a, per = np.deg2rad(_draw(rng, angle)), max(_draw(rng, period) * scale, 2.0)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    u, v = xx * np.cos(a) + yy * np.sin(a), -xx * np.sin(a) + yy * np.cos(a)
    screen = 0.5 + 0.25 * (np.cos(2 * np.pi * u / per) + np.cos(2 * np.pi * v / per))  # in [0, 1]
    dots = ndimage.gaussian_filter((img > screen).astype(np.float64), per / 3)
    s = _draw(rng, strength)
    return (1 - s) * img + s * dots, None


@_register("jpeg")
def jpeg(img, rng, scale, quality=(20, 45)):
    """A low-quality JPEG round trip (Pillow), on the image rounded to 8 bits."""
    buf = io.BytesIO()
    Image.fromarray(_to_u8(img), "L").save(buf, format="JPEG", quality=round(_draw(rng, quality)))
    buf.seek(0)
    with Image.open(buf) as im:
        return np.asarray(im.convert("L"), dtype=np.float64) / 255.0, None


# ----------------------------------------------------------------- damage (with masks)
def _paint(img, mask, value, opacity):
    img[mask] = (1 - opacity) * img[mask] + opacity * value


def _shade(rng, bright_p: float) -> float:
    """A damage mark's grey: near white (p = ``bright_p``) or near black."""
    return float(rng.uniform(0.85, 1.0) if rng.random() < bright_p else rng.uniform(0.0, 0.15))


@_register("dust")
def dust(img, rng, scale, count=(4, 30), radius=(0.5, 2.0), bright=0.5, opacity=(0.6, 1.0)):
    """Dust and specks: ``count`` small ellipses (``skimage.draw.ellipse``), white or black,
    each at least one pixel. Returns the mask of the specks."""
    from skimage.draw import ellipse

    img, h, w = img.copy(), *img.shape
    mask = np.zeros(img.shape, bool)
    for _ in range(round(_draw(rng, count))):
        r, c = rng.uniform(0, h), rng.uniform(0, w)
        ry, rx = (max(_draw(rng, radius) * scale, 0.5) for _ in range(2))
        rr, cc = ellipse(r, c, ry, rx, shape=img.shape, rotation=rng.uniform(0, np.pi))
        one = np.zeros(img.shape, bool)
        one[rr, cc] = True
        one[min(int(r), h - 1), min(int(c), w - 1)] = True
        _paint(img, one, _shade(rng, bright), _draw(rng, opacity))
        mask |= one
    return img, mask


def _thicken(line: np.ndarray, width: float) -> np.ndarray:
    k = int(round(width))
    return ndimage.binary_dilation(line, iterations=k // 2) if k > 1 else line


@_register("scratches")
def scratches(img, rng, scale, count=(1, 5), width=(1.0, 2.0), length=(0.3, 1.0), bend=(0.0, 0.15), bright=0.7,
              opacity=(0.5, 0.9)):
    """Thin scratches: ``count`` gently curved strokes (quadratic Bezier, ``skimage.draw.bezier_curve``)
    of ``length`` times the long side, ``width`` pixels, mostly bright (as on a print).
    Returns the mask of the strokes."""
    from skimage.draw import bezier_curve

    img, h, w = img.copy(), *img.shape
    mask = np.zeros(img.shape, bool)
    side = max(h, w)
    for _ in range(round(_draw(rng, count))):
        r0, c0 = rng.uniform(0, h), rng.uniform(0, w)
        a = rng.uniform(0, np.pi) if rng.random() < 0.5 else np.pi / 2 + rng.normal(0, 0.15)  # half near vertical
        n = _draw(rng, length) * side
        r2, c2 = r0 + n * np.sin(a), c0 + n * np.cos(a)
        off = _draw(rng, bend) * n * rng.choice([-1, 1])
        r1, c1 = (r0 + r2) / 2 + off * np.cos(a), (c0 + c2) / 2 - off * np.sin(a)
        rr, cc = bezier_curve(*(int(round(v)) for v in (r0, c0, r1, c1, r2, c2)), weight=1.0, shape=img.shape)
        one = np.zeros(img.shape, bool)
        one[rr, cc] = True
        one = _thicken(one, _draw(rng, width) * scale)
        _paint(img, one, _shade(rng, bright), _draw(rng, opacity))
        mask |= one
    return img, mask


@_register("cracks")
def cracks(img, rng, scale, count=(1, 3), segments=(8, 20), step=(6.0, 14.0), width=(1.0, 2.0), bright=0.2,
           opacity=(0.6, 1.0)):
    """Cracks in the emulsion: jagged random walks of ``segments`` straight pieces
    (``skimage.draw.line``) of ``step`` pixels, mostly dark. Returns the mask."""
    from skimage.draw import line

    img, h, w = img.copy(), *img.shape
    mask = np.zeros(img.shape, bool)
    for _ in range(round(_draw(rng, count))):
        r, c, a = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(0, 2 * np.pi)
        one = np.zeros(img.shape, bool)
        for _ in range(round(_draw(rng, segments))):
            a += rng.normal(0, 0.5)
            n = _draw(rng, step) * scale
            r1, c1 = np.clip(r + n * np.sin(a), 0, h - 1), np.clip(c + n * np.cos(a), 0, w - 1)
            rr, cc = line(int(r), int(c), int(r1), int(c1))
            one[rr, cc] = True
            r, c = r1, c1
        one = _thicken(one, _draw(rng, width) * scale)
        _paint(img, one, _shade(rng, bright), _draw(rng, opacity))
        mask |= one
    return img, mask


@_register("torn_corner")
def torn_corner(img, rng, scale, size=(0.08, 0.25), jag=5, paper=(0.85, 1.0)):
    """A torn-off corner: a random corner cut along a jagged edge (``skimage.draw.polygon``)
    of ``size`` times the short side, filled with paper grey. Returns the mask."""
    from skimage.draw import polygon

    img, h, w = img.copy(), *img.shape
    n = _draw(rng, size) * min(h, w)
    t = np.linspace(0, 1, int(jag) + 2)
    edge_r = n * t + rng.normal(0, n / 12, len(t)) * (t > 0) * (t < 1)
    edge_c = n * (1 - t) + rng.normal(0, n / 12, len(t)) * (t > 0) * (t < 1)
    rows, cols = np.concatenate([[0.0], edge_r]), np.concatenate([[0.0], edge_c])
    corner = rng.integers(4)
    if corner & 1:
        rows = h - 1 - rows
    if corner & 2:
        cols = w - 1 - cols
    rr, cc = polygon(rows, cols, shape=img.shape)
    mask = np.zeros(img.shape, bool)
    mask[rr, cc] = True
    img[mask] = _draw(rng, paper)
    return img, mask


# ----------------------------------------------------------------- presets
# Thin scratches, both kinds: on a print mostly bright (the emulsion scraped off), on a
# negative dark; the two are separate steps so each draws its own.
_SCRATCHES = (Step("scratches", {"bright": 1.0}), Step("scratches", {"bright": 0.0, "count": (0, 3)}, p=0.6))

PRESETS: dict[str, tuple[Step, ...]] = {
    # A print of 1900-1950, scanned: yellowed paper's tone curve, faded, grainy, dusty,
    # scratched, a little soft, scanner noise, saved as a poor JPEG.
    "old-print": (
        Step("tone"), Step("fade"), Step("grain"), Step("dust"), Step("scratches"),
        Step("blur"), Step("scan"), Step("jpeg"),
    ),
    # Restoration's measures (benchmarks/restore_quality.py), one kind of harm each; the
    # damage presets' masks are exact (no step after them spreads the marks).
    "damage": (Step("dust"), *_SCRATCHES, Step("cracks", p=0.5), Step("torn_corner", p=0.25)),
    "scratches-dust": (Step("dust"), *_SCRATCHES, Step("cracks", p=0.5)),
    "grain": (Step("grain"),),
    "faded": (Step("tone", {"gamma": (0.9, 1.1), "s_curve": 0.0}), Step("fade")),
    # What the damage detector trains on (recipes/restore/damage.yaml): clean crops made
    # grainy, faded or JPEG-compressed half the time (so none of that reads as damage), and
    # wider ranges of every mark than the measures draw.
    "damage-train": (
        Step("tone", p=0.4), Step("fade", p=0.4), Step("grain", {"amount": (0.005, 0.05)}, p=0.5),
        Step("dust", {"count": (0, 40), "radius": (0.4, 3.0)}, p=0.85),
        Step("scratches", {"count": (1, 6), "width": (0.8, 3.0), "bright": 1.0, "opacity": (0.3, 0.95)}, p=0.7),
        Step("scratches", {"count": (1, 4), "width": (0.8, 3.0), "bright": 0.0, "opacity": (0.3, 0.95)}, p=0.5),
        Step("cracks", {"width": (0.8, 2.5)}, p=0.4), Step("torn_corner", p=0.1),
        Step("jpeg", {"quality": (60, 95)}, p=0.3),
    ),
}


def resolve(steps: str | Sequence[Step]) -> tuple[Step, ...]:
    """A preset name or a sequence of steps -> the steps, checked.

    Raises:
        ValueError: an unknown preset or step name.
    """
    if isinstance(steps, str):
        if steps not in PRESETS:
            raise ValueError(f"unknown degradation {steps!r}; choose one of {', '.join(sorted(PRESETS))}")
        steps = PRESETS[steps]
    steps = tuple(steps)
    for s in steps:
        if s.name not in STEPS:
            raise ValueError(f"unknown degradation step {s.name!r}; known: {', '.join(sorted(STEPS))}")
    return steps


def degrade(grey: np.ndarray, steps: str | Sequence[Step] = "old-print", seed=0, *, return_mask: bool = False,
            scale: float | None = None, min_change: float = 0.0):
    """Degrade a grey image as an old print.

    Args:
        grey: uint8 ``(H, W)`` in 0..255 or float ``(H, W)`` in [0, 1].
        steps: a preset name (:data:`PRESETS`) or a sequence of :class:`Step`.
        seed: int or sequence of ints (e.g. ``[seed, step, photo]``); the same seed gives
            the same output, bit for bit.
        return_mask: also return the bool ``(H, W)`` mask of the pixels the damage steps drew.
        scale: the spatial parameters' multiplier; default: the short side / :data:`REFERENCE_SIDE`
            (a training crop may stand for a part of a larger photo).
        min_change: the mask keeps only the pixels a damage step changed by at least this
            much (grey in [0, 1]): a mark as grey as what it covers is no damage.

    Returns:
        the degraded image, of the input's dtype (uint8 rounded; float32 in [0, 1]), and
        with ``return_mask`` the mask.

    Raises:
        ValueError: not a 2-D grey image, or an unknown step.
    """
    grey = np.asarray(grey)
    if grey.ndim != 2:
        raise ValueError(f"expected a grey image of shape (H, W), got {grey.shape}")
    steps = resolve(steps)
    img = grey.astype(np.float64) / 255.0 if grey.dtype == np.uint8 else np.clip(grey.astype(np.float64), 0, 1)
    mask = np.zeros(grey.shape, bool)
    scale = min(grey.shape) / REFERENCE_SIDE if scale is None else float(scale)
    rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(len(steps))]
    for step, rng in zip(steps, rngs):
        if step.p < 1 and rng.random() >= step.p:
            continue
        before = img
        img, m = STEPS[step.name](img, rng, scale, **step.params)
        img = np.clip(img, 0.0, 1.0)
        if m is not None:
            mask |= m & (np.abs(img - before) >= min_change) if min_change > 0 else m
    out = _to_u8(img) if grey.dtype == np.uint8 else img.astype(np.float32)
    return (out, mask) if return_mask else out


def _to_u8(img: np.ndarray) -> np.ndarray:
    return (np.clip(img, 0, 1) * 255.0 + 0.5).astype(np.uint8)


# ----------------------------------------------------------------- on lightness
@functools.cache
def _lightness_of_grey_levels() -> np.ndarray:
    """L of the 256 grey levels (R = G = B = v / 255), float32 ``(256,)``."""
    levels = np.repeat(np.arange(256, dtype=np.float32)[:, None] / 255.0, 3, 1)[None]  # (1, 256, 3)
    return color.rgb_to_lab(levels)[0, :, 0].astype(np.float32)


def degrade_lightness(L: np.ndarray, steps: str | Sequence[Step] = "old-print", seed=0, **options):
    """Degrade lightness: L ``(H, W)`` in [0, 100] -> the neutral grey's 8-bit levels ->
    :func:`degrade` -> L of the degraded levels (float32), as the colorizer reads an 8-bit grey photo.
    ``options`` go to :func:`degrade` (``return_mask=True`` also returns the mask)."""
    grey = _to_u8(color.neutral_from_l(np.asarray(L, dtype=np.float32))[..., 0])
    out = degrade(grey, steps, seed, **options)
    if options.get("return_mask"):
        return _lightness_of_grey_levels()[out[0]], out[1]
    return _lightness_of_grey_levels()[out]
