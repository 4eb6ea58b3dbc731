"""``tinct evaluate``: compare colorizers on the same photos, honestly.

    photo -> (optional resize + centre crop) -> ground truth RGB
          -> L only (a neutral grey image of the same L) -> each model -> RGB
          -> metrics against the ground truth -> REPORT_DIR

Every model sees only the grey image and its output is quantised to 8 bits, as a saved
photo would be. Two baselines need no weights: ``gray`` (ab = 0) and ``mean-ab`` (a
constant chroma, :data:`MEAN_AB`, measured on the training corpus rather than on the
photos being evaluated). ``spread:BASE`` is the non-learned colour-hint baseline on
another model's output; with ``--hints``/``--reference`` every model is also evaluated with
colour hints simulated from the truth (:mod:`tinct.hinteval`, docs/GUIDE.md). What a run measured (:class:`tinct.report.Results`) and the report
writers live in :mod:`tinct.report`; the metric definitions in :mod:`tinct.metrics` and
``docs/EVALUATION.md``.

Determinism: photos are processed in sorted path order, the bootstrap has a fixed seed,
and ``metrics.csv`` holds no timings, so the same inputs give a byte-identical
``metrics.csv``. Runtimes (the one number that cannot repeat) go to ``timing.csv``.
"""

from __future__ import annotations

import time
import zlib
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from . import color, hinteval, metrics, report, report_hints
from .io import INPUT_EXTS, ImageError, Photo, find_images, load_image, square, to_pil

# Pixel-weighted mean (a, b) of the tinct training corpus (5834 photos, 671 M pixels,
# D65 CIELAB at the stored resolution), computed with:
#     python experiments/mean_ab.py ../shared/corpus/train
MEAN_AB = (2.7765, 8.6170)
BASELINES = ("gray", "mean-ab")
THUMB_SIDE = 256  # gallery thumbnails: longest side in pixels
MIN_SIDE = 11  # SSIM's Gaussian window needs 11x11 pixels


class UsageError(Exception):
    """The evaluation cannot start: no photos, a missing folder, a model given twice."""


ModelFn = Callable[[Photo], np.ndarray]  # grey Photo -> float RGB (H, W, 3) in [0, 1], 8-bit steps
SPREAD = "spread:"  # spread:BASE, the non-learned hint baseline on BASE's output (tinct.hinteval.SpreadModel)


# ----------------------------------------------------------------- inputs
def load_truth(path: Path, crop: int | None = None) -> np.ndarray:
    """The ground truth: the photo's RGB, optionally resized and centre-cropped to crop x crop.

    The crop scales the short side to ``crop`` (:func:`tinct.io.square`, bicubic) and keeps
    the centre square. Alpha is ignored.

    Returns:
        float32 ``(H, W, 3)`` in [0, 1].

    Raises:
        ImageError: unreadable, or smaller than :data:`MIN_SIDE` pixels.
    """
    rgb = load_image(path).rgb
    if crop:  # bicubic, as the quality targets in docs/EVALUATION.md were measured
        rgb = square(np.asarray(to_pil(rgb)), crop, Image.Resampling.BICUBIC).astype(np.float32) / 255.0
    if min(rgb.shape[:2]) < MIN_SIDE:
        raise ImageError(f"{path}: {rgb.shape[1]}x{rgb.shape[0]} is too small to evaluate (need {MIN_SIDE}x{MIN_SIDE})")
    return rgb


def grey_input(truth: np.ndarray, photo_id: str, degradation: str | None = None, seed: int = 0) -> np.ndarray:
    """What every model is given: the truth's neutral grey (float ``(H, W, 3)``), or with a
    ``degradation`` that grey in 8 bits degraded (uint8 ``(H, W)``), drawn from
    ``(seed, crc32(photo_id))``, so a photo gets the same damage in every run and subset."""
    g = color.grey(truth)
    if degradation is None:
        return g
    from . import degrade

    return degrade.degrade((g[..., 0] * 255.0 + 0.5).astype(np.uint8), degradation, [seed, zlib.crc32(photo_id.encode())])


def quantize(rgb: np.ndarray) -> np.ndarray:
    """Round to 8-bit steps, as a saved photo (and the colorizer's PIL output) is."""
    return np.asarray(to_pil(rgb), dtype=np.float32) / 255.0


# ----------------------------------------------------------------- models
def _gray_baseline(photo: Photo) -> np.ndarray:
    return quantize(color.grey(photo.rgb))


def _mean_ab_baseline(photo: Photo) -> np.ndarray:
    L = color.rgb_to_lab(photo.rgb)[..., 0]
    lab = np.stack([L, np.full_like(L, MEAN_AB[0]), np.full_like(L, MEAN_AB[1])], -1)
    return quantize(color.lab_to_rgb(lab))


class CheckpointModel:
    """A checkpoint, run folder or bundled model as evaluated: ``(photo) -> RGB``, and
    ``(photo, guide) -> RGB`` as :meth:`tinct.Colorizer.colorize` follows hints (a hint model's
    network sees them; any model follows points, a bin model a reference, without them;
    ``auto`` is ignored)."""

    def __init__(self, colorizer, size: int | None = None):
        self.colorizer, self.size = colorizer, size
        self.takes_points = True
        self.takes_reference = colorizer.follows_reference
        self._last = (None, None, None)  # (photo, its L, the network's raw output): the photo being evaluated

    def __call__(self, photo: Photo, guide=None, auto=None) -> np.ndarray:
        col = self.colorizer
        if col.spec.hints:
            out = col.colorize_many([photo], size=self.size, guides=[guide])[0]
        else:  # the network's output does not depend on the guide: one forward pass per photo for all its rows
            L, raw = self._raw(photo)
            out = col.render(L, col.follow(L, raw, guide, self.size))
        return np.asarray(out, dtype=np.float32) / 255.0

    def _raw(self, photo: Photo):
        if self._last[0] is not photo:
            L = self.colorizer.luminance(self.colorizer.read_photo(photo).pixels)
            self._last = (photo, L, self.colorizer.predict_raw_averaged([L], self.size, 1)[0])
        return self._last[1:]


def load_models(specs: list[str], size: int | None = None) -> dict[str, ModelFn]:
    """Name -> function for each ``--model``: a baseline, a bundled name, a checkpoint or run
    folder, or ``spread:BASE`` (BASE any of those).

    Args:
        specs: model strings; their text is also the name in the reports.
        size: working size passed to checkpoint models (baselines have none).

    Raises:
        UsageError: a model is given twice.
        tinct.checkpoint.CheckpointError: a model cannot be loaded.
    """
    from .colorizer import Colorizer

    models: dict[str, ModelFn] = {}
    for spec in specs:
        if spec in models:
            raise UsageError(f"model {spec!r} is given twice")
        if spec == "gray":
            models[spec] = _gray_baseline
        elif spec == "mean-ab":
            models[spec] = _mean_ab_baseline
        elif spec.startswith(SPREAD):
            base = spec[len(SPREAD):]
            if not base or base.startswith(SPREAD):
                raise UsageError(f"model {spec!r}: spread: takes one model to correct, e.g. spread:default")
            models[spec] = hinteval.SpreadModel(load_models([base], size)[base])
        else:
            models[spec] = CheckpointModel(Colorizer.load(spec), size)
    return models


# ----------------------------------------------------------------- the run
def truth_stats(truth: np.ndarray) -> dict[str, float]:
    """The original's own colour statistics, the references of its per-image metrics."""
    return {"cf_gt": metrics.colourfulness(truth), "variety_gt": metrics.variety(truth), "chroma_gt": metrics.chroma(truth)}


def image_metrics(pred: np.ndarray, truth: np.ndarray, gt: dict[str, float]) -> dict[str, float]:
    """The per-image metrics of one prediction (everything but the semantic ones).

    Args:
        pred, truth: float RGB ``(H, W, 3)`` in [0, 1].
        gt: :func:`truth_stats` of ``truth`` (computed once per photo, shared by every model).
    """
    cf = metrics.colourfulness(pred)
    return {
        "psnr": metrics.psnr(pred, truth),
        "ssim": metrics.ssim(pred, truth),
        "auc_ab": metrics.auc_ab(pred, truth),
        "cf": cf,
        "cf_gt": gt["cf_gt"],
        "dcf": abs(cf - gt["cf_gt"]),
        "ciede2000": metrics.ciede2000(pred, truth),
        "hist_intersection": metrics.histogram_intersection(pred, truth),
        "variety": metrics.variety(pred),
        "variety_gt": gt["variety_gt"],
        "chroma": metrics.chroma(pred),
        "chroma_gt": gt["chroma_gt"],
    }


def _save_thumb(rgb: np.ndarray, path: Path) -> None:
    im = to_pil(rgb)
    im.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.Resampling.BICUBIC)
    im.save(path, format="JPEG", quality=90)


def evaluate(photos: list[Path], data: Path, models: dict[str, ModelFn], crop: int | None = None,
             gallery: Path | None = None, quiet: bool = False,
             probe: metrics.EfficientNetProbe | None = None, degradation: str | None = None,
             degrade_seed: int = 0, plan: hinteval.Plan | None = None) -> report.Results:
    """Grey each photo, colorize it with every model and measure against the original.

    Args:
        photos: image files, in the order to report them.
        data: the folder they were found in (photo ids are relative to it).
        models: from :func:`load_models`.
        crop: resize + centre-crop side (see :func:`load_truth`), or None for full size.
        gallery: folder for JPEG thumbnails (grey input, each output, original), or None.
        quiet: no progress bar.
        probe: the EfficientNet-Lite0 judge (loaded here when not given).
        degradation: a :data:`tinct.degrade.PRESETS` name applied to the grey input (see
            :func:`grey_input`); the truth stays the clean photo.
        degrade_seed: its seed.
        plan: the rows to report (:class:`tinct.hinteval.Plan`: each model under each hint
            condition); default: one row per model, without hints.

    Returns:
        the :class:`tinct.report.Results`; photos that cannot be read are listed in ``failures``.
    """
    import sys

    from tqdm import tqdm

    probe = probe or metrics.EfficientNetProbe()
    plan = plan or hinteval.Plan(models)
    names = plan.names
    res = report.Results(models=names, seconds={n: [] for n in names}, extra_columns=list(plan.extra_columns))
    feats: dict[str, list[np.ndarray]] = {n: [] for n in ["<truth>", *names]}
    warmed: set[str] = set()
    if gallery is not None:
        gallery.mkdir(parents=True, exist_ok=True)
    for i, path in enumerate(tqdm(photos, unit="photo", disable=quiet, file=sys.stderr, dynamic_ncols=True)):
        photo_id = path.relative_to(data).as_posix()
        try:
            truth = load_truth(path, crop)
        except ImageError as e:
            res.failures.append(str(e))
            continue
        gray = Photo(pixels=grey_input(truth, photo_id, degradation, degrade_seed), alpha=None, name=photo_id, is_gray=True)
        guides = plan.guides(truth, photo_id)
        outputs = {}
        for row in plan.rows:
            name, fn = row.name, models[row.model]
            if name not in warmed:  # first call pays one-off set-up costs; keep them out of the timing
                plan.output(row, fn, gray, guides, outputs)
                warmed.add(name)
            t0 = time.perf_counter()
            outputs[name] = plan.output(row, fn, gray, guides, outputs)
            res.seconds[name].append(time.perf_counter() - t0)
        L_in = hinteval.lightness(gray) if plan.hinted else None
        labels, conf, f = probe.classify([truth, *outputs.values()])  # (1 + M,), (1 + M,), (1 + M, 1280)
        for k, name in enumerate(["<truth>", *names]):
            feats[name].append(f[k])
        gt = truth_stats(truth)
        for k, r in enumerate(plan.rows, start=1):
            row = {"photo": photo_id, "model": r.name, **image_metrics(outputs[r.name], truth, gt)}
            row.update(top1=int(labels[k]), top1_gt=int(labels[0]), top1_agree=int(labels[k] == labels[0]),
                       top1_conf_gt=float(conf[0]), **plan.extras(r, guides, outputs, L_in))
            res.rows.append(row)
        pid = f"p{i:04d}"
        res.photos.append(photo_id)
        res.pids.append(pid)
        if gallery is not None:
            _save_thumb(gray.rgb, gallery / f"{pid}_input.jpg")
            _save_thumb(truth, gallery / f"{pid}_truth.jpg")
            for j, name in enumerate(names):
                _save_thumb(outputs[name], gallery / f"{pid}_m{j}.jpg")
    for name in names:
        ok = len(feats[name]) >= 2
        res.frechet[name] = metrics.frechet_distance(np.stack(feats[name]), np.stack(feats["<truth>"])) if ok else float("nan")
    return res


def run(data: str | Path, model_specs: list[str], out: str | Path, size: int | None = None, crop: int | None = None,
        limit: int | None = None, quiet: bool = False, degradation: str | None = None,
        degrade_seed: int = 0, hint_counts=None, reference: str | None = None, hint_seed: int = 0) -> report.Results:
    """Find the photos (the first ``limit`` by path), load the models, evaluate, write every
    report into ``out``.

    ``hint_counts`` (numbers of simulated points) and ``reference="self"`` evaluate every
    model under those hint conditions too (:mod:`tinct.hinteval`; ``hint_seed`` draws the points).

    Raises:
        UsageError: ``data`` is not a folder or holds no photos; a model is given twice.
        tinct.checkpoint.CheckpointError: a model cannot be loaded.
    """
    data, out = Path(data), Path(out)
    if not data.is_dir():
        raise UsageError(f"--data {data}: no such folder")
    photos = find_images(data)[:limit]
    if not photos:
        raise UsageError(f"--data {data}: no photos found (looked for {', '.join(sorted(INPUT_EXTS))})")
    if degradation is not None:
        from .degrade import PRESETS

        if degradation not in PRESETS:
            raise UsageError(f"--degrade {degradation}: unknown; choose one of {', '.join(sorted(PRESETS))}")
    models = load_models(model_specs, size)
    try:
        plan = hinteval.Plan(models, hint_counts, reference, hint_seed)
    except ValueError as e:
        raise UsageError(str(e)) from None
    results = evaluate(photos, data, models, crop=crop, gallery=out / "gallery", quiet=quiet,
                       degradation=degradation, degrade_seed=degrade_seed, plan=plan)
    results.config = {"data": str(data), "models": list(model_specs), "size": size, "crop": crop, "limit": limit,
                      "photos_found": len(photos), "mean_ab": list(MEAN_AB), "degrade": degradation,
                      "degrade_seed": degrade_seed if degradation else None}
    if plan.hinted:
        results.config["hints"] = plan.config()
    summary = report.write_all(results, out)
    if plan.hinted:
        report_hints.write(results, summary, out)
    return results
