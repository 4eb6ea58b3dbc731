"""A training run's folder: its logs, curves, sample grids and checkpoints (written by
process 0 of a run; ``tinct.train`` runs the loop that feeds them).

    config.yaml      the resolved recipe (written by the trainer)
    last.pt          weights + optimiser, scheduler, step and RNG state (``Saver.save_last``)
    best.pt          the weights with the lowest validation loss
    train.csv        step, lr, training metrics (means over log_every steps), img/s
    val.csv          step, validation metrics
    curves.png       both curves, redrawn at each evaluation
    samples/         a grid of validation colorizations per evaluation (grey | predicted | true)
    summary.json     parameters, throughput, validation loss first -> last
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from . import checkpoint, config, data, io, tasks
from .config import Config

class CsvLog:
    """Append-only CSV; on resume the rows after the checkpoint's step are dropped, so the
    curve continues from where the weights are."""

    def __init__(self, path: Path, columns: list[str], keep_until: int | None):
        self.path, self.columns = path, columns
        rows = []
        if keep_until is not None and path.is_file():
            lines = path.read_text().splitlines()
            if lines and lines[0].split(",") == columns:
                rows = [ln for ln in lines[1:]  # a row cut short by a kill has too few fields
                        if ln.count(",") == len(columns) - 1 and int(ln.split(",")[0]) <= keep_until]
        text = "\n".join([",".join(columns), *rows]) + "\n"
        io.atomic_write(path, lambda tmp: Path(tmp).write_text(text))

    def write(self, values: dict) -> None:
        with open(self.path, "a") as f:
            f.write(",".join(_fmt(values.get(c, "")) for c in self.columns) + "\n")

    def read(self) -> dict[str, list[float]]:
        lines = self.path.read_text().splitlines()
        cols = {c: [] for c in self.columns}
        for ln in lines[1:]:
            for c, v in zip(self.columns, ln.split(",")):
                cols[c].append(float(v) if v else math.nan)
        return cols


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


class Logs:
    """train.csv, val.csv, curves.png and summary.json of a run (process 0 only)."""

    def __init__(self, out: Path, task: tasks.Task, step: int, main: bool):
        self.out, self.main = out, main
        self.val_first: float | None = None
        if main:
            self.train_csv = CsvLog(out / "train.csv", ["step", "lr", *task.train_metrics, "img_per_s"], step)
            self.val_csv = CsvLog(out / "val.csv", ["step", *task.eval_metrics], step)
            rows = self.val_csv.read()["loss"]
            self.val_first = rows[0] if rows else None

    def train(self, step: int, lr: float, metrics: dict, rate: float) -> None:
        if self.main:
            self.train_csv.write({"step": step, "lr": lr, **metrics, "img_per_s": rate})

    def val(self, step: int, metrics: dict) -> None:
        if self.main:
            self.val_csv.write({"step": step, **metrics})
            if self.val_first is None:
                self.val_first = metrics["loss"]
            plot_curves(self.train_csv.read(), self.val_csv.read(), self.out / "curves.png")

    def summary(self, cfg: Config, model, step: int, rates: list[float], world: int) -> dict:
        result = {"description": cfg.description, "model": cfg.model.name,
                  "params": sum(p.numel() for p in model.parameters()), "processes": world,
                  "img_per_s": float(np.median(rates)) if rates else None}
        if self.main:
            v = self.val_csv.read()
            result |= {"steps": step, "val_loss_first": self.val_first,
                       "val_loss_last": v["loss"][-1] if v["loss"] else None,
                       "val_ab_mae_last": v["ab_mae"][-1] if v.get("ab_mae") else None}
            io.atomic_write(self.out / "summary.json", lambda tmp: Path(tmp).write_text(json.dumps(result, indent=2)))
        return result


def plot_curves(train: dict, val: dict, path: Path) -> None:
    """Loss (training and validation, same objective), validation ab error, and the task's
    own extras (per-pixel accuracy; generator and discriminator losses)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    gan = "g_loss" in train
    extra = ["g_adv", "d_loss", "d_real", "d_fake"] if gan else (["acc"] if "acc" in train else [])
    fig = Figure(figsize=(5 * (2 + bool(extra)), 4), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2 + bool(extra))
    # The validation loss is the GAN's reconstruction term, and a classification task's
    # cross-entropy without its decoded-colour terms: plot the same objective for training.
    train_loss = "g_rec" if gan else ("ce" if "ce" in train else "loss")
    axes[0].plot(train["step"], train[train_loss], label=f"train ({train_loss})")
    axes[0].plot(val["step"], val["loss"], marker="o", ms=3, label="val")
    axes[0].set(title="loss", yscale="log" if _positive(train, train_loss) and _positive(val, "loss") else "linear")
    if "ab_mae" in val:
        axes[1].plot(val["step"], val["ab_mae"], marker="o", ms=3, color="C2", label="val")
        axes[1].set(title="ab error (mean |ab - true ab|, Lab units)")
    else:  # a mask task: its pixel scores
        for name in (k for k in val if k not in ("step", "loss")):
            axes[1].plot(val["step"], val[name], marker="o", ms=3, label=f"val {name}")
        axes[1].set(title="mask scores at probability 0.5")
    if extra:
        for name in extra:
            axes[2].plot(train["step"], train[name], label=f"train {name}")
        if "acc" in val:
            axes[2].plot(val["step"], val["acc"], marker="o", ms=3, label="val acc")
        axes[2].set(title="adversarial" if gan else "per-pixel class accuracy")
    for ax in axes:
        ax.set(xlabel="step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    io.atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))


def _positive(cols: dict, name: str) -> bool:
    return name in cols and bool(cols[name]) and all(v > 0 for v in cols[name] if not math.isnan(v))


def save_grid(task: tasks.Task, val, n: int, path: Path) -> None:
    """Columns of validation photos; rows: the task's (``Task.sample_rows``: grey input, prediction, truth)."""
    from PIL import Image

    items = val.items[:n]
    if not items:
        return
    batch = {k: v.to(val.env.device) for k, v in data.collate(items).items()}
    task.set_train(False)
    rgb = [r.cpu() for r in task.sample_rows(batch)]  # each (n, 3, h, w)
    task.set_train(True)
    grid = torch.cat([torch.cat(list(r), 2) for r in rgb], 1)  # (3, 3h, n*w)
    img = Image.fromarray((grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
    path.parent.mkdir(parents=True, exist_ok=True)
    io.atomic_write(path, lambda tmp: img.save(tmp, format="PNG"))


class Saver:
    """Evaluations and checkpoints (written by process 0)."""

    def __init__(self, out: Path, task: tasks.Task, cfg: Config, meta: dict, env, rng_state: Callable[[], dict],
                 last_step: int | None = None):
        self.out, self.task, self.cfg, self.meta, self.env, self.rng_state = out, task, cfg, meta, env, rng_state
        self.last_step = last_step  # the step last.pt holds
        self.before_eval: Callable[[], None] = lambda: None

    def save_last(self, step: int, best: float) -> None:
        if self.env.main:
            checkpoint.save(self.out / "last.pt", self.task.model, self.meta | {"step": step}, step=step,
                            task=self.task.state_dict(), rng=self.rng_state(), best_val=best, config=config.to_dict(self.cfg),
                            processes=self.env.world, precision=self.task.precision)
        self.last_step = step

    def evaluate(self, step: int, val, logs: Logs, best: float, bar=None) -> float:
        """Validate, log, draw; write best.pt when the loss improved. Returns the loss."""
        self.before_eval()
        metrics = val.evaluate(self.task)
        logs.val(step, metrics)
        if self.env.main:
            save_grid(self.task, val, self.cfg.train.samples, self.out / "samples" / f"step_{step:07d}.png")
            text = "  ".join(f"{k} {v:.4g}" for k, v in metrics.items())
            (bar.write if bar is not None else lambda s: print(s, file=sys.stderr))(f"step {step}: val {text}")
            if metrics["loss"] < best:
                checkpoint.save(self.out / "best.pt", self.task.model, self.meta | {"step": step, "val_loss": metrics["loss"]})
        return metrics["loss"]
