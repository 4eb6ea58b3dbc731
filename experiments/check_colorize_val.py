"""Acceptance check for `tinct colorize` on a folder of colour photos (issue 2).

Converts every photo under DATA to an 8-bit grayscale PNG (what a user scans), runs the
real `tinct colorize` command on that folder, then measures each output against its grey
input and its colour original:

    - the output has the input's pixel size;
    - mean |L(output) - L(input)| (CIELAB L, full resolution);
    - Hasler-Susstrunk colourfulness of the outputs (grey gives 0);
    - PSNR and SSIM of the outputs against the colour originals.

Usage:
    python experiments/check_colorize_val.py ../shared/corpus/val [--model default] [--work /tmp/check]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from tinct import color, metrics
from tinct.io import find_images


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path)
    ap.add_argument("--model", default="default")
    ap.add_argument("--work", type=Path, default=Path("/tmp/tinct_check"))
    ap.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more `tinct colorize` options")
    args = ap.parse_args()

    gray_dir, out_dir = args.work / "gray", args.work / "out"
    shutil.rmtree(args.work, ignore_errors=True)
    originals = find_images(args.data)
    for p in originals:
        dst = gray_dir / p.relative_to(args.data).with_suffix(".png")
        dst.parent.mkdir(parents=True, exist_ok=True)
        Image.open(p).convert("L").save(dst)  # Pillow's luma grey, as a scanner writes it

    cmd = ["tinct", "colorize", str(gray_dir), "-r", "-o", str(out_dir), "-q", "--model", args.model, *args.extra]
    t0 = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.time() - t0
    if proc.returncode != 0:
        sys.exit(f"tinct colorize failed ({proc.returncode}):\n{proc.stderr}")

    rows = []
    for p in originals:
        rel = p.relative_to(args.data).with_suffix(".png")
        gray = np.asarray(Image.open(gray_dir / rel).convert("RGB"), np.float32) / 255
        out_im = Image.open(out_dir / rel)
        out = np.asarray(out_im.convert("RGB"), np.float32) / 255
        truth = np.asarray(Image.open(p).convert("RGB"), np.float32) / 255
        rows.append({
            "same_size": out_im.size == Image.open(p).size,
            "dL": float(np.abs(color.rgb_to_lab(out)[..., 0] - color.rgb_to_lab(gray)[..., 0]).mean()),
            "cf": metrics.colourfulness(out),
            "cf_truth": metrics.colourfulness(truth),
            "psnr": metrics.psnr(out, truth),
            "ssim": metrics.ssim(out, truth),
            "psnr_gray": metrics.psnr(gray, truth),
            "ssim_gray": metrics.ssim(gray, truth),
        })
    mean = lambda k: float(np.mean([r[k] for r in rows]))  # noqa: E731
    summary = {
        "photos": len(rows),
        "all_same_size": all(r["same_size"] for r in rows),
        "mean_abs_dL": mean("dL"),
        "max_photo_mean_abs_dL": max(r["dL"] for r in rows),
        "mean_cf_outputs": mean("cf"),
        "mean_cf_originals": mean("cf_truth"),
        "psnr": mean("psnr"),
        "ssim": mean("ssim"),
        "psnr_gray_input": mean("psnr_gray"),
        "ssim_gray_input": mean("ssim_gray"),
        "colorize_seconds": round(seconds, 1),
        "command": " ".join(cmd),
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
