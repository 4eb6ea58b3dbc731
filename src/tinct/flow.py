"""Optical flow between video frames: estimate it, warp along it, spot shot changes.

Shared by the temporal smoothing of ``tinct video`` (:mod:`tinct.video`) and the flicker
metric that tunes it (:mod:`tinct.metrics`), so both judge motion the same way. Flow is
OpenCV's DIS on the 8-bit luminance; callers pick its preset.
"""

from __future__ import annotations

import cv2
import numpy as np

CUT_THRESHOLD = 8.0  # mean |L_t - warped L_t-1| (L units) above which frame t starts a new shot


def grey_u8(L: np.ndarray) -> np.ndarray:
    """L in [0, 100] -> uint8 grey image, the input the flow estimator takes."""
    return np.clip(L * 2.55 + 0.5, 0, 255).astype(np.uint8)


def optical_flow(grey: np.ndarray, grey_prev: np.ndarray, dis) -> np.ndarray:
    """Flow ``(H, W, 2)`` from frame t to t-1: pixel x of t was at x + flow(x) in t-1."""
    return dis.calc(grey, grey_prev, None)


def warp(img: np.ndarray, flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Backward warp ``out(x) = img(x + flow(x))`` (bilinear) and where that lies inside ``img``.

    Args:
        img: ``(H, W)`` or ``(H, W, C)`` float32, C <= 4.
        flow: ``(H, W, 2)`` float32 in pixels (x, y).

    Returns:
        the warped image, same shape as ``img``, and a bool ``(H, W)`` inside mask.
    """
    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    mx, my = gx + flow[..., 0], gy + flow[..., 1]
    out = cv2.remap(img, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out, (mx >= 0) & (mx <= w - 1) & (my >= 0) & (my <= h - 1)


def is_shot_change(L: np.ndarray, L_warped: np.ndarray, inside: np.ndarray) -> bool:
    """Frame t starts a new shot: the warped previous frame does not explain it."""
    return inside.mean() < 0.5 or float(np.abs(L - L_warped)[inside].mean()) > CUT_THRESHOLD
