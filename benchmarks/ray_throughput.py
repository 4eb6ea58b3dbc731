"""`tinct colorize --ray` against the plain command, in one run: the figures in docs/SCALE.md.

Usage:
    python benchmarks/ray_throughput.py [--photos 200] [--side 1152x864] [--small 10000] [--cpus 2]
                                        [--rounds 3] [--plain-src ../main/src] [--model default] [--keep DIR]

Measures, each command in a fresh process (``python -m tinct colorize``), same photos, same CPUs:
  * plain: the single-machine command (``--workers 2`` I/O threads, the network on ``--cpus``
    threads), wall time and photos/s; with ``--plain-src`` also the same command from another
    source tree (e.g. main before this change), for "the single-machine path gets no slower";
  * ray: ``--ray --ray-cpus N`` (a local instance of N CPUs, its default workers: one of N
    CPUs, loading the model once; ``--ray-args`` adds options), wall time, the local instance's
    start-up (the command's "Ray started in" line), photos/s with and without that start-up,
    the ratio to plain, and the driver's peak RSS (the command's own process: VmHWM; Ray's
    raylet and workers are other processes);
  * ``--rounds``: plain and ray alternate that many times, plain first in even rounds and Ray
    first in odd ones (the machine's speed drifts by several percent over minutes); each
    round's ratio is printed, then their median and range;
  * small: ``--small`` tiny photos (64x64 by default) through ``--ray``, the driver's peak
    RSS at 1,000 photos and at all of them (does the driver grow with the photo count?).
Photos are generated (gradients plus noise) into a temporary folder under /tmp.
The plain command runs under RLIMIT_AS (``--limit-gb``); Ray's processes reserve large virtual
areas, so the Ray runs are not limited that way.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
# Runs tinct's CLI, then reports this process's peak RSS (VmHWM) on stderr.
CHILD = ("import sys\nfrom tinct.cli import main\nrc = main(sys.argv[1:])\n"
         "hwm = [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')]\n"
         "print('PEAK_RSS_KB', hwm[0] if hwm else __import__('resource').getrusage(0).ru_maxrss, file=sys.stderr)\n"
         "sys.exit(rc)\n")


def photo(w: int, h: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    y = np.linspace(0, 1, h, dtype=np.float32)[:, None]
    x = np.linspace(0, 1, w, dtype=np.float32)[None, :]
    g = 0.5 + 0.3 * np.sin((6 + seed % 5) * x + 3 * y) * np.cos(4 * y) + rng.normal(0, 0.03, (h, w)).astype(np.float32)
    return Image.fromarray((np.clip(g, 0, 1) * 255).astype(np.uint8), "L")


def make_photos(folder: Path, n: int, w: int, h: int, fmt: str = "jpg") -> None:
    folder.mkdir(parents=True)
    for i in range(n):
        photo(w, h, i).save(folder / f"p{i:05d}.{fmt}")


def run_cli(args: list[str], cpus: int, src_path: Path, limit_gb: float | None) -> dict:
    """One ``tinct`` command in a fresh process: wall seconds, exit code, peak RSS, stderr."""
    env = dict(os.environ, PYTHONPATH=str(src_path), OMP_NUM_THREADS=str(cpus))

    def limit():
        os.nice(max(0, 10 - os.nice(0)))  # at niceness 10, beside the machine's other work
        if limit_gb:
            resource.setrlimit(resource.RLIMIT_AS, (int(limit_gb * 1e9),) * 2)

    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CHILD, *args], env=env, capture_output=True, text=True,
                          preexec_fn=limit)
    wall = time.perf_counter() - t0
    peak = re.search(r"PEAK_RSS_KB (\d+)", proc.stderr)
    started = re.search(r"Ray started in ([\d.]+) s", proc.stderr)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return {"wall": wall, "rss_mb": int(peak.group(1)) / 1024 if peak else float("nan"),
            "startup": float(started.group(1)) if started else 0.0, "stderr": proc.stderr}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--photos", type=int, default=200, help="photos of --side for the throughput runs (default 200)")
    p.add_argument("--side", default="1152x864", help="their size, WxH (default 1152x864: 1 MP)")
    p.add_argument("--small", type=int, default=10_000, help="tiny photos for the driver-memory run (0: skip)")
    p.add_argument("--small-side", type=int, default=64, help="their side (default 64)")
    p.add_argument("--cpus", type=int, default=2, help="CPUs for both: network threads / Ray CPUs and workers (2)")
    p.add_argument("--model", default="default", help="model (default: the bundled default)")
    p.add_argument("--rounds", type=int, default=3, help="plain and ray runs, alternating (default 3)")
    p.add_argument("--ray-args", default="", help="more options for the ray runs, e.g. '--workers 2'")
    p.add_argument("--plain-src", type=Path, default=None, help="also time the plain command from this src/ tree")
    p.add_argument("--limit-gb", type=float, default=8.0, help="RLIMIT_AS of the plain command (default 8)")
    p.add_argument("--keep", type=Path, default=None, help="make the photos here and keep them (default: a temp dir)")
    args = p.parse_args()
    w, h = (int(v) for v in args.side.lower().split("x"))
    base = args.keep or Path(tempfile.mkdtemp(prefix="tinct-ray-bench-", dir="/tmp"))
    src = ROOT / "src"
    big = base / "big"
    if not big.exists():
        make_photos(big, args.photos, w, h)
    common = ["--model", args.model, "--format", "png"]
    ray = ["--ray", "--ray-cpus", str(args.cpus), *args.ray_args.split()]
    n = args.photos
    print(f"{n} photos of {w}x{h} ({w * h / 1e6:.2f} MP), {args.cpus} CPUs, model {args.model}; "
          f"this machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start")

    rows, ratios = [], []
    for i in range(args.rounds):
        for folder in base.glob("out-*"):
            shutil.rmtree(folder)
        runs = {}
        # Even rounds run plain first, odd rounds Ray first (ABBA): a drift of the machine's
        # speed over the minutes of a round then weighs on both alike.
        for name in ("plain", "ray") if i % 2 == 0 else ("ray", "plain"):
            if name == "plain":
                runs[name] = run_cli(["colorize", str(big), "-o", str(base / "out-plain"), "-q", *common], args.cpus,
                                     src, args.limit_gb)
            else:
                runs[name] = run_cli(["colorize", str(big), "-o", str(base / "out-ray"), *common, *ray], args.cpus,
                                     src, None)
        if args.plain_src:
            before = run_cli(["colorize", str(big), "-o", str(base / "out-before"), "-q", *common], args.cpus,
                             args.plain_src.resolve(), args.limit_gb)
            rows.append((i, "plain (--plain-src)", before))
        plain, on_ray = runs["plain"], runs["ray"]
        rows += [(i, "plain (this tree)", plain), (i, "ray", on_ray)]
        steady = n / (on_ray["wall"] - on_ray["startup"])
        ratios.append((plain["wall"] / on_ray["wall"], steady / (n / plain["wall"]),
                       before["wall"] / plain["wall"] if args.plain_src else float("nan")))
        diff = max_difference(base / "out-plain", base / "out-ray")

    print("\n| round | run | wall s | photos/s | driver peak RSS MB | Ray start-up s |\n|---|---|---|---|---|---|")
    for i, name, r in rows:
        startup = f"{r['startup']:.1f}" if name == "ray" else "-"
        print(f"| {i + 1} | {name} | {r['wall']:.1f} | {n / r['wall']:.3f} | {r['rss_mb']:.0f} | {startup} |")
    print("\n| round | ray / plain, with start-up | without start-up | plain this tree / --plain-src |\n|---|---|---|---|")
    for i, (whole, steady, same) in enumerate(ratios):
        print(f"| {i + 1} | {whole:.1%} | {steady:.1%} | {same:.1%} |")
    for k, what in enumerate(["with the local instance's start-up", "without it", "plain this tree / --plain-src"]):
        if k == 2 and not args.plain_src:
            continue
        got = sorted(r[k] for r in ratios)
        print(f"{what}: median {statistics.median(got):.1%}, range {got[0]:.1%} - {got[-1]:.1%}"
              + ("" if k == 2 else " (target >= 85%)"))
    print(f"largest pixel difference ray vs plain (last round): {diff} (8-bit steps)")

    if args.small:
        small = base / "small"
        if not small.exists():
            make_photos(small, args.small, args.small_side, args.small_side, fmt="png")
        first = base / "small-1000"
        if not first.exists():
            first.mkdir()
            for f in sorted(small.iterdir())[:1000]:
                os.link(f, first / f.name)
        print(f"\n| tiny photos ({args.small_side}x{args.small_side}) | wall s | photos/s | driver peak RSS MB |"
              "\n|---|---|---|---|")
        for folder, count in ((first, min(1000, args.small)), (small, args.small)):
            r = run_cli(["colorize", str(folder), "-o", str(base / f"out-{folder.name}"), *common, *ray],
                        args.cpus, src, None)
            print(f"| {count} | {r['wall']:.1f} | {count / (r['wall'] - r['startup']):.1f} | {r['rss_mb']:.0f} |")
    if args.keep:
        print(f"\nphotos and outputs in {base}")
    else:
        shutil.rmtree(base, ignore_errors=True)


def max_difference(a: Path, b: Path) -> int:
    worst = 0
    for f in sorted(a.glob("*.png")):
        x = np.asarray(Image.open(f)).astype(np.int16)
        y = np.asarray(Image.open(b / f.name)).astype(np.int16)
        worst = max(worst, int(np.abs(x - y).max()))
    return worst


if __name__ == "__main__":
    main()
