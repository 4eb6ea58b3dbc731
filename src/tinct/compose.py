"""Full-resolution output: the photo's own L with the network's ab, upsampled, as 8-bit sRGB.

The per-pixel part of colorizing, the whole cost of a large photo: each output pixel is
one bilinear ab sample and one Lab -> sRGB conversion. It runs in pieces of about
:data:`PIECE_PIXELS` pixels whose float32 planes stay in the CPU's cache (instead of
megapixel tiles whose temporaries went through memory), on :func:`torch.get_num_threads`
threads (numpy and OpenCV release the GIL), with :func:`tinct.color.lab_to_srgb8`.
The result equals composing with ``F.interpolate(ab, (H, W), mode="bilinear")`` and
:func:`tinct.color.lab_to_rgb` at once, within one 8-bit step (tests/test_compose.py).
Memory: the output image, plus one megapixel tile of 8-bit pixels and each thread's
scratch planes.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator

import cv2
import numpy as np
import torch
from PIL import Image

from . import color

TILE_PIXELS = 1 << 20  # output pixels pasted into the image at once
# Pixels converted at once by one thread. 1 << 17 (8 float32 planes of 512 kB, in L3): at 24 MP
# on the idle 2-core machine, 2 threads, medians of 7 interleaved: 0.342 s, against 0.599 s at
# 1 << 15 (planes in L2: each piece's ~50 numpy calls and their GIL hand-offs then cost more than
# the cache saved) and 0.335 s at 1 << 18; outputs identical (2026-12-08).
PIECE_PIXELS = 1 << 17
CV2_MAX_WIDTH = 32767  # OpenCV's resize takes widths up to here; wider pieces interpolate in numpy

_local = threading.local()


def tiles(H: int, W: int, pixels: int | None = None) -> Iterator[tuple[int, int, int, int]]:
    """(y0, y1, x0, x1) covering ``(H, W)`` in tiles of at most ``pixels`` (default
    :data:`TILE_PIXELS`): whole rows where a row fits, pieces of one row where it does not (a
    40,000,000 x 1 strip)."""
    pixels = pixels or TILE_PIXELS
    cols = max(1, min(W, pixels))
    rows = max(1, pixels // cols)
    for y0 in range(0, H, rows):
        for x0 in range(0, W, cols):
            yield y0, min(H, y0 + rows), x0, min(W, x0 + cols)


def taps(a: int, b: int, n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear taps (i0, i1, float32 weight of i1) of output positions ``a:b`` of ``n_out`` from
    ``n_in`` samples, with align_corners=False, as F.interpolate computes them."""
    src = np.maximum((np.arange(a, b, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5, 0)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    return i0, np.minimum(i0 + 1, n_in - 1), (src - i0).astype(np.float32)


def _work(shape: tuple[int, int]) -> list[np.ndarray]:
    """This thread's scratch planes, at least ``shape`` pixels, viewed as ``shape``."""
    n = shape[0] * shape[1]
    buf = getattr(_local, "buf", None)
    if buf is None or buf.shape[1] < n:
        buf = _local.buf = np.empty((8, max(n, PIECE_PIXELS)), np.float32)
    return [buf[i, :n].reshape(shape) for i in range(8)]


def _piece(L: np.ndarray, ab: np.ndarray, H: int, W: int, y0: int, y1: int, x0: int, x1: int, out: np.ndarray) -> None:
    """Compose output rows ``y0:y1``, columns ``x0:x1`` into ``out`` ``(y1 - y0, x1 - x0, 3)``."""
    h, w = ab.shape[1:]
    n, m = y1 - y0, x1 - x0
    work = _work((n, m))
    i0, i1, t = taps(y0, y1, H, h)
    t = t[:, None]
    planes = []
    for k in range(2):
        rows = ab[k, i0] * (1 - t) + ab[k, i1] * t  # (n, w): the low-res columns at these rows
        dst = work[6 + k]
        if x0 == 0 and x1 == W and W <= CV2_MAX_WIDTH:
            dst = cv2.resize(rows, (W, n), dst=dst, interpolation=cv2.INTER_LINEAR)  # the taps of F.interpolate
        else:
            j0, j1, u = taps(x0, x1, W, w)
            np.add(rows[:, j0] * (1 - u), rows[:, j1] * u, out=dst)
        planes.append(dst)
    color.lab_to_srgb8(L[y0:y1, x0:x1], planes[0], planes[1], out, work[:6])


def render(L: torch.Tensor | np.ndarray, ab_small: torch.Tensor, saturation: float = 1.0,
           alpha: np.ndarray | None = None, threads: int | None = None) -> Image.Image:
    """Full-resolution L ``(H, W)`` in [0, 100] + low-res ab ``(2, h, w)`` -> 8-bit PIL image.

    Args:
        saturation: multiplies ab.
        alpha: uint8 ``(H, W)``, added as the alpha channel.
        threads: default :func:`torch.get_num_threads`.
    """
    L = L.numpy() if isinstance(L, torch.Tensor) else L
    L = np.ascontiguousarray(L, dtype=np.float32)
    H, W = L.shape
    ab = np.ascontiguousarray((ab_small.float() * saturation).numpy(), dtype=np.float32)
    im = Image.new("RGB", (W, H), None)  # not filled: every pixel is pasted
    threads = max(1, threads or torch.get_num_threads())
    pool = ThreadPoolExecutor(threads) if threads > 1 else None
    try:
        for y0, y1, x0, x1 in tiles(H, W):
            tile = np.empty((y1 - y0, x1 - x0, 3), np.uint8)
            jobs = [(y0 + p0, y0 + p1, x0 + q0, x0 + q1) for p0, p1, q0, q1 in tiles(y1 - y0, x1 - x0, PIECE_PIXELS)]
            go = lambda j: _piece(L, ab, H, W, *j, tile[j[0] - y0:j[1] - y0, j[2] - x0:j[3] - x0])  # noqa: E731
            if pool is None:
                for j in jobs:
                    go(j)
            else:
                list(pool.map(go, jobs))
            im.paste(Image.fromarray(tile, "RGB"), (x0, y0))
    finally:
        if pool is not None:
            pool.shutdown()
    if alpha is not None:
        im.putalpha(Image.fromarray(alpha, "L"))
    return im
