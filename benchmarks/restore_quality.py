"""How well ``tinct.restore`` restores, on photos with seeded synthetic damage: the figures
of docs/RESTORE.md, in one run.

Usage:
    python benchmarks/restore_quality.py --data VAL_PHOTOS [--model DAMAGE_MODEL] [--limit 60]
        [--parts mask,gain,undamaged,colorize,speed,memory] [--json OUT.json]
    python benchmarks/restore_quality.py --data VAL_PHOTOS --gallery docs/images     # the gallery sheets
    python benchmarks/restore_quality.py --data TRAIN_PHOTOS --tune      # how the constants were chosen

Each photo is greyed as the colorizer greys it (``tinct.restore.grey_of``) and damaged by a
``tinct.degrade`` preset seeded by (``--seed``, photo index); the truth is the clean grey.

  * mask: precision and recall of the damaged pixels, pooled over all photos, on
    ``scratches-dust`` (dust, bright and dark scratches, cracks) and ``damage`` (the same plus
    torn corners a quarter of the time); "visible" counts a drawn pixel as damage only when
    it changed by >= 8 grey levels (the training target), "drawn" every pixel the marks cover;
    and the share of pixels flagged on the undamaged photos;
  * PSNR of the restored grey against the clean grey, minus the damaged input's: on
    ``scratches-dust`` (step scratches), ``grain`` (step grain), ``faded`` (step tone);
  * undamaged photos: PSNR of the output against the input (default steps; and all steps);
  * ``colorize`` (``--parts``): the bundled colorizer on the damaged (``damage`` + ``grain``) grey, with and
    without restoring first, PSNR (RGB) against the clean colour photo;
  * ``speed``: seconds to restore a 1 MP photo (median of 3, per step too). Timings on a
    loaded machine are unreliable: the report says how loaded it was (load average);
  * ``memory``: peak RSS (``VmHWM``) and seconds of ``tinct colorize``, ``tinct colorize
    --restore`` and ``tinct restore`` on a generated 24 MP grey JPEG (6000x4000), each in a
    fresh process under ``RLIMIT_AS`` of 8 GB, per backend (``--backends``); the issue's
    bound: ``colorize --restore`` within ``colorize``'s peak.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from tinct import degrade
from tinct.io import find_images, load_image
from tinct.restore import Restorer, grey_of
from tinct.restore import steps as ops

VISIBLE = 0.03  # grey change (0-1) from which a drawn pixel is damage (the recipe's task.min_change)


def psnr(a: np.ndarray, b: np.ndarray, cap: float = 100.0) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return cap if mse == 0 else min(cap, 10 * np.log10(255.0**2 / mse))


def photos(folder: str, limit: int) -> list[tuple[Path, np.ndarray, np.ndarray]]:
    """(path, clean grey uint8, clean RGB uint8) of ``limit`` photos evenly spread over the folder."""
    files = find_images(folder)
    if limit and len(files) > limit:
        files = [files[i] for i in np.linspace(0, len(files) - 1, limit).round().astype(int)]
    out = []
    for f in files:
        photo = load_image(f)
        rgb = np.asarray(Image.open(f).convert("RGB"))
        out.append((f, grey_of(photo), rgb))
    return out


def mask_scores(restorer: Restorer, data, preset: str, seed: int) -> dict:
    counts = {"visible": np.zeros(3), "drawn": np.zeros(3)}
    for i, (_, grey, _) in enumerate(data):
        damaged, drawn = degrade.degrade(grey, preset, [seed, i], return_mask=True)
        _, visible = degrade.degrade(grey, preset, [seed, i], return_mask=True, min_change=VISIBLE)
        pred = restorer.damage_mask(damaged)
        for name, truth in (("visible", visible), ("drawn", drawn)):
            counts[name] += [(pred & truth).sum(), pred.sum(), truth.sum()]
    out = {}
    for name, (tp, pp, ap) in counts.items():
        out[name] = {"precision": tp / max(pp, 1), "recall": tp / max(ap, 1), "damaged_share": ap / sum(g.size for _, g, _ in data)}
    return out


def psnr_gain(restorer: Restorer, data, preset: str, seed: int) -> dict:
    gains, before, after = [], [], []
    for i, (_, grey, _) in enumerate(data):
        damaged = degrade.degrade(grey, preset, [seed, i])
        restored = restorer.restore_grey(damaged)
        before.append(psnr(damaged, grey))
        after.append(psnr(restored, grey))
        gains.append(after[-1] - before[-1])
    return {"steps": list(restorer.steps), "gain_db_mean": statistics.fmean(gains), "gain_db_median": statistics.median(gains),
            "gain_db_p10": float(np.percentile(gains, 10)), "input_db": statistics.fmean(before),
            "restored_db": statistics.fmean(after)}


def undamaged(restorer: Restorer, data) -> dict:
    values, flagged, se, pixels = [], 0, 0.0, 0
    for _, grey, _ in data:
        out = restorer.restore_grey(grey)
        values.append(psnr(out, grey))
        se += float(((out.astype(np.float64) - grey) ** 2).sum())
        if "scratches" in restorer.steps:
            flagged += int(restorer.damage_mask(grey).sum())
        pixels += grey.size
    out = {"steps": list(restorer.steps), "psnr_db_median": statistics.median(values), "psnr_db_min": min(values),
           "psnr_db_p10": float(np.percentile(values, 10)), "share_at_least_40db": float(np.mean(np.array(values) >= 40)),
           "psnr_db_pooled": 100.0 if se == 0 else float(10 * np.log10(255.0**2 / (se / pixels)))}  # one MSE over all pixels
    if "scratches" in restorer.steps:
        out["flagged_share"] = flagged / pixels
    return out


def colorize_gain(restorer: Restorer, data, seed: int) -> dict:
    from tinct import Colorizer

    colorizer = Colorizer.load("default")
    steps = (degrade.Step("grain"), *degrade.PRESETS["damage"])
    plain, restored = [], []
    for i, (_, grey, rgb) in enumerate(data):
        damaged = degrade.degrade(grey, steps, [seed, i])
        a = np.asarray(colorizer.colorize(Image.fromarray(damaged, "L")).convert("RGB"))
        b = np.asarray(colorizer.colorize(Image.fromarray(restorer.restore_grey(damaged), "L")).convert("RGB"))
        plain.append(psnr(a, rgb))
        restored.append(psnr(b, rgb))
    gains = np.array(restored) - np.array(plain)
    return {"preset": "grain + damage", "colorize_db": statistics.fmean(plain), "colorize_restore_db": statistics.fmean(restored),
            "gain_db_mean": float(gains.mean()), "gain_db_median": float(np.median(gains))}


def speed(restorer: Restorer, data) -> dict:
    grey = np.asarray(Image.fromarray(data[0][1]).resize((1152, 864), Image.BICUBIC))
    damaged = degrade.degrade(grey, (degrade.Step("grain"), *degrade.PRESETS["damage"]), 0)
    mask = restorer.damage_mask(damaged)
    parts = {"total": lambda: restorer.restore_grey(damaged), "mask": lambda: restorer.damage_mask(damaged),
             "inpaint": lambda: ops.inpaint(damaged, mask), "grain": lambda: ops.denoise(damaged),
             "tone": lambda: ops.correct_tone(damaged)}
    out = {"pixels": grey.size, "load_average": os.getloadavg()[0], "cores": os.cpu_count()}
    for name, fn in parts.items():
        fn()
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        out[f"{name}_s"] = statistics.median(times)
    return out


CHILD = ("import sys\nfrom tinct.cli import main\nrc = main(sys.argv[1:])\n"
         "hwm = [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')]\n"
         "print('PEAK_RSS_KB', hwm[0], file=sys.stderr)\nsys.exit(rc)\n")


def memory(backends: list[str], limit_gb: float = 8.0) -> dict:
    """Peak RSS of the three commands on a 24 MP photo, fresh processes (see the module's doc)."""
    import re
    import resource
    import subprocess
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="tinct-restore-mem-"))
    rng = np.random.default_rng(2)
    y, x = np.mgrid[0:4000, 0:6000].astype(np.float32)
    grey = 128 + 60 * np.sin(x / 300) * np.cos(y / 250) + rng.normal(0, 6, (4000, 6000))
    big = folder / "p24.jpg"
    Image.fromarray(np.clip(grey, 0, 255).astype(np.uint8)).save(big, quality=92)
    del y, x, grey

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (int(limit_gb * 1e9),) * 2)

    out = {"photo": "6000x4000 grey JPEG", "load_average": os.getloadavg()[0]}
    for backend in backends:
        for name, args in (("colorize", ["colorize", str(big)]), ("colorize --restore", ["colorize", str(big), "--restore"]),
                           ("restore", ["restore", str(big)])):
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, "-c", CHILD, *args, "-o", str(folder / "out.png"), "-q", "--overwrite",
                                   "--backend", backend], capture_output=True, text=True, preexec_fn=limit)
            seconds = time.perf_counter() - t0
            peak = re.search(r"PEAK_RSS_KB (\d+)", proc.stderr)
            if proc.returncode != 0 or not peak:
                raise SystemExit(f"tinct {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
            out[f"{name}, {backend}"] = {"peak_mb": int(peak.group(1)) / 1024, "seconds": seconds}
    for f in folder.iterdir():
        f.unlink()
    folder.rmdir()
    return out


def tune(data, seed: int) -> dict:
    """The grain strength and the tone trigger, on (training) photos: the constants of tinct.restore.steps."""
    out = {"grain": {}, "tone": {}}
    for h in (0.8, 1.0, 1.3, 1.6, 2.0):
        gains, clean = [], []
        for i, (_, grey, _) in enumerate(data):
            noisy = degrade.degrade(grey, "grain", [seed, i])
            gains.append(psnr(ops.denoise(noisy, strength=h), grey) - psnr(noisy, grey))
            clean.append(psnr(ops.denoise(grey, strength=h), grey))
        out["grain"][h] = {"gain_db_mean": statistics.fmean(gains), "clean_share_at_least_40db": float(np.mean(np.array(clean) >= 40))}
    for i, (_, grey, _) in enumerate(data):
        out["tone"].setdefault("clean_range", []).append(ops.tone_range(grey))
        out["tone"].setdefault("faded_range", []).append(ops.tone_range(degrade.degrade(grey, "faded", [seed, i])))
    for k in ("clean_range", "faded_range"):
        r = np.array(out["tone"][k])
        out["tone"][k] = {"lo_p10_p50_p90": np.percentile(r[:, 0], [10, 50, 90]).tolist(),
                          "hi_p10_p50_p90": np.percentile(r[:, 1], [10, 50, 90]).tolist(),
                          "triggered": float(np.mean((r[:, 0] >= ops.TONE_BLACK) & (r[:, 1] <= ops.TONE_WHITE)))}
    return out


def gallery(restorer: Restorer, data, seed: int, out: Path, picks: list[int], width: int = 150) -> None:
    """docs/images/restore-*.png: rows of (damaged | found damage in red | restored | clean) grey,
    and (colorized | colorized after restoring | original) colour, for photos ``picks``."""
    from tinct import Colorizer

    colorizer = Colorizer.load("default")
    steps = (degrade.Step("grain"), *degrade.PRESETS["damage"])
    grey_rows, colour_rows = [], []

    def small(a: np.ndarray) -> Image.Image:
        im = Image.fromarray(a)
        return im.resize((width, round(im.height * width / im.width)), Image.LANCZOS)

    for i in picks:
        _, grey, rgb = data[i]
        damaged = degrade.degrade(grey, steps, [seed, i])
        mask = restorer.damage_mask(damaged)
        shown = np.repeat(damaged[..., None], 3, -1)
        shown[mask] = (230, 30, 30)
        restored = restorer.restore_grey(damaged)
        grey_rows.append([small(np.repeat(a[..., None], 3, -1)) if a.ndim == 2 else small(a)
                          for a in (damaged, shown, restored, grey)])
        colour_rows.append([small(np.asarray(colorizer.colorize(Image.fromarray(a, "L")).convert("RGB")))
                            for a in (damaged, restored)] + [small(rgb)])
    out.mkdir(parents=True, exist_ok=True)
    for name, rows in (("restore-grey.png", grey_rows), ("restore-colour.png", colour_rows)):
        h = sum(r[0].height for r in rows)
        sheet = Image.new("RGB", (width * len(rows[0]), h), "white")
        y = 0
        for r in rows:
            for k, im in enumerate(r):
                sheet.paste(im, (k * width, y))
            y += r[0].height
        sheet.quantize(128, dither=Image.Dither.FLOYDSTEINBERG).save(out / name, optimize=True)  # small enough for docs/


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="colour photos (the validation folder; training photos with --tune)")
    p.add_argument("--model", default="default", help="damage-mask model (default: the bundled one)")
    p.add_argument("--limit", type=int, default=60, help="photos, evenly spread over the folder (default 60)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--parts", default="mask,gain,undamaged", help="comma-separated: mask, gain, undamaged, colorize "
                   "(the colorizer with and without restoring), speed (a 1 MP restoration), memory (24 MP peak RSS); "
                   "default mask,gain,undamaged")
    p.add_argument("--backends", default="onnx,torch", help="backends of the memory part (default onnx,torch)")
    p.add_argument("--tune", action="store_true", help="only sweep the grain strength and read the tone ranges")
    p.add_argument("--json", default=None, help="write the results here too")
    p.add_argument("--gallery", default=None, metavar="DIR", help="only write the gallery sheets (docs/images) for --picks")
    p.add_argument("--picks", type=int, nargs="+", default=[3, 17, 40], help="photo indices of the gallery")
    args = p.parse_args(argv)
    data = photos(args.data, args.limit)
    print(f"{len(data)} photos from {args.data}", file=sys.stderr)
    if args.gallery:
        gallery(Restorer.load(args.model), data, args.seed, Path(args.gallery), args.picks)
        return 0
    if args.tune:
        result = {"tune": tune(data, args.seed)}
    else:
        parts = set(args.parts.split(","))
        only = {s: Restorer.load(args.model, s) for s in ("scratches", "grain", "tone")}
        default = Restorer.load(args.model)
        result = {"photos": len(data), "data": args.data, "model": str(args.model), "seed": args.seed}
        if "mask" in parts:
            result["mask"] = {pre: mask_scores(only["scratches"], data, pre, args.seed) for pre in ("scratches-dust", "damage")}
        if "gain" in parts:
            result["gain"] = {"scratches-dust": psnr_gain(only["scratches"], data, "scratches-dust", args.seed),
                              "scratches-dust (default steps)": psnr_gain(default, data, "scratches-dust", args.seed),
                              "grain": psnr_gain(only["grain"], data, "grain", args.seed),
                              "grain (default steps)": psnr_gain(default, data, "grain", args.seed),
                              "faded": psnr_gain(only["tone"], data, "faded", args.seed)}
        if "undamaged" in parts:
            result["undamaged"] = {"default steps": undamaged(default, data),
                                   "all steps": undamaged(Restorer.load(args.model, "all"), data)}
        if "colorize" in parts:
            result["colorize"] = colorize_gain(default, data, args.seed)
        if "speed" in parts:
            result["speed_1mp"] = speed(default, data)
        if "memory" in parts:
            result["memory_24mp"] = memory(args.backends.split(","))
    text = json.dumps(result, indent=2, default=float)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
