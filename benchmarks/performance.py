"""Speed and memory of tinct on this machine, in one run: the table in docs/PERFORMANCE.md.

Usage:
    python benchmarks/performance.py [--repeats 15] [--quick] [--markdown OUT.md]

Measures, with the same thread count throughout:
  * the network alone at the working size of a 1 MP photo, and per-photo latency (PIL image
    in memory -> PIL image) at 256x256, 1 MP and 24 MP, for the bundled default model on each
    backend (torch, onnx) and for the ECCV16 architecture (Zhang et al. 2016; random weights:
    timing only) at the same working size, and the ratios;
  * 1 MP end to end from a JPEG file to an encoded PNG / JPEG file (what `tinct colorize` does);
  * peak RSS of `tinct colorize` on a 24 MP photo, each in a fresh process;
  * folder throughput (images/s) of the batch pipeline, with and without I/O threads;
  * training throughput (img/s at 128x128, batch 32) of the default model;
  * network FLOPs at the working size, and this CPU's measured float32 matmul GFLOP/s.
Photos are generated (smooth gradients plus noise texture), so the run needs no data.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from tinct import Colorizer, checkpoint
from tinct.backends import OnnxBackend, export_onnx
from tinct.batch import colorize_files
from tinct.io import load_image, save_image
from tinct.models import create_model

SIZES = {"256x256": (256, 256), "1 MP": (1152, 864), "24 MP": (6000, 4000)}


def photo(w: int, h: int, seed: int = 0) -> Image.Image:
    """A grey photo-like image: gradients plus fine noise (so JPEG/PNG sizes are realistic)."""
    rng = np.random.default_rng(seed)
    y = np.linspace(0, 1, h, dtype=np.float32)[:, None]
    x = np.linspace(0, 1, w, dtype=np.float32)[None, :]
    g = 0.5 + 0.3 * np.sin(6 * x + 3 * y) * np.cos(4 * y)
    g = g + rng.normal(0, 0.03, (h, w)).astype(np.float32)
    return Image.fromarray((np.clip(g, 0, 1) * 255).astype(np.uint8), "L")


def median_time(fn, repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def eccv16_colorizer(like: Colorizer, backend: str, tmp: Path) -> Colorizer:
    """The ECCV16 network with random weights, decoding like the default model (no flip: one pass)."""
    torch.manual_seed(0)
    model = create_model("zhang_eccv16", pretrained=False).eval()
    meta = {"size": like.size, "temperature": like.temperature, "flip": False}
    if backend == "torch":
        return Colorizer(model, meta)
    path = tmp / "eccv16.onnx"
    if not path.exists():
        export_onnx(model, meta, path)
    net = OnnxBackend(path)
    return Colorizer(None, net.meta, net=net)


def flops(model: torch.nn.Module, shape: tuple[int, int]) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.eval()(torch.zeros(1, 1, *shape))
    return counter.get_total_flops()


def matmul_gflops(n: int = 2048, repeats: int = 10) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    t = median_time(lambda: a @ b, repeats)
    return 2 * n**3 / t / 1e9


def peak_rss_mb(args: list[str]) -> float:
    """Peak RSS of ``tinct ARGS`` run in a fresh process.

    The process reports its own VmHWM from /proc (Linux). Not ru_maxrss: Linux carries that
    across fork and exec, so a child would report this benchmark's own peak.
    """
    code = ("import re, sys\nfrom tinct.cli import main\nrc = main(sys.argv[1:])\n"
            "print('RSS', re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1))\nsys.exit(rc)")
    run = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(run.stderr)
    return int(run.stdout.split("RSS")[-1]) / 1024  # kB -> MB


def training_throughput(steps: int = 6, batch: int = 32) -> float:
    from tinct import data
    from tinct.config import OptimConfig, TaskConfig
    from tinct.tasks import ClassificationTask

    model = create_model("effunet_bins313", pretrained=False)
    task = ClassificationTask(model, TaskConfig(class_weights="rebalance"), OptimConfig(name="adamw", lr=1e-3),
                              steps=100, temperature=0.38, prior=np.full(313, 1 / 313), pixels_per_photo=128 * 128,
                              n_photos=1000)
    task.set_train(True)
    rng = np.random.default_rng(0)
    crops = [torch.from_numpy(rng.integers(0, 256, (3, 128, 128), dtype=np.uint8)) for _ in range(batch)]
    t = median_time(lambda: task.train_step(data.collate(crops)), steps, warmup=2)
    return batch / t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=15, help="timed runs per figure (median reported)")
    ap.add_argument("--quick", action="store_true", help="5 repeats per figure (a smoke run)")
    ap.add_argument("--markdown", metavar="OUT.md", help="also write the tables as Markdown")
    args = ap.parse_args()
    reps = 5 if args.quick else args.repeats
    rows: list[tuple[str, str]] = []
    out = print

    def add(name: str, value: str) -> None:
        rows.append((name, value))
        out(f"{name:<58} {value}", flush=True)

    threads = torch.get_num_threads()
    add("CPU threads (torch and ONNX Runtime)", f"{threads} of {os.cpu_count()} cores")
    add("matmul float32 2048^2 (torch)", f"{matmul_gflops():.1f} GFLOP/s")

    default = {b: Colorizer.load("default", backend=b) for b in ("torch", "onnx")}
    work = default["torch"].working_shape(864, 1152, None)
    passes = 2 if default["torch"].flip else 1
    works = [default["torch"].working_shape(864, 1152, s) for s in default["torch"].working_sizes(None)]
    f_default = sum(flops(default["torch"].model, w) for w in works) * passes
    f_eccv = flops(create_model("zhang_eccv16", pretrained=False), work)
    sizes = " + ".join(f"{h}x{w}" for h, w in works)
    add(f"default model FLOPs at working sizes {sizes} (x{passes}: flip)", f"{f_default / 1e9:.2f} GFLOP")
    add(f"ECCV16 FLOPs at {work[0]}x{work[1]} (one pass)", f"{f_eccv / 1e9:.2f} GFLOP")

    latency: dict[tuple[str, str, str], float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        models = {("default", b): c for b, c in default.items()}
        for b in ("torch", "onnx"):
            models[("ECCV16", b)] = eccv16_colorizer(default["torch"], b, tmp)
        L_small = torch.full((1, 1, *work), 50.0)
        for (name, b), col in models.items():
            latency[("network", name, b)] = median_time(lambda: col.predict_ab(L_small), reps)
            add(f"network only, one scale, at {work[0]}x{work[1]}, {name}, {b}", f"{1000 * latency[('network', name, b)]:.1f} ms")
        for b in ("torch", "onnx"):
            add(f"  ECCV16 / default, network only, {b}",
                f"{latency[('network', 'ECCV16', b)] / latency[('network', 'default', b)]:.1f}x")
        for label, (w, h) in SIZES.items():
            im = photo(w, h)
            for (name, b), col in models.items():
                n = reps if w * h < 5e6 else max(3, reps // 5)
                t = median_time(lambda: col.colorize(im), n, warmup=1)
                latency[(label, name, b)] = t
                add(f"latency {label}, {name}, {b}", f"{1000 * t:.0f} ms")
            for b in ("torch", "onnx"):
                add(f"  ECCV16 / default at {label}, {b}", f"{latency[(label, 'ECCV16', b)] / latency[(label, 'default', b)]:.1f}x")
            add(f"  default torch / onnx at {label}", f"{latency[(label, 'default', 'torch')] / latency[(label, 'default', 'onnx')]:.1f}x")
        del models

        # 1 MP, file to file, as tinct colorize does it (decode, colorize, encode).
        src = tmp / "photo_1mp.jpg"
        photo(*SIZES["1 MP"], seed=1).save(src, quality=92)
        for fmt in ("png", "jpg"):
            for b, col in default.items():
                dst = tmp / f"out.{fmt}"
                t = median_time(lambda: save_image(col.colorize(load_image(src)), dst), reps)
                latency[("1 MP file", fmt, b)] = t
                add(f"1 MP end to end, JPEG file -> {fmt.upper()} file, {b}", f"{1000 * t:.0f} ms")

        # Peak memory, fresh process each.
        big = tmp / "photo_24mp.jpg"
        photo(*SIZES["24 MP"], seed=2).save(big, quality=92)
        for b in ("onnx", "torch"):
            rss = peak_rss_mb(["colorize", str(big), "-o", str(tmp / f"big_{b}.png"), "--backend", b, "-q", "--overwrite"])
            add(f"peak RSS, tinct colorize 24 MP JPEG -> PNG, {b}", f"{rss:.0f} MB")
        rss = peak_rss_mb(["models"])
        add("peak RSS, tinct models (import baseline)", f"{rss:.0f} MB")

        # Folder throughput: 24 JPEGs of 1 MP, the batch pipeline with and without I/O threads.
        folder = tmp / "folder"
        folder.mkdir()
        for i in range(24):
            photo(*SIZES["1 MP"], seed=10 + i).save(folder / f"p{i:02d}.jpg", quality=92)
        jobs = [(p, tmp / "out" / f"{p.stem}.png") for p in sorted(folder.iterdir())]
        for workers, batch in ((1, 1), (2, 4)):
            t0 = time.perf_counter()
            res = colorize_files(default["onnx"], jobs, max_pixels=10**9, workers=workers, batch_size=batch)
            dt = time.perf_counter() - t0
            assert res.done == len(jobs), res.failures
            add(f"folder of 24 x 1 MP JPEG -> PNG, onnx, {workers} I/O thread(s), batch {batch}", f"{len(jobs) / dt:.2f} img/s")

    add("training, default model, 128x128, batch 32 (torch)", f"{training_throughput():.1f} img/s")
    add("weights file", f"{os.path.getsize(checkpoint.__file__.replace('checkpoint.py', 'weights/default.safetensors')) / 1e6:.1f} MB")

    if args.markdown:
        lines = ["| measure | value |", "|---|---|"] + [f"| {k.strip()} | {v} |" for k, v in rows]
        Path(args.markdown).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
