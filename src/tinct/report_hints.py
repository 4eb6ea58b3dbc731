"""The colour-hint part of ``tinct evaluate --hints``'s report (rows from :mod:`tinct.hinteval`).

REPORT_DIR/
    summary.md     gains a "Colour hints" section: per model, each condition's PSNR, AUC
                   and ΔE00, its paired difference from the same model without hints, and
                   hint obedience (mean CIEDE2000 around the points) of the output and of
                   the automatic output
    summary.json   gains the same numbers under "hints"
    hints.png      PSNR and AUC against the number of hints, one line per model
    metrics.csv    (written by :mod:`tinct.report`) has the columns hints, reference_self,
                   hint_de00, hint_de00_auto
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from . import report

FIGURES = ("psnr", "auc_ab", "ciede2000")  # reported per condition, and paired with no hints
OBEDIENCE = ("hint_de00", "hint_de00_auto")


def summarize(results: report.Results, summary: dict) -> dict:
    """model -> one entry per condition (its row's means and intervals, the paired difference
    from the model's no-hints row, hint obedience), plus the run's hint settings."""
    cfg = results.config["hints"]
    rows = cfg["rows"]
    out = {k: cfg[k] for k in ("counts", "reference", "seed", "patch", "point_size", "spread", "notes")}
    out["models"] = {}
    for m in dict.fromkeys(r["model"] for r in rows.values()):
        mine = [(name, r) for name, r in rows.items() if r["model"] == m]
        auto = next(name for name, r in mine if not r["points"] and not r["reference"])
        entries = []
        for name, r in mine:
            e = {"row": name, "points": r["points"], "reference": r["reference"],
                 **{c: summary["models"][name][c] for c in FIGURES}}
            if name != auto and results.photos:
                paired = report.paired_differences(results, auto, name)
                e["vs_no_hints"] = {c: paired[c] for c in FIGURES}
            for c in OBEDIENCE if r["points"] and results.photos else ():
                v = results.column(name, c)
                e[c] = {"mean": float(v.mean()), "ci95": list(report.bootstrap_ci(v))}
            entries.append(e)
        out["models"][m] = entries
    return out


def write(results: report.Results, summary: dict, out: str | Path) -> dict:
    """Add the hints section to ``summary.md`` and ``summary.json`` (written by
    :func:`tinct.report.write_all`) and draw ``hints.png``; returns the section's dict."""
    out = Path(out)
    section = summarize(results, summary)
    summary["hints"] = section
    (out / "summary.json").write_text(json.dumps(report._json_safe(summary), indent=2, ensure_ascii=False) + "\n",
                                      encoding="utf-8")
    with open(out / "summary.md", "a", encoding="utf-8") as f:
        f.write("\n".join(markdown(section)) + "\n")
    if results.photos:
        plot(section, out / "hints.png")
    return section


def _ci(fmt: str, v: dict | None) -> str:
    if v is None:
        return ""
    text = fmt.format(v["mean"]) if not math.isnan(v["mean"]) else "n/a"
    return text + (f" [{fmt.format(v['ci95'][0])}, {fmt.format(v['ci95'][1])}]" if v.get("ci95") else "")


def _diff(fmt: str, d: dict | None) -> str:
    if d is None:
        return "(reference)"
    f = fmt.replace("{:", "{:+")
    lo, hi = d["ci95"]
    text = f"{f.format(d['diff'])} [{f.format(lo)}, {f.format(hi)}]"
    return f"**{text}**" if lo > 0 or hi < 0 else text


def markdown(section: dict) -> list[str]:
    sp = section["spread"]
    lines = ["", "## Colour hints", "",
             f"Points simulated from the true colours: N per photo at places fixed by the seed ({section['seed']}) "
             f"and the photo, the same for every model (the first N of a larger count), each asking for the mean "
             f"true ab of its {section['patch']}x{section['patch']} patch and given to the network as a "
             f"{section['point_size']}-pixel square of its input; `reference self`: the photo's own palette as the "
             "global hint. `spread:M`: the non-learned baseline, M's output plus each point's correction spread by a "
             f"Gaussian in x, y (sigma {sp['sigma_xy']} of the short side) and L (sigma {sp['sigma_l']}) "
             "(docs/GUIDE.md). Hint ΔE00: mean CIEDE2000 between the asked colour (the photo's L, the point's ab) "
             "and the output over each point's patch; the automatic column measures the same model's output without "
             "hints at the same points. Δ vs no hints: paired bootstrap over photos, as above; **bold** when the "
             "interval excludes 0."]
    for m, entries in section["models"].items():
        lines += ["", f"### {m}", "",
                  "| condition | PSNR dB | Δ PSNR vs no hints | AUC ab | Δ AUC vs no hints | ΔE00 | hint ΔE00 "
                  "| hint ΔE00, automatic output |", "|---|" + "---:|" * 7]
        for e in entries:
            cond = e["row"].rpartition(" @ ")[2]
            vs = e.get("vs_no_hints") or {}
            cells = [_ci("{:.2f}", e["psnr"]), _diff("{:.2f}", vs.get("psnr")), _ci("{:.4f}", e["auc_ab"]),
                     _diff("{:.4f}", vs.get("auc_ab")), _ci("{:.2f}", e["ciede2000"]),
                     _ci("{:.2f}", e.get("hint_de00")), _ci("{:.2f}", e.get("hint_de00_auto"))]
            lines.append(f"| {cond} | " + " | ".join(cells) + " |")
    if section["notes"]:
        lines += ["", *(f"- {n}" for n in section["notes"])]
    return lines


def plot(section: dict, path: Path) -> None:
    """hints.png: PSNR and AUC (means, 95% intervals) against the number of points, one line
    per model that takes them; ``reference self`` a dashed level in the model's colour."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4), layout="constrained")
    axes = fig.subplots(1, 2)
    counts = sorted({c for c in section["counts"]})
    for i, (m, entries) in enumerate(section["models"].items()):
        colour = f"C{i % 10}"
        pts = sorted((e for e in entries if not e["reference"]), key=lambda e: e["points"])
        refs = [e for e in entries if e["reference"]]
        for ax, col in zip(axes, ("psnr", "auc_ab")):
            x = np.array([e["points"] for e in pts], dtype=np.float64)
            y = np.array([e[col]["mean"] for e in pts])
            lo = np.array([(e[col]["ci95"] or [e[col]["mean"]] * 2)[0] for e in pts])
            hi = np.array([(e[col]["ci95"] or [e[col]["mean"]] * 2)[1] for e in pts])
            ax.errorbar(x, y, yerr=np.clip([y - lo, hi - y], 0, None), color=colour, marker="o", capsize=3,
                        label=m if len(pts) > 1 else f"{m} (no hints)")
            for e in refs:
                ax.axhline(e[col]["mean"], color=colour, linestyle="--", linewidth=1, label=f"{m}, reference self")
    for ax, title in zip(axes, ("PSNR dB", "AUC ab")):
        ax.set_xscale("symlog", linthresh=1)
        ax.set_xticks(counts, [str(c) for c in counts])
        ax.set_xlim(-0.4, max(counts) * 1.35 if max(counts) else 1)  # room for the end points' bars
        ax.set_xlabel("simulated hints per photo")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.savefig(path, dpi=100)
