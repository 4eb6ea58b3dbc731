"""``tinct calibrate``: choose a model's decoding on validation photos and write it into
the checkpoint.

    tinct calibrate runs/x/last.pt --data photos/val --sizes 160 192 --flip 0 1 \\
        --scales 1 0.8,1.4 --gains 1.0 1.13 --out my_model.safetensors

Each photo is resized (short side ``--crop``) and centre-cropped, made grey, colorized
with every combination of the options (working size, multi-scale set, flip averaging,
annealed-mean temperature, chroma gain) and compared with the original. One row per
setting is printed (PSNR, SSIM, AUC, colourfulness and its distance to the originals',
CIEDE2000, and with ``--top1`` the semantic agreement). The chosen setting is the most
accurate one (highest PSNR) whose mean colourfulness is within ``--max-dcf`` of the
originals' (the model card's colour target); with none that close, the closest in
colourfulness. ``--out`` writes the model with that decoding as its defaults
(``meta``: size, temperature, flip, scales, chroma_gain, and ``calibration``, how they were
chosen). Run it on validation photos, never on training photos.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from . import checkpoint, metrics
from .color import neutral_from_l
from .colorizer import Colorizer, resolve_model_path
from .evaluate import image_metrics, load_truth
from .io import find_images


@dataclass(frozen=True)
class Decoding:
    """One decoding setting, as a checkpoint's meta stores it."""

    size: int
    temperature: float
    flip: bool
    scales: tuple[float, ...]
    chroma_gain: float


def settings(sizes, temperatures, flips, scale_sets, gains) -> list[Decoding]:
    return [Decoding(int(s), float(t), bool(f), tuple(float(v) for v in sc), float(g))
            for s, t, f, sc, g in itertools.product(sizes, temperatures, flips, scale_sets, gains)]


# calibrate's row name -> the per-image metric of tinct evaluate it averages
ROW_METRICS = {"psnr": "psnr", "ssim": "ssim", "auc": "auc_ab", "cf": "cf", "de00": "ciede2000"}


def sweep(col: Colorizer, truths: list[np.ndarray], grid: list[Decoding], probe=None) -> list[dict]:
    """Metrics of every setting in ``grid`` on the ``truths`` (float RGB), one dict each:
    the means of ``tinct evaluate``'s per-image metrics (``evaluate.image_metrics``)."""
    Ls = [col.luminance(t) for t in truths]
    cf_truths = [metrics.colourfulness(t) for t in truths]
    top1_truth = probe.top1(truths) if probe is not None else None
    rows = []
    for d in grid:
        col.flip, col.scales, col.chroma_gain = d.flip, d.scales, d.chroma_gain
        outs, values = [], []
        for L, truth, cf_truth in zip(Ls, truths, cf_truths):
            ab = col.predict_ab_batched([L], d.size, d.temperature, 1)[0]
            out = np.asarray(col.render(L, ab), dtype=np.float32) / 255.0
            outs.append(out)
            values.append(image_metrics(out, truth, cf_truth))
        row = asdict(d) | {name: float(np.mean([v[key] for v in values])) for name, key in ROW_METRICS.items()}
        if probe is not None:
            row["top1"] = float((probe.top1(outs) == top1_truth).mean())
        rows.append(row)
    return rows


def format_row(r: dict) -> str:
    top1 = f"  {r['top1']:.3f}" if "top1" in r else ""
    return (f"{r['size']:<5} {r['temperature']:<5.2f} {int(r['flip']):<4} {','.join(f'{v:g}' for v in r['scales']):<10} "
            f"{r['chroma_gain']:<5.2f} {r['psnr']:.3f}  {r['ssim']:.4f}  {r['auc']:.4f}  {r['cf']:6.2f}  "
            f"{r.get('dcf', float('nan')):5.2f}  {r['de00']:.2f}{top1}")


def choose(rows: list[dict], cf_truth: float, max_dcf: float) -> dict:
    """The highest-PSNR row with |CF - CF(originals)| <= ``max_dcf``, else the closest in CF."""
    for r in rows:
        r["dcf"] = abs(r["cf"] - cf_truth)
    close = [r for r in rows if r["dcf"] <= max_dcf]
    return max(close, key=lambda r: r["psnr"]) if close else min(rows, key=lambda r: r["dcf"])


def write(model_path: str | Path, out: str | Path, chosen: dict, info: dict) -> dict:
    """Save the model of ``model_path`` (a checkpoint, run folder or bundled name) at ``out``
    with the chosen decoding as its defaults."""
    model, meta = checkpoint.load_model(resolve_model_path(model_path))
    meta = dict(meta) | {k: chosen[k] for k in ("size", "temperature", "flip", "chroma_gain")}
    meta["scales"] = list(chosen["scales"])
    meta["calibration"] = info | {"chosen": {k: v for k, v in chosen.items() if k not in ("size", "scales")}}
    checkpoint.save(out, model, meta)
    return meta


def run(model: str, data: str, crop: int = 256, limit: int | None = None, sizes=None, temperatures=None, flips=None,
        scale_sets=None, gains=None, max_dcf: float = 5.0, top1: bool = False, out: str | None = None, echo=print) -> dict:
    """What ``tinct calibrate`` does; options left as None keep the model's own value. Returns the chosen row."""
    if out and resolve_model_path(model).suffix == ".onnx":
        raise checkpoint.CheckpointError(f"{model}: an ONNX file cannot be rewritten; calibrate its tinct checkpoint and export that")
    photos = find_images(data)
    if not photos:
        raise FileNotFoundError(f"{data}: no photos found")
    if limit and limit < len(photos):
        photos = photos[:: len(photos) // limit][:limit]  # spread over every sub-folder
    col = Colorizer.load(model)
    grid = settings(sizes or [col.size], temperatures or [col.temperature], flips or [col.flip],
                    scale_sets or [col.scales], gains or [col.chroma_gain])
    truths = [load_truth(p, crop) for p in photos]
    cf_truth = float(np.mean([metrics.colourfulness(t) for t in truths]))
    grey = [neutral_from_l(col.luminance(t).numpy()) for t in truths]
    g = np.array([(metrics.psnr(x, t), metrics.auc_ab(x, t)) for x, t in zip(grey, truths)]).mean(0)
    echo(f"{len(photos)} photos of {data} at {crop}x{crop}; originals: CF {cf_truth:.2f}; grey: PSNR {g[0]:.3f}, AUC {g[1]:.4f}")
    echo("size  T     flip scales     gain  PSNR    SSIM    AUC     CF      |dCF|  dE00" + ("   top-1" if top1 else ""))
    probe = metrics.EfficientNetProbe() if top1 else None
    rows = sweep(col, truths, grid, probe)
    chosen = choose(rows, cf_truth, max_dcf)
    for r in rows:
        echo(format_row(r) + ("   <- chosen" if r is chosen else ""))
    if out:
        info = {"data": str(data), "photos": len(photos), "crop": crop, "cf_originals": round(cf_truth, 3),
                "rule": f"highest PSNR with |CF - CF(originals)| <= {max_dcf}"}
        write(model, out, chosen, info)
        echo(f"wrote {out}: size {chosen['size']}, T {chosen['temperature']}, flip {chosen['flip']}, "
             f"scales {list(chosen['scales'])}, chroma gain {chosen['chroma_gain']}")
    return chosen
