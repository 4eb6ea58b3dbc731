"""Peak memory of `tinct colorize` on the inputs of issue 26, each in a fresh child process.

Usage:
    python benchmarks/memory.py [--backend onnx|torch] [--limit-gb 8] [--skip-square]

Each case runs ``python -m tinct colorize`` under ``resource.setrlimit(RLIMIT_AS)`` (so a
case that would run away fails instead of taking the machine) and reports the child's peak
RSS (``os.wait4``'s ``ru_maxrss``), its exit code and the last line it printed. Every case
must either stay under 2.5 GB or be refused with a clear one-line error:

  * ``--size`` 768, 1024, 1536, 2048 on a 1024x768 grey photo (the network's part);
  * a 40,000,000 x 1 grey PNG (39 KB: the thin strip);
  * a 13,416 x 13,416 grey PNG (180 MP, the largest image the pixel limit allows);
  * a 12,000 x 12,000 RGB PNG (144 MP of colour: the decoder's copies).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def make_inputs(folder: Path, square: bool) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    paths = {}
    y, x = np.mgrid[0:768, 0:1024]
    photo = (128 + 60 * np.sin(x / 37) * np.cos(y / 23) + rng.normal(0, 8, x.shape)).clip(0, 255).astype(np.uint8)
    paths["photo"] = folder / "photo_1024x768.png"
    Image.fromarray(photo, "L").save(paths["photo"])
    paths["strip"] = folder / "strip_40000000x1.png"
    Image.fromarray((np.arange(40_000_000) % 251).astype(np.uint8)[None], "L").save(paths["strip"], compress_level=9)
    if square:
        side = 13_416
        row = (np.arange(side) % 256).astype(np.uint8)
        paths["square180"] = folder / "square_180MP.png"
        Image.fromarray(np.broadcast_to(row, (side, side)), "L").save(paths["square180"], compress_level=1)
        side = 12_000
        rgb = np.stack([np.broadcast_to((np.arange(side) % 256).astype(np.uint8), (side, side))] * 3, -1)
        paths["rgb144"] = folder / "rgb_144MP.png"
        Image.fromarray(rgb, "RGB").save(paths["rgb144"], compress_level=1)
        del rgb
    return paths


def run(args: list[str], limit_bytes: int) -> tuple[float, int, str, float]:
    """(peak RSS in GB, exit code, last stderr line, seconds) of ``python -m tinct ARGS``."""
    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))

    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "tinct", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            preexec_fn=limit, env=env, text=True)
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    lines = [line for line in err.strip().splitlines() if line.strip()]
    failed = [line for line in lines if line.startswith(("failed ", "tinct: error"))]
    last = (failed or lines or [""])[-1]
    return usage.ru_maxrss * 1024 / 1e9, proc.returncode, last[:200], time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", default="onnx", choices=["onnx", "torch"])
    p.add_argument("--limit-gb", type=float, default=8.0, help="RLIMIT_AS of each child (default 8 GB)")
    p.add_argument("--skip-square", action="store_true", help="leave out the 180 MP and 144 MP cases (slow to make)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        paths = make_inputs(folder, not args.skip_square)
        cases = [(f"1024x768 --size {n}", paths["photo"], ["--size", str(n)]) for n in (768, 1024, 1536, 2048)]
        cases.append(("40,000,000 x 1 PNG", paths["strip"], []))
        if not args.skip_square:
            cases += [("13,416 x 13,416 grey PNG (180 MP)", paths["square180"], []),
                      ("12,000 x 12,000 RGB PNG (144 MP)", paths["rgb144"], [])]
        print(f"| case ({args.backend}) | peak RSS | exit | seconds | last line |\n|---|---|---|---|---|")
        for label, src, extra in cases:
            out = folder / "out"
            gb, code, last, sec = run(["colorize", str(src), "-o", str(out), "--overwrite", "-q",
                                       "--backend", args.backend, *extra], int(args.limit_gb * 1e9))
            last = last.replace(str(folder) + "/", "")
            print(f"| {label} | {gb:.2f} GB | {code} | {sec:.1f} | {last} |", flush=True)


if __name__ == "__main__":
    main()
