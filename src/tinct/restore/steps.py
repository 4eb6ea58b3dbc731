"""The image operations of restoration, on 8-bit grey ``(H, W)`` uint8 arrays: inpaint a
damage mask, denoise film grain, correct a faded tone. Each works in tiles of about a
megapixel (with a margin that hides the seams), so a 24 MP photo needs no more than
a few of its own 8-bit copies. OpenCV does the work (``opencv-python-headless``, a
dependency of tinct already, for ``tinct video``'s optical flow).

The constants were chosen on training photos (``benchmarks/restore_quality.py --tune``),
never on the validation photos the figures in docs/RESTORE.md are measured on.
"""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np

TILE = 1024  # tile side, pixels
INPAINT_RADIUS = 3  # pixels around each masked pixel that OpenCV's inpainting reads
# The damage mask may be grown by this many pixels before inpainting; on 24 training photos
# growing by 1 took the scratches-and-dust gain from 7.5 to 5.7 dB and harmed clean photos more.
MASK_GROW = 0
# Torn corners (fill_torn_corners): the flat paper region at a corner, grey within
# CORNER_TOLERANCE of the corner pixel, between CORNER_AREA of the photo and within
# CORNER_REACH of the short side from the corner, whose border is CORNER_EDGE or more
# marked as damage.
CORNER_TOLERANCE = 6
CORNER_AREA = (0.002, 0.15)
CORNER_EDGE = 0.5
CORNER_REACH = 0.45  # of the short side: the synthetic tears reach 0.25 (+ their jagged edge)
CORNER_MIN_SIDE = 16  # photos with a shorter side are left as the network marked them
# Grain: the noise level is the 1st percentile of the 8 x 8 blocks' standard deviation
# (after a plane fit, blocks of mean grey 40-215 only): flat regions of a clean photo
# read ~1 grey level there, grainy ones ~0.8 x the grain's level. Below GRAIN_MIN the
# photo is left as it is; above, non-local means runs with h = GRAIN_H x that level.
GRAIN_MIN = 3.0
GRAIN_H = 1.3
NLM_TEMPLATE, NLM_SEARCH = 5, 11  # OpenCV's defaults are 7 and 21: 2x the time for ~0.1 dB
# Tone: a print is faded when both its 0.5th percentile grey is at least TONE_BLACK and its
# 99.5th at most TONE_WHITE (a photo with a true black or white is left alone); its grey
# levels are then stretched linearly so those percentiles land on TONE_TARGET.
TONE_BLACK, TONE_WHITE = 10.0, 245.0
TONE_TARGET = (3.0, 251.0)


def _cv2():
    import cv2

    return cv2


def tiles(h: int, w: int, margin: int, tile: int = TILE) -> Iterator[tuple[slice, slice, slice, slice]]:
    """``(rows, cols)`` of each tile grown by ``margin``, and the part of that window each
    tile keeps, as ``(win_rows, win_cols, keep_rows, keep_cols)``."""
    for y0 in range(0, h, tile):
        for x0 in range(0, w, tile):
            y1, x1 = min(y0 + tile, h), min(x0 + tile, w)
            a, b = max(0, y0 - margin), max(0, x0 - margin)
            c, d = min(h, y1 + margin), min(w, x1 + margin)
            yield slice(a, c), slice(b, d), slice(y0 - a, y1 - a), slice(x0 - b, x1 - b)


def tiled(grey: np.ndarray, margin: int, fn: Callable[[np.ndarray, tuple[slice, slice]], np.ndarray | None]) -> np.ndarray:
    """``fn(window, (rows, cols))`` on each tile's window; a tile whose ``fn`` returns None
    is kept as it is. Returns a new array (the input is untouched)."""
    out = grey.copy()
    for rows, cols, keep_r, keep_c in tiles(*grey.shape, margin):
        done = fn(grey[rows, cols], (rows, cols))
        if done is not None:
            out[rows, cols][keep_r, keep_c] = done[keep_r, keep_c]
    return out


# ----------------------------------------------------------------- damage
def inpaint(grey: np.ndarray, mask: np.ndarray, radius: int = INPAINT_RADIUS, grow: int = MASK_GROW) -> np.ndarray:
    """Fill the ``mask`` ed pixels from their surroundings (``cv2.inpaint``, Telea's method),
    after growing the mask by ``grow`` pixels. Tiles without damage are not touched."""
    cv2 = _cv2()
    m = mask.astype(np.uint8)
    if grow > 0:
        m = cv2.dilate(m, np.ones((2 * grow + 1, 2 * grow + 1), np.uint8))
    if not m.any():
        return grey.copy()

    def fill(window, where):
        mw = m[where]
        return cv2.inpaint(window, mw, radius, cv2.INPAINT_TELEA) if mw.any() else None

    return tiled(grey, 8 * radius, fill)


def fill_torn_corners(grey: np.ndarray, mask: np.ndarray, tolerance: int = CORNER_TOLERANCE,
                      area: tuple[float, float] = CORNER_AREA, edge: float = CORNER_EDGE) -> np.ndarray:
    """``mask`` with each torn-off corner filled in whole (``mask`` itself, changed in place).

    The damage network marks a torn corner along its jagged edge, not inside: the bare paper
    there is flat, which inside a photo is nothing unusual. A corner is taken as torn when the
    flat region around its corner pixel (grey within ``tolerance`` of that pixel, 4-connected,
    ``cv2.floodFill``) covers an ``area`` fraction of the photo (between the two), stays within
    ``CORNER_REACH`` of the short side from the corner, and at least ``edge`` of its border
    inside the photo lies on or beside (2 pixels) the marked pixels: a white sky in a corner
    is not outlined by damage, a tear is. Only a window at each corner is read.
    """
    cv2 = _cv2()
    h, w = grey.shape
    if min(h, w) < CORNER_MIN_SIDE:  # no room for a corner, its border and the photo beside it
        return mask
    n = min(h, w, int(CORNER_REACH * min(h, w)) + 2)
    for flip_r, flip_c in ((False, False), (False, True), (True, False), (True, True)):
        rows = slice(h - n, h) if flip_r else slice(0, n)
        cols = slice(w - n, w) if flip_c else slice(0, n)
        window = grey[rows, cols].copy()  # OpenCV writes nothing here, but takes only a writable array
        seed = (n - 1 if flip_c else 0, n - 1 if flip_r else 0)  # (x, y) of the photo's corner pixel
        region = np.zeros((n + 2, n + 2), np.uint8)
        flags = 4 | cv2.FLOODFILL_FIXED_RANGE | cv2.FLOODFILL_MASK_ONLY | (1 << 8)
        cv2.floodFill(window, region, seed, 0, tolerance, tolerance, flags)
        inside = region[1:-1, 1:-1].astype(bool)
        far_r, far_c = (0 if flip_r else -1), (0 if flip_c else -1)  # the window's sides inside the photo
        if not area[0] <= inside.sum() / (h * w) <= area[1] or inside[far_r, :].any() or inside[:, far_c].any():
            continue
        border = cv2.dilate(inside.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) & ~inside
        near = cv2.dilate(mask[rows, cols].astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        if border.any() and near[border].mean() >= edge:
            mask[rows, cols] |= inside
    return mask


# ----------------------------------------------------------------- grain
def grain_level(grey: np.ndarray, block: int = 8) -> float:
    """The grain's standard deviation, in grey levels, read where the photo is flattest (see
    :data:`GRAIN_MIN`); at most 2 MP of blocks are read (an even sample of rows of blocks)."""
    H, W = grey.shape
    nb_r, nb_c = H // block, W // block
    if nb_r * nb_c < 16:
        return 0.0
    step = max(1, int(np.ceil(nb_r * nb_c * block * block / 2_000_000)))
    rows = np.arange(0, nb_r, step)
    f = grey[: nb_r * block, : nb_c * block].reshape(nb_r, block, nb_c, block)[rows].astype(np.float32)
    blocks = f.transpose(0, 2, 1, 3).reshape(-1, block * block)
    yy, xx = np.mgrid[0:block, 0:block]
    A = np.stack([np.ones(block * block), yy.ravel(), xx.ravel()], 1).astype(np.float32)
    resid = blocks - blocks @ (A @ np.linalg.pinv(A)).T  # minus each block's best plane
    sd = np.sqrt((resid**2).sum(1) / (block * block - 3))
    mean = blocks.mean(1)
    mid = (mean > 40) & (mean < 215)
    return float(np.percentile(sd[mid] if mid.sum() >= 16 else sd, 1))


def denoise(grey: np.ndarray, level: float | None = None, strength: float = GRAIN_H) -> np.ndarray:
    """Non-local means (``cv2.fastNlMeansDenoising``) with h = ``strength`` x the grain's level
    (:func:`grain_level`); a photo with less grain than :data:`GRAIN_MIN` is returned as it is."""
    level = grain_level(grey) if level is None else level
    if level < GRAIN_MIN:
        return grey.copy()
    cv2 = _cv2()
    h = strength * level
    return tiled(grey, NLM_SEARCH // 2 + NLM_TEMPLATE // 2 + 1,
                 lambda window, _: cv2.fastNlMeansDenoising(window, None, h, NLM_TEMPLATE, NLM_SEARCH))


# ----------------------------------------------------------------- tone
def tone_range(grey: np.ndarray) -> tuple[float, float]:
    """The 0.5th and 99.5th percentile grey levels (from the histogram)."""
    hist = np.bincount(grey.ravel(), minlength=256).astype(np.float64)
    cdf = np.cumsum(hist) / max(hist.sum(), 1)
    return float(np.searchsorted(cdf, 0.005)), float(np.searchsorted(cdf, 0.995))


def correct_tone(grey: np.ndarray) -> np.ndarray:
    """Stretch a faded print's grey levels (see :data:`TONE_BLACK`); others are returned as they are."""
    lo, hi = tone_range(grey)
    if lo < TONE_BLACK or hi > TONE_WHITE or hi - lo < 16:
        return grey.copy()
    t_lo, t_hi = TONE_TARGET
    levels = np.arange(256, dtype=np.float64)
    table = np.clip(t_lo + (levels - lo) * (t_hi - t_lo) / (hi - lo), 0, 255)
    return (table + 0.5).astype(np.uint8)[grey]
