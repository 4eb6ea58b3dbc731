"""What ``tinct evaluate`` measured (:class:`Results`) and the reports written from it.

REPORT_DIR/
    metrics.csv    one row per (photo, model): the per-image metrics (deterministic)
    timing.csv     one row per (photo, model): seconds to colorize
    summary.md     means with 95% bootstrap intervals, best per column in bold; with several
                   models, every model's paired difference from the first, with its interval
    summary.json   the same numbers, plus the run's configuration
    bars.png       means and intervals per metric;  boxes.png: per-photo distributions
    gallery.html   grey input, every model's output and the original for every photo,
                   worst and best 5 per model by PSNR at the top (thumbnails in gallery/)
"""

from __future__ import annotations

import csv
import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# Per-image metric columns of metrics.csv, in order (see docs/EVALUATION.md).
METRIC_COLUMNS = ("psnr", "ssim", "auc_ab", "cf", "cf_gt", "dcf", "ciede2000", "hist_intersection",
                  "top1", "top1_gt", "top1_agree", "top1_conf_gt", "variety", "variety_gt", "chroma", "chroma_gt")
PSNR_CAP = 100.0  # dB; an exact reproduction has PSNR inf, means use min(PSNR, cap)
N_RESAMPLES = 2000
CONFIDENCE = 0.95
SEED = 0
N_EXTREMES = 5  # gallery: worst and best cases per model

# summary column -> (heading, number format, which way is better: "high", "low" or None)
SUMMARY_COLUMNS = {
    "psnr": ("PSNR dB", "{:.2f}", "high"),
    "ssim": ("SSIM", "{:.4f}", "high"),
    "auc_ab": ("AUC ab", "{:.4f}", "high"),
    "cf": ("CF", "{:.2f}", None),
    "variety": ("variety", "{:.3f}", None),
    "chroma": ("chroma", "{:.2f}", None),
    "dcf": ("\\|ΔCF\\|", "{:.2f}", "low"),
    "ciede2000": ("ΔE00", "{:.2f}", "low"),
    "hist_intersection": ("ab hist ∩", "{:.4f}", "high"),
    "top1_agree": ("top-1 agree", "{:.3f}", "high"),
    "frechet": ("Fréchet EffNet-L0", "{:.2f}", "low"),
    "ms_per_photo": ("ms / photo", "{:.1f}", "low"),
}
SET_LEVEL = {"frechet"}  # one number per model, no interval
# Paired comparison with the first model: these columns, resampling photos (not rows).
PAIRED_COLUMNS = ("psnr", "ssim", "auc_ab", "ciede2000", "dcf", "cf", "top1_agree", "variety", "chroma")
# Compared with the originals' own values (the *_gt column): medians with intervals, and
# the per-photo distributions plotted beside the originals'.
REFERENCED = {"cf": "cf_gt", "variety": "variety_gt", "chroma": "chroma_gt"}
MEDIAN_COLUMNS = ("variety", "chroma")
PAIRED_RESAMPLES = 10_000


@dataclass
class Results:
    """Everything one evaluation measured; the report writers read only this.

    Attributes:
        models: model names in the order given (the ``--model`` strings).
        photos: ids (paths relative to the data folder) of the photos evaluated.
        pids: gallery file prefix of each evaluated photo (``p0000``, ...).
        rows: one dict per (photo, model), photo-major: ``photo``, ``model`` and
            :data:`METRIC_COLUMNS`.
        seconds: model -> runtime per photo in seconds, in photo order.
        frechet: model -> Frechet distance between EfficientNet-Lite0 features of its
            outputs and of the originals (NaN with fewer than two photos).
        failures: one message per photo that could not be evaluated.
        config: how the run was made (data, crop, size, limit, models, mean ab, hints).
        extra_columns: more per-row columns for metrics.csv after :data:`METRIC_COLUMNS`
            (the hint columns of ``tinct evaluate --hints``, :mod:`tinct.report_hints`).
    """

    models: list[str]
    photos: list[str] = field(default_factory=list)
    pids: list[str] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)
    seconds: dict[str, list[float]] = field(default_factory=dict)
    frechet: dict[str, float] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    config: dict = field(default_factory=dict)
    extra_columns: list[str] = field(default_factory=list)

    def column(self, model: str, name: str) -> np.ndarray:
        """One metric over the photos for one model, float ``(N,)``."""
        return np.array([r[name] for r in self.rows if r["model"] == model], dtype=np.float64)


def write_all(results: Results, out: str | Path) -> dict:
    """Write every report into ``out`` (created if needed); returns the summary dict."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_metrics_csv(results, out / "metrics.csv")
    write_timing_csv(results, out / "timing.csv")
    summary = summarize(results)
    (out / "summary.json").write_text(json.dumps(_json_safe(summary), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out / "summary.md").write_text(summary_markdown(summary), encoding="utf-8")
    if results.photos:
        write_plots(results, summary, out)
    (out / "gallery.html").write_text(gallery_html(results), encoding="utf-8")
    return summary


# ----------------------------------------------------------------- tables
def _fmt(x) -> str:
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    return "inf" if math.isinf(x) else "nan" if math.isnan(x) else f"{x:.6f}"


def write_metrics_csv(results: Results, path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        columns = [*METRIC_COLUMNS, *results.extra_columns]
        w.writerow(["photo", "model", *columns])
        for r in results.rows:
            w.writerow([r["photo"], r["model"], *(_fmt(r[c]) for c in columns)])


def write_timing_csv(results: Results, path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["photo", "model", "seconds"])
        for i, photo in enumerate(results.photos):
            for m in results.models:
                w.writerow([photo, m, _fmt(float(results.seconds[m][i]))])


def bootstrap_ci(values: np.ndarray, seed: int = SEED, statistic=np.mean) -> tuple[float, float]:
    """95% percentile-bootstrap interval of the mean (or ``statistic``, e.g. ``np.median``;
    scipy), fixed seed; a point for n < 2."""
    from scipy.stats import bootstrap

    v = np.asarray(values, dtype=np.float64)
    if len(v) < 2 or np.all(v == v[0]):
        return float(statistic(v)), float(statistic(v))
    r = bootstrap((v,), statistic, n_resamples=N_RESAMPLES, confidence_level=CONFIDENCE, method="percentile",
                  vectorized=True, axis=-1, rng=np.random.default_rng(seed))
    return float(r.confidence_interval.low), float(r.confidence_interval.high)


def per_photo(results: Results, model: str, column: str) -> np.ndarray:
    """Per-photo values of a summary column; PSNR capped at :data:`PSNR_CAP`."""
    if column == "ms_per_photo":
        return 1000.0 * np.asarray(results.seconds[model], dtype=np.float64)
    v = results.column(model, column)
    return np.minimum(v, PSNR_CAP) if column == "psnr" else v


def summarize(results: Results) -> dict:
    """Means, intervals and the best model per column, as a JSON-ready dict."""
    models: dict[str, dict] = {}
    for m in results.models:
        models[m] = {}
        for col in SUMMARY_COLUMNS:
            if col in SET_LEVEL:
                models[m][col] = {"mean": results.frechet.get(m, float("nan")), "ci95": None}
            elif results.photos:
                v = per_photo(results, m, col)
                models[m][col] = {"mean": float(v.mean()), "ci95": list(bootstrap_ci(v))}
            else:
                models[m][col] = {"mean": float("nan"), "ci95": None}
    best = {}
    for col, (_, fmt, better) in SUMMARY_COLUMNS.items():
        shown = {m: float(fmt.format(models[m][col]["mean"])) for m in results.models
                 if not math.isnan(models[m][col]["mean"])}
        if better and shown:
            target = (max if better == "high" else min)(shown.values())
            best[col] = [m for m, v in shown.items() if v == target]  # ties as displayed are all best
    truth = {}
    for col, gt in REFERENCED.items() if results.photos else ():
        v = results.column(results.models[0], gt)
        truth[col] = {"mean": float(v.mean()), "ci95": list(bootstrap_ci(v))}
    medians = {}
    for col in MEDIAN_COLUMNS if results.photos else ():
        for m, v in [(m, results.column(m, col)) for m in results.models] + [("<originals>", results.column(results.models[0], REFERENCED[col]))]:
            medians.setdefault(m, {})[col] = {"median": float(np.median(v)), "ci95": list(bootstrap_ci(v, statistic=np.median))}
    reference = results.models[0]
    paired = {m: paired_differences(results, reference, m) for m in results.models[1:]} if results.photos else {}
    return {
        "config": results.config,
        "n_photos": len(results.photos),
        "failures": list(results.failures),
        "psnr_cap_db": PSNR_CAP,
        "bootstrap": {"method": "percentile", "n_resamples": N_RESAMPLES, "confidence": CONFIDENCE, "seed": SEED},
        "originals": truth,
        "models": models,
        "medians": medians,
        "best": best,
        "paired": {"reference": reference, "n_resamples": PAIRED_RESAMPLES, "seed": SEED, "models": paired},
    }


def paired_differences(results: Results, reference: str, candidate: str, seed: int = SEED) -> dict[str, dict]:
    """How ``candidate`` (B) differs from ``reference`` (A) on the same photos, per :data:`PAIRED_COLUMNS`.

    Both models saw the same photos, so each bootstrap resample draws photos and takes the
    mean of their differences B - A: the 95% percentile interval of that mean is far
    narrower than the two models' own intervals when the photos vary more than the models.
    An interval that excludes 0 means these photos separate the two. PSNR is capped at
    :data:`PSNR_CAP` per photo, as in the means.

    Returns:
        column -> {"a": mean of A, "b": mean of B, "diff": mean of B - A, "ci95": [low, high]}.
    """
    diffs = np.stack([per_photo(results, candidate, c) - per_photo(results, reference, c) for c in PAIRED_COLUMNS])
    n = diffs.shape[1]
    rng = np.random.default_rng(seed)
    # Resample in chunks to bound the memory; the chunks' rows are even, so the draws are the
    # same as one (PAIRED_RESAMPLES, n) draw.
    rows = max(2, 500_000 // n // 2 * 2)
    means = np.concatenate([diffs[:, rng.integers(0, n, size=(min(rows, PAIRED_RESAMPLES - k), n))].mean(-1)
                            for k in range(0, PAIRED_RESAMPLES, rows)], axis=1)
    low, high = np.percentile(means, [2.5, 97.5], axis=1)
    return {c: {"a": float(per_photo(results, reference, c).mean()), "b": float(per_photo(results, candidate, c).mean()),
                "diff": float(diffs[k].mean()), "ci95": [float(low[k]), float(high[k])]}
            for k, c in enumerate(PAIRED_COLUMNS)}


def agreement_by_confidence(rows: list[dict], edges) -> dict[str, list[tuple[float, int]]]:
    """Each model's mean ``top1_agree`` per bin of the judge's confidence on the original.

    Args:
        rows: :attr:`Results.rows`, or the rows of a metrics.csv (text values are read as numbers).
        edges: increasing bin edges of ``top1_conf_gt``; bins are ``[lo, hi)``, the last ``[lo, hi]``.

    Returns:
        model -> one (mean agreement, photo count) per bin (NaN for an empty bin), in order.
    """
    edges = np.asarray(edges, dtype=np.float64)
    out = {}
    for m in dict.fromkeys(r["model"] for r in rows):
        conf = np.array([float(r["top1_conf_gt"]) for r in rows if r["model"] == m])
        agree = np.array([float(r["top1_agree"]) for r in rows if r["model"] == m])
        which = np.clip(np.digitize(conf, edges[1:-1]), 0, len(edges) - 2)
        out[m] = [(float(agree[which == k].mean()) if (which == k).any() else math.nan, int((which == k).sum()))
                  for k in range(len(edges) - 1)]
    return out


def _json_safe(x):
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def summary_markdown(summary: dict) -> str:
    cfg = summary["config"]
    lines = ["# tinct evaluate: summary", ""]
    how = [f"crop {cfg['crop']}x{cfg['crop']}" if cfg.get("crop") else "full size",
           f"working size {cfg['size']}" if cfg.get("size") else "each model at its own working size"]
    if cfg.get("limit"):
        how.append(f"first {cfg['limit']} photos by path")
    lines.append(f"{summary['n_photos']} photos from `{cfg.get('data')}` ({', '.join(how)}); "
                 f"{len(summary['failures'])} could not be evaluated.")
    lines += ["", "| model | " + " | ".join(h for h, _, _ in SUMMARY_COLUMNS.values()) + " |",
              "|---|" + "---:|" * len(SUMMARY_COLUMNS)]
    for m, cols in summary["models"].items():
        cells = []
        for col, (_, fmt, _) in SUMMARY_COLUMNS.items():
            mean, ci = cols[col]["mean"], cols[col]["ci95"]
            text = "n/a" if math.isnan(mean) else fmt.format(mean)
            if m in summary["best"].get(col, []):
                text = f"**{text}**"
            if ci is not None:
                text += f" [{fmt.format(ci[0])}, {fmt.format(ci[1])}]"
            cells.append(text)
        name = m.replace("|", "\\|")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if summary["originals"]:
        parts = [f"{SUMMARY_COLUMNS[c][0]} {SUMMARY_COLUMNS[c][1].format(v['mean'])} [{SUMMARY_COLUMNS[c][1].format(v['ci95'][0])}, "
                 f"{SUMMARY_COLUMNS[c][1].format(v['ci95'][1])}]" for c, v in summary["originals"].items()]
        lines += ["", f"Originals: {', '.join(parts)}."]
    lines += _medians_markdown(summary.get("medians", {}))
    b = summary["bootstrap"]
    lines += [
        "",
        f"Means over photos with {b['confidence']:.0%} {b['method']}-bootstrap intervals ({b['n_resamples']} "
        f"resamples, seed {b['seed']}). **Bold**: best mean in its column (higher is better for PSNR, SSIM, "
        "AUC, ab hist ∩ and top-1 agreement; lower for |ΔCF|, ΔE00, Fréchet and time; CF has no better "
        "direction: compare it with the originals'). Overlapping intervals: these photos do not separate the models.",
        "",
        f"PSNR of an exact reproduction is infinite; means and intervals cap each photo at {summary['psnr_cap_db']:.0f} dB "
        "(metrics.csv keeps `inf`). Fréchet EffNet-L0 is one number per model (no interval): the Fréchet distance "
        "between EfficientNet-Lite0 (ImageNet) pooled features of the outputs and of the originals. It is not FID "
        "and is not comparable with published FID values. Time is wall-clock milliseconds per photo on this machine "
        "(the only number that changes between runs). Definitions: docs/EVALUATION.md.",
    ]
    lines += _paired_markdown(summary["paired"])
    if summary["failures"]:
        lines += ["", "Not evaluated:", *(f"- {f}" for f in summary["failures"])]
    return "\n".join(lines) + "\n"


def _medians_markdown(medians: dict) -> list[str]:
    if not medians:
        return []
    lines = ["", "## Medians over photos", "", "| | " + " | ".join(f"median {SUMMARY_COLUMNS[c][0]}" for c in MEDIAN_COLUMNS) + " |",
             "|---|" + "---:|" * len(MEDIAN_COLUMNS)]
    for m, cols in medians.items():
        cells = []
        for c in MEDIAN_COLUMNS:
            fmt, v = SUMMARY_COLUMNS[c][1], cols[c]
            cells.append(f"{fmt.format(v['median'])} [{fmt.format(v['ci95'][0])}, {fmt.format(v['ci95'][1])}]")
        name = ("originals" if m == "<originals>" else m).replace("|", "\\|")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines + ["", "Variety: 1 - |mean(ab)| / mean(|ab|) over a photo's pixels (0 = one hue everywhere); chroma: "
                    "the photo's mean |ab| (Lab units). Median over photos with a 95% percentile-bootstrap interval."]


def _paired_markdown(paired: dict) -> list[str]:
    if not paired["models"]:
        return []
    ref = paired["reference"].replace("|", "\\|")
    lines = ["", f"## Paired differences from {ref}", "",
             "| model | " + " | ".join(SUMMARY_COLUMNS[c][0] for c in PAIRED_COLUMNS) + " |",
             "|---|" + "---:|" * len(PAIRED_COLUMNS)]
    for m, cols in paired["models"].items():
        cells = []
        for c in PAIRED_COLUMNS:
            fmt = SUMMARY_COLUMNS[c][1].replace("{:", "{:+")
            d, (lo, hi) = cols[c]["diff"], cols[c]["ci95"]
            text = f"{fmt.format(d)} [{fmt.format(lo)}, {fmt.format(hi)}]"
            cells.append(f"**{text}**" if lo > 0 or hi < 0 else text)
        name = m.replace("|", "\\|")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    note = (f"Each model minus {ref} on the same photos: mean of the per-photo differences and its 95% "
            f"paired-bootstrap interval ({paired['n_resamples']} resamples of the photos, seed {paired['seed']}). "
            "**Bold**: the interval excludes 0, so these photos separate the two; a finer test than whether the "
            "models' own intervals above overlap.")
    return lines + ["", note]


# ----------------------------------------------------------------- plots
def write_plots(results: Results, summary: dict, out: Path) -> None:
    """bars.png (means with intervals) and boxes.png (per-photo distributions)."""
    from matplotlib.figure import Figure  # no pyplot: no global state, renders with Agg

    names = results.models
    colors = [f"C{i % 10}" for i in range(len(names))]
    cols = list(SUMMARY_COLUMNS)
    fig = Figure(figsize=(3.2 * 5, 3.0 * math.ceil(len(cols) / 5)), layout="constrained")
    axes = fig.subplots(math.ceil(len(cols) / 5), 5).ravel()
    x = np.arange(len(names))
    for ax, col in zip(axes, cols):
        means = np.array([summary["models"][m][col]["mean"] for m in names], dtype=np.float64)
        cis = [summary["models"][m][col]["ci95"] for m in names]
        err = None
        if all(c is not None for c in cis):
            err = np.array([[mu - c[0] for mu, c in zip(means, cis)], [c[1] - mu for mu, c in zip(means, cis)]])
            err = np.clip(err, 0, None)
        ax.bar(x, np.nan_to_num(means), yerr=err, color=colors, capsize=3)
        ax.set_title(SUMMARY_COLUMNS[col][0].replace("\\", ""), fontsize=10)
        ax.set_xticks(x, names, rotation=30, ha="right", fontsize=8)
    for ax in axes[len(cols):]:
        ax.set_visible(False)
    fig.savefig(out / "bars.png", dpi=100)

    box_cols = [c for c in SUMMARY_COLUMNS if c not in SET_LEVEL and c != "top1_agree"]
    fig = Figure(figsize=(3.2 * 4, 3.0 * math.ceil(len(box_cols) / 4)), layout="constrained")
    axes = fig.subplots(math.ceil(len(box_cols) / 4), 4).ravel()
    for ax, col in zip(axes, box_cols):
        data = [per_photo(results, m, col) for m in names]
        labels = list(names)
        if col in REFERENCED:  # the originals are the reference for colourfulness, variety, chroma
            data.append(results.column(names[0], REFERENCED[col]))
            labels.append("originals")
        ax.boxplot(data, tick_labels=labels)
        ax.set_title(SUMMARY_COLUMNS[col][0].replace("\\", ""), fontsize=10)
        ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    for ax in axes[len(box_cols):]:
        ax.set_visible(False)
    fig.savefig(out / "boxes.png", dpi=100)


# ----------------------------------------------------------------- gallery
_CSS = """body{font-family:sans-serif;margin:1em;background:#fafafa}
table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:4px;vertical-align:top;text-align:center}
figure{display:inline-block;margin:4px;text-align:center}figcaption{font-size:12px;max-width:256px;word-break:break-all}
img{max-width:256px;max-height:256px}.pair img{max-width:160px;max-height:160px}"""


def _psnr_text(v: float) -> str:
    return "PSNR ∞" if math.isinf(v) else f"PSNR {v:.2f} dB"


def _img(src: str, alt: str) -> str:
    return f'<img src="{html.escape(src)}" alt="{html.escape(alt)}" loading="lazy">'


def gallery_html(results: Results) -> str:
    """The gallery page; image paths are relative (``gallery/...``), so the folder can move."""
    e = html.escape
    names = results.models
    by = {(r["photo"], r["model"]): r for r in results.rows}
    parts = ["<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
             "<title>tinct evaluate: gallery</title>", f"<style>{_CSS}</style></head><body>",
             "<h1>tinct evaluate: gallery</h1>",
             f"<p>{len(results.photos)} photos; models: {e(', '.join(names))}. Each model saw only the grey "
             "input. Numbers: PSNR against the original and mean CIEDE2000 (ΔE00).</p>"]
    parts.append(f"<h2>Worst and best {N_EXTREMES} per model by PSNR</h2>")
    for j, m in enumerate(names):
        order = sorted(range(len(results.photos)), key=lambda i: (by[(results.photos[i], m)]["psnr"], i))
        parts.append(f"<h3>{e(m)}</h3>")
        for label, picks in (("worst", order[:N_EXTREMES]), ("best", order[::-1][:N_EXTREMES])):
            parts.append(f"<div><b>{label}</b><br>")
            for i in picks:
                photo, pid = results.photos[i], results.pids[i]
                r = by[(photo, m)]
                parts.append(f'<figure class="pair"><a href="#{pid}">{_img(f"gallery/{pid}_m{j}.jpg", m)}'
                             f'{_img(f"gallery/{pid}_truth.jpg", "original")}</a>'
                             f"<figcaption>{e(photo)}<br>{_psnr_text(r['psnr'])}</figcaption></figure>")
            parts.append("</div>")
    parts += ["<h2>All photos</h2>", "<table><thead><tr><th>photo</th><th>grey input</th>",
              *(f"<th>{e(m)}</th>" for m in names), "<th>original</th></tr></thead><tbody>"]
    for photo, pid in zip(results.photos, results.pids):
        cells = [f'<tr id="{pid}"><td>{e(photo)}</td><td>{_img(f"gallery/{pid}_input.jpg", "grey input")}</td>']
        for j, m in enumerate(names):
            r = by[(photo, m)]
            cells.append(f'<td>{_img(f"gallery/{pid}_m{j}.jpg", m)}<br><small>{_psnr_text(r["psnr"])}, '
                         f'ΔE00 {r["ciede2000"]:.2f}</small></td>')
        cells.append(f'<td>{_img(f"gallery/{pid}_truth.jpg", "original")}</td></tr>')
        parts.append("".join(cells))
    parts += ["</tbody></table>", "</body></html>"]
    return "\n".join(parts) + "\n"
