"""``tinct calibrate``: choose a model's decoding on validation photos and write it into
the checkpoint.

    tinct calibrate runs/x/last.pt --data photos/val --sizes 160 192 --flip 0 1 \\
        --scales 1 0.8,1.4 --gains 1.0 1.13 --prior-powers 0 0.3 --out my_model.safetensors

Each photo is resized (short side ``--crop``) and centre-cropped, made grey, colorized
with every combination of the options (working size, multi-scale set, flip averaging,
annealed-mean temperature, prior power, chroma gain) and compared with the original. The
network runs once per photo for each (size, flip, scales); the decodings that follow share
its output. One row per setting is printed (PSNR, SSIM, AUC, colourfulness and its
distance to the originals', CIEDE2000, the median hue variety and median chroma over the
photos, and with ``--top1`` the semantic agreement). The chosen setting is the one with the
highest ``--maximize`` (PSNR, or median variety) among those whose mean colourfulness is
within ``--max-dcf`` of the originals' and, with ``--max-chroma-gap``, whose median chroma
is within that fraction of the originals'; with none, the closest in colourfulness.
``--out`` writes the model with that decoding as its defaults (``meta``: size, temperature,
flip, scales, chroma_gain, prior_power with ab_prior, and ``calibration``, how they were
chosen). Run it on validation photos, never on training photos.

A prior power needs the training photos' ab prior: the model's own (``meta["ab_prior"]``),
or estimated from ``--prior-data`` (the training photos, as training estimates it:
``tinct.tasks.estimate_prior`` over their centre squares at ``--prior-side`` pixels).
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from . import checkpoint, metrics
from .color import neutral_from_l
from .colorizer import Colorizer, resolve_model_path
from .evaluate import image_metrics, load_truth, truth_stats
from .io import find_images


@dataclass(frozen=True)
class Decoding:
    """One decoding setting, as a checkpoint's meta stores it."""

    size: int
    temperature: float
    flip: bool
    scales: tuple[float, ...]
    chroma_gain: float
    prior_power: float = 0.0


def settings(sizes, temperatures, flips, scale_sets, gains, prior_powers=(0.0,)) -> list[Decoding]:
    return [Decoding(int(s), float(t), bool(f), tuple(float(v) for v in sc), float(g), float(a))
            for s, t, f, sc, a, g in itertools.product(sizes, temperatures, flips, scale_sets, prior_powers, gains)]


# calibrate's row name -> the per-image metric of tinct evaluate it averages
ROW_METRICS = {"psnr": "psnr", "ssim": "ssim", "auc": "auc_ab", "cf": "cf", "de00": "ciede2000"}
# ... and the ones it takes the median of over the photos (the wash shows in medians)
ROW_MEDIANS = {"variety": "variety", "chroma": "chroma"}


def sweep(col: Colorizer, truths: list[np.ndarray], grid: list[Decoding], probe=None) -> list[dict]:
    """Metrics of every setting in ``grid`` on the ``truths`` (float RGB), one dict each:
    the means (and for variety and chroma the medians) of ``tinct evaluate``'s per-image
    metrics (``evaluate.image_metrics``). The network runs once per photo and
    (size, flip, scales); the settings that differ only in decoding reuse its output."""
    Ls = [col.luminance(t) for t in truths]
    gts = [truth_stats(t) for t in truths]
    top1_truth = probe.top1(truths) if probe is not None else None
    values: dict[Decoding, list[dict]] = {d: [] for d in grid}
    outs: dict[Decoding, list[np.ndarray]] = {d: [] for d in grid}
    groups: dict[tuple, list[Decoding]] = {}
    for d in grid:
        groups.setdefault((d.size, d.flip, d.scales), []).append(d)
    for (size, flip, scales), members in groups.items():
        col.flip, col.scales = flip, scales
        for L, truth, gt in zip(Ls, truths, gts):
            raw = col.predict_raw_averaged([L], size, 1)[0]
            for d in members:
                col.chroma_gain, col.prior_power = d.chroma_gain, d.prior_power
                ab = col.decode(raw[None], d.temperature)[0]
                out = np.asarray(col.render(L, ab), dtype=np.float32) / 255.0
                values[d].append(image_metrics(out, truth, gt))
                if probe is not None:
                    outs[d].append(out)
    rows = []
    for d in grid:
        v = values[d]
        row = asdict(d) | {name: float(np.mean([x[key] for x in v])) for name, key in ROW_METRICS.items()}
        row |= {name: float(np.median([x[key] for x in v])) for name, key in ROW_MEDIANS.items()}
        if probe is not None:
            row["top1"] = float((probe.top1(outs[d]) == top1_truth).mean())
        rows.append(row)
    return rows


HEADER = "size  T     flip scales     gain  prior PSNR    SSIM    AUC     CF      |dCF|  dE00   variety chroma"


def format_row(r: dict) -> str:
    top1 = f"  {r['top1']:.3f}" if "top1" in r else ""
    return (f"{r['size']:<5} {r['temperature']:<5.2f} {int(r['flip']):<4} {','.join(f'{v:g}' for v in r['scales']):<10} "
            f"{r['chroma_gain']:<5.2f} {r['prior_power']:<5.2f} {r['psnr']:.3f}  {r['ssim']:.4f}  {r['auc']:.4f}  "
            f"{r['cf']:6.2f}  {r.get('dcf', float('nan')):5.2f}  {r['de00']:5.2f}  {r['variety']:.4f}  {r['chroma']:6.2f}{top1}")


def choose(rows: list[dict], cf_truth: float, max_dcf: float, chroma_truth: float | None = None,
           max_chroma_gap: float | None = None, maximize: str = "psnr") -> dict:
    """The row with the highest ``maximize`` (``"psnr"`` or ``"variety"``) among those with
    |CF - CF(originals)| <= ``max_dcf`` and, when ``max_chroma_gap`` is given, a median
    chroma within that fraction of ``chroma_truth`` (the originals' median); with no row
    that close, the closest in CF."""
    if maximize not in ("psnr", "variety"):
        raise ValueError(f"maximize: choose psnr or variety, got {maximize!r}")
    for r in rows:
        r["dcf"] = abs(r["cf"] - cf_truth)
    close = [r for r in rows if r["dcf"] <= max_dcf
             and (max_chroma_gap is None or abs(r["chroma"] - chroma_truth) <= max_chroma_gap * chroma_truth)]
    return max(close, key=lambda r: r[maximize]) if close else min(rows, key=lambda r: r["dcf"])


def estimate_ab_prior(folder: str | Path, kind: str, side: int = 144, n_images: int = 2000) -> np.ndarray:
    """The decoding prior (``tinct.decode.decoding_prior``) of the photos in ``folder``,
    from their bin counts as training estimates them (``tasks.estimate_prior``, seed 0)."""
    from .data import PhotoCrops
    from .decode import decoding_prior
    from .tasks import estimate_prior

    files = find_images(folder)
    if not files:
        raise FileNotFoundError(f"{folder}: no photos found for the ab prior")
    return decoding_prior(estimate_prior(PhotoCrops(files, side, side), kind, n_images), kind)


def write(model_path: str | Path, out: str | Path, chosen: dict, info: dict, ab_prior: np.ndarray | None = None) -> dict:
    """Save the model of ``model_path`` (a checkpoint, run folder or bundled name) at ``out``
    with the chosen decoding as its defaults (and ``ab_prior``, when the prior power needs it)."""
    model, meta = checkpoint.load_model(resolve_model_path(model_path))
    meta = dict(meta) | {k: chosen[k] for k in ("size", "temperature", "flip", "chroma_gain", "prior_power")}
    meta["scales"] = list(chosen["scales"])
    if ab_prior is not None:
        meta["ab_prior"] = [float(f"{v:.6g}") for v in ab_prior]
    meta["calibration"] = info | {"chosen": {k: v for k, v in chosen.items() if k not in ("size", "scales")}}
    checkpoint.save(out, model, meta)
    return meta


def run(model: str, data: str, crop: int = 256, limit: int | None = None, sizes=None, temperatures=None, flips=None,
        scale_sets=None, gains=None, max_dcf: float = 5.0, top1: bool = False, out: str | None = None, echo=print,
        prior_powers=None, prior_data: str | None = None, prior_side: int = 144, max_chroma_gap: float | None = None,
        maximize: str = "psnr") -> dict:
    """What ``tinct calibrate`` does; options left as None keep the model's own value. Returns the chosen row.

    Raises:
        FileNotFoundError: no photos; a prior power is asked for and neither the model nor
            ``prior_data`` gives the prior.
    """
    if out and resolve_model_path(model).suffix == ".onnx":
        raise checkpoint.CheckpointError(f"{model}: an ONNX file cannot be rewritten; calibrate its tinct checkpoint and export that")
    photos = find_images(data)
    if not photos:
        raise FileNotFoundError(f"{data}: no photos found")
    if limit and limit < len(photos):
        photos = photos[:: len(photos) // limit][:limit]  # spread over every sub-folder
    col = Colorizer.load(model)
    ab_prior = None
    if prior_data:
        if not col.spec.is_bins:
            raise FileNotFoundError(f"--prior-data: {model} is not a bin model; the prior correction needs one")
        ab_prior = estimate_ab_prior(prior_data, col.spec.bins, prior_side)
        col.log_prior = torch.from_numpy(np.log(ab_prior)).float()
    elif any(prior_powers or ()) and col.log_prior is None:
        raise FileNotFoundError(f"{model} carries no ab prior: give the training photos with --prior-data")
    grid = settings(sizes or [col.size], temperatures or [col.temperature], flips or [col.flip],
                    scale_sets or [col.scales], gains or [col.chroma_gain], prior_powers or [col.prior_power])
    truths = [load_truth(p, crop) for p in photos]
    cf_truth = float(np.mean([metrics.colourfulness(t) for t in truths]))
    var_truth = float(np.median([metrics.variety(t) for t in truths]))
    chroma_truth = float(np.median([metrics.chroma(t) for t in truths]))
    grey = [neutral_from_l(col.luminance(t).numpy()) for t in truths]
    g = np.array([(metrics.psnr(x, t), metrics.auc_ab(x, t)) for x, t in zip(grey, truths)]).mean(0)
    echo(f"{len(photos)} photos of {data} at {crop}x{crop}; originals: CF {cf_truth:.2f}, median variety {var_truth:.4f}, "
         f"median chroma {chroma_truth:.2f}; grey: PSNR {g[0]:.3f}, AUC {g[1]:.4f}")
    echo(HEADER + ("   top-1" if top1 else ""))
    probe = metrics.EfficientNetProbe() if top1 else None
    rows = sweep(col, truths, grid, probe)
    chosen = choose(rows, cf_truth, max_dcf, chroma_truth, max_chroma_gap, maximize)
    for r in rows:
        echo(format_row(r) + ("   <- chosen" if r is chosen else ""))
    if out:
        rule = f"highest {'PSNR' if maximize == 'psnr' else 'median variety'} with |CF - CF(originals)| <= {max_dcf}"
        if max_chroma_gap is not None:
            rule += f" and median chroma within {max_chroma_gap:.0%} of the originals'"
        info = {"data": str(data), "photos": len(photos), "crop": crop, "cf_originals": round(cf_truth, 3),
                "variety_originals": round(var_truth, 4), "chroma_originals": round(chroma_truth, 3), "rule": rule}
        if ab_prior is not None:
            info["ab_prior_from"] = str(prior_data)
        elif chosen["prior_power"] and col.log_prior is not None:
            ab_prior = col.log_prior.double().exp().numpy()
        write(model, out, chosen, info, ab_prior if chosen["prior_power"] else None)
        echo(f"wrote {out}: size {chosen['size']}, T {chosen['temperature']}, flip {chosen['flip']}, "
             f"scales {list(chosen['scales'])}, chroma gain {chosen['chroma_gain']}, prior power {chosen['prior_power']}")
    return chosen
