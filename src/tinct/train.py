"""The training loop: recipe -> data -> model and task -> steps -> logs and checkpoints.

    tinct train RECIPE.yaml [--data DIR] [--val-data DIR] [--out RUN] [--resume] [key=value ...]
    torchrun --nproc_per_node=N -m tinct train ...      # DistributedDataParallel

A run folder holds:
    config.yaml      the resolved recipe (recipe, then overrides)
    last.pt          weights + optimiser, scheduler, step and RNG state (every save_every)
    best.pt          the weights with the lowest validation loss (``tinct colorize --model``)
    train.csv        step, lr, training metrics (means over log_every steps), img/s
    val.csv          step, validation metrics
    curves.png       both curves, redrawn at each evaluation
    samples/         a grid of validation colorizations per evaluation (grey | predicted | true)
    summary.json     parameters, throughput, validation loss first -> last

Checkpoints are written atomically (temporary file + rename), so a run killed at any
moment (``kill -9`` included) leaves a readable ``last.pt``; ``--resume`` continues from
it with the same data order, so at most the steps since the last save are repeated.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from . import checkpoint, color, config, data, tasks
from .config import Config, ConfigError
from .models import create_model


class TrainingError(RuntimeError):
    """The run stopped (non-finite loss, missing data); the message says why and what to do."""


# ---------------------------------------------------------------- processes


@dataclass
class Env:
    """Where this process sits: its rank among ``world`` processes and its device."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def sum(self, t: torch.Tensor) -> torch.Tensor:
        if self.world > 1:
            t = t.to(self.device)
            dist.all_reduce(t)
        return t.cpu()

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        """Average of each value over the processes."""
        t = self.sum(torch.tensor(list(values.values()), dtype=torch.float64)) / self.world
        return dict(zip(values, t.tolist()))


def setup_processes(device: str = "auto") -> Env:
    """Join the torchrun process group when launched by torchrun (gloo on CPU, nccl on GPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    if device not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"train.device: choose auto, cpu or cuda, got {device!r}")
    cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if cuda and not torch.cuda.is_available():
        raise ConfigError("train.device=cuda but no CUDA device is available")
    dev = torch.device(f"cuda:{local}" if cuda else "cpu")
    if cuda:
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    return Env(rank, world, local, dev)


# ---------------------------------------------------------------- entry point


def run_recipe(recipe: str | Path, overrides: list[str] = (), data_dir: str | None = None, val_dir: str | None = None,
               out: str | Path | None = None, resume: bool = False) -> dict:
    """What ``tinct train`` does: resolve the configuration, then :func:`run` it.

    With ``resume``, the run folder's own ``config.yaml`` is the base (the recipe is only
    used when the folder holds no run yet) and ``overrides`` apply on top.
    """
    out = Path(out) if out else Path("runs") / Path(recipe).stem
    extra = list(overrides)
    if data_dir:
        extra.append(f"data.train={data_dir}")
    if val_dir:
        extra.append(f"data.val={val_dir}")
    saved = out / "config.yaml"
    if resume and (out / "last.pt").is_file() and saved.is_file():
        cfg = config.load(saved, extra)
    else:
        cfg = config.load(recipe, extra)
    for key in ("train", "val"):  # saved absolute, so a run resumes from any folder
        if getattr(cfg.data, key):
            setattr(cfg.data, key, os.path.abspath(getattr(cfg.data, key)))
    return run(cfg, out, resume)


def run(cfg: Config, out: Path, resume: bool = False) -> dict:
    """Train ``cfg`` into the run folder ``out``; returns the run's summary.

    Raises:
        ConfigError: a recipe value that cannot work, or ``out`` holds a run and not ``resume``.
        TrainingError: the loss became non-finite or the data is unusable.
    """
    env = setup_processes(cfg.train.device)
    try:
        return _run(cfg, Path(out), resume, env)
    finally:
        if env.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def _run(cfg: Config, out: Path, resume: bool, env: Env) -> dict:
    # ---- options and run folder
    last_path, best_path = out / "last.pt", out / "best.pt"
    if last_path.is_file() and not resume:
        raise ConfigError(f"{out} already holds a run; pass --resume to continue it, or choose another --out")
    resume = resume and last_path.is_file()
    env.barrier()  # every process has looked at the folder before process 0 writes to it
    if env.main:
        out.mkdir(parents=True, exist_ok=True)
        for stale in out.glob(".*.tmp"):  # left by a process killed while saving
            stale.unlink(missing_ok=True)
        checkpoint.atomic_write(out / "config.yaml", lambda tmp: Path(tmp).write_text(config.dump(cfg)))
    if cfg.train.threads > 0:
        torch.set_num_threads(cfg.train.threads)
    seed_everything(cfg.train.seed + env.rank)

    # ---- data
    try:
        sets = data.build(cfg.data, env.rank, env.world, env.barrier)
    except (FileNotFoundError, ValueError) as e:
        raise TrainingError(str(e)) from None
    if sets.dropped_gray and env.main:
        print(f"tinct: left out {sets.dropped_gray} near-grayscale training photos (data.min_chroma={cfg.data.min_chroma})", file=sys.stderr)
    if sets.unreadable and env.main:
        print(f"tinct: skipped {sets.unreadable} training files that are not readable images", file=sys.stderr)

    # ---- model and task
    blob = checkpoint.read(last_path) if resume else None
    try:
        model = create_model(cfg.model.name, pretrained=cfg.model.pretrained and blob is None, **cfg.model.kwargs)
    except (KeyError, TypeError) as e:  # an unknown name, or kwargs the factory does not take
        raise ConfigError(f"model: {e.args[0] if e.args else e}") from None
    if cfg.model.init and blob is None:
        load_weights(model, cfg.model.init)
    prior = blob["task"].get("prior") if blob else None
    task = tasks.build(cfg.task, cfg.optim, model, cfg.train.steps, cfg.model.temperature, sets.train,
                       None if prior is None else prior.numpy())
    step, best = 0, math.inf
    if blob is not None:
        model.load_state_dict(blob["state_dict"])
        task.load_state_dict(blob["task"])
        step, best = int(blob["step"]), float(blob["best_val"])
        set_rng_state(blob["rng"], env, cfg.train.seed, step)
    task.to(env.device)
    if env.world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [env.device.index] if env.device.type == "cuda" else None
        task.distribute(lambda m: DDP(m, device_ids=ids))
    task.set_train(True)

    # ---- loop
    stream = data.ShardedStream(len(sets.train), env.rank, env.world, cfg.train.seed, start=step * cfg.data.batch_size)
    loader = DataLoader(sets.train, batch_size=cfg.data.batch_size, sampler=stream, collate_fn=data.collate,
                        num_workers=cfg.data.workers, persistent_workers=cfg.data.workers > 0,
                        pin_memory=env.device.type == "cuda",
                        generator=torch.Generator().manual_seed(cfg.train.seed))  # keeps the global RNG untouched
    batches = iter(loader)
    val = ValSet(sets.val, cfg.data.batch_size, env) if sets.val is not None else None
    meta = {"size": cfg.model.size or cfg.data.resize or cfg.data.crop, "temperature": cfg.model.temperature,
            "recipe": cfg.description, "trained_on": cfg.data.train}
    logs = Logs(out, task, step, env.main)
    saver = Saver(out, task, cfg, meta, env, last_step=step if blob is not None else None)
    if cfg.train.precise_bn > 0:
        # A stream of its own (seed + 1), so the training batches are the same with or without it.
        bn_loader = DataLoader(sets.train, batch_size=cfg.data.batch_size, collate_fn=data.collate,
                               sampler=data.ShardedStream(len(sets.train), env.rank, env.world, cfg.train.seed + 1),
                               generator=torch.Generator().manual_seed(cfg.train.seed + 1))  # global RNG untouched
        saver.before_eval = lambda: precise_bn(task.model, itertools.islice(iter(bn_loader), cfg.train.precise_bn), env.device)
    if env.main:
        n_params = sum(p.numel() for p in model.parameters())
        print(f"tinct: {'resuming' if blob else 'training'} {cfg.model.name} ({n_params / 1e6:.2f}M params) on "
              f"{len(sets.train)} photos x {env.world} process(es), step {step} -> {cfg.train.steps}, run folder {out}",
              file=sys.stderr, flush=True)
    if blob is None:
        saver.save_last(step, best)  # a usable checkpoint exists from the start
        if cfg.train.eval_at_start and val is not None:
            best = min(best, saver.evaluate(step, val, logs, best))

    from tqdm import tqdm

    bar = tqdm(total=cfg.train.steps, initial=step, unit="step", dynamic_ncols=True, file=sys.stderr,
               disable=not (env.main and cfg.train.progress))
    window: dict[str, float] = {}
    n_window, t_window = 0, 0.0
    rates: list[float] = []
    deadline = time.monotonic() + 60 * cfg.train.time_limit if cfg.train.time_limit > 0 else None
    while step < cfg.train.steps:
        t0 = time.perf_counter()
        try:
            batch = {k: v.to(env.device, non_blocking=True) for k, v in next(batches).items()}
        except ValueError as e:  # an unreadable photo without the cache (which skips them)
            raise TrainingError(f"{e}; remove it, or train with data.cache=true, which skips unreadable files") from None
        try:
            metrics = task.train_step(batch)
        except tasks.NonFiniteLoss as e:
            bar.close()
            raise TrainingError(f"{e} at step {step + 1}: stopped. {last_path} holds the last good state "
                                f"(step {saver.last_step}); lower optim.lr or set optim.grad_clip, then --resume") from None
        step += 1
        t_window += time.perf_counter() - t0
        n_window += 1
        for k, v in metrics.items():  # NaN = not measured this step (a GAN's warm-up)
            total, count = window.get(k, (0.0, 0))
            window[k] = (total, count) if math.isnan(v) else (total + v, count + 1)
        bar.update(1)
        end = step == cfg.train.steps or (deadline is not None and out_of_time(deadline, env))
        if step % cfg.train.log_every == 0 or end:
            rate = n_window * cfg.data.batch_size * env.world / max(t_window, 1e-9)
            rates.append(rate)
            means = env.mean({k: total / count if count else math.nan for k, (total, count) in window.items()})
            logs.train(step, task.lr(), means, rate)
            bar.set_postfix({k: f"{v:.4g}" for k, v in list(means.items())[:2]} | {"img/s": f"{rate:.1f}"}, refresh=False)
            window, n_window, t_window = {}, 0, 0.0
        if val is not None and (step % cfg.train.eval_every == 0 or end):
            best = min(best, saver.evaluate(step, val, logs, best, bar))
        if step % cfg.train.save_every == 0 or end:
            saver.save_last(step, best)
        if end:
            break
    bar.close()
    if val is None and env.main:  # nothing to choose by: the final weights are the best we have
        checkpoint.save(best_path, model, meta | {"step": step})
    summary = logs.summary(cfg, model, step, rates, env.world)
    env.barrier()
    return summary


def precise_bn(model: torch.nn.Module, batches: Iterable[dict], device: torch.device) -> None:
    """Replace BatchNorm running statistics by their exact average over ``batches``.

    Early in training the weights change faster than the running averages (momentum 0.1)
    follow, and eval mode then normalises with stale statistics: a 10-minute run of the
    seed-000 U-Net scored a val L1 of 0.169 with its running averages and 0.095 after
    recomputing them. Precise BN (Wu & Johnson 2021, "Rethinking 'Batch' in BatchNorm")
    recomputes them over a few training batches before each validation. The global RNG is
    left untouched (dropout draws happen inside a forked RNG), so resumed runs stay exact.
    """
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    was_training = model.training
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches below
    model.train()
    with torch.no_grad(), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        for batch in batches:
            model(batch["L_n"].to(device))
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    model.train(was_training)


def out_of_time(deadline: float, env: Env) -> bool:
    """Process 0's clock decides, so every process stops at the same step."""
    late = torch.tensor([1.0 if time.monotonic() > deadline else 0.0])
    if env.world > 1:
        late = late.to(env.device)
        dist.broadcast(late, 0)
    return bool(late.item())


def load_weights(model: torch.nn.Module, path: str) -> None:
    """Initialise ``model`` from a checkpoint of the same architecture (weights only)."""
    try:
        blob = checkpoint.read(path)
    except checkpoint.CheckpointError as e:
        raise ConfigError(f"model.init: {e}") from None
    if blob["arch"] != model.arch:
        raise ConfigError(f"model.init: {path} holds {blob['arch']!r}, not {model.arch!r}")
    model.load_state_dict(blob["state_dict"])


# ---------------------------------------------------------------- random state


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "numpy": json.dumps([name, keys.tolist(), pos, has_gauss, gauss]),
             "python": json.dumps(random.getstate())}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict, env: Env, seed: int, step: int) -> None:
    """Restore process 0's saved RNG state; other processes reseed from (seed, rank, step)."""
    if not env.main:
        seed_everything(seed * 7919 + env.rank * 104729 + step)
        return
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, gauss = json.loads(state["numpy"])
    np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, gauss))
    py = json.loads(state["python"])
    random.setstate((py[0], tuple(py[1]), py[2]))
    if "cuda" in state and env.device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"])


# ---------------------------------------------------------------- validation


class ValSet:
    """This process's share of the validation crops, decoded once and kept as uint8."""

    def __init__(self, dataset: data.PhotoCrops, batch_size: int, env: Env):
        self.items = [dataset[i] for i in range(env.rank, len(dataset), env.world)]
        self.batch_size, self.env = batch_size, env

    def batches(self):
        for i in range(0, len(self.items), self.batch_size):
            chunk = self.items[i:i + self.batch_size]
            yield len(chunk), {k: v.to(self.env.device) for k, v in data.collate(chunk).items()}

    def evaluate(self, task: tasks.Task) -> dict[str, float]:
        """Metrics averaged over every process's share (weighted by photos)."""
        task.set_train(False)
        sums = torch.zeros(len(task.eval_metrics) + 1, dtype=torch.float64)
        for n, batch in self.batches():
            m = task.eval_step(batch)
            sums[:-1] += torch.tensor([m[k] * n for k in task.eval_metrics], dtype=torch.float64)
            sums[-1] += n
        task.set_train(True)
        sums = self.env.sum(sums)
        return {k: float(sums[i] / max(sums[-1], 1)) for i, k in enumerate(task.eval_metrics)}


# ---------------------------------------------------------------- outputs


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
        checkpoint.atomic_write(path, lambda tmp: Path(tmp).write_text(text))

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
            checkpoint.atomic_write(self.out / "summary.json", lambda tmp: Path(tmp).write_text(json.dumps(result, indent=2)))
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
    train_loss = "g_rec" if gan else "loss"  # the GAN's validation loss is its reconstruction term
    axes[0].plot(train["step"], train[train_loss], label=f"train ({train_loss})")
    axes[0].plot(val["step"], val["loss"], marker="o", ms=3, label="val")
    axes[0].set(title="loss", yscale="log" if _positive(train, train_loss) and _positive(val, "loss") else "linear")
    axes[1].plot(val["step"], val["ab_mae"], marker="o", ms=3, color="C2", label="val")
    axes[1].set(title="ab error (mean |ab - true ab|, Lab units)")
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
    checkpoint.atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))


def _positive(cols: dict, name: str) -> bool:
    return name in cols and bool(cols[name]) and all(v > 0 for v in cols[name] if not math.isnan(v))


def save_grid(task: tasks.Task, val: ValSet, n: int, path: Path) -> None:
    """Columns of validation photos; rows: grey input, prediction, truth."""
    from PIL import Image

    items = val.items[:n]
    if not items:
        return
    batch = {k: v.to(val.env.device) for k, v in data.collate(items).items()}
    task.set_train(False)
    ab = task.predict_ab_n(batch["L_n"])
    task.set_train(True)
    L = color.denormalize_l(batch["L_n"])
    rows = [torch.cat([L, torch.zeros_like(ab)], 1), torch.cat([L, color.denormalize_ab(ab)], 1),
            torch.cat([L, color.denormalize_ab(batch["ab_n"])], 1)]
    rgb = [color.lab_to_rgb(r).cpu() for r in rows]  # each (n, 3, h, w)
    grid = torch.cat([torch.cat(list(r), 2) for r in rgb], 1)  # (3, 3h, n*w)
    img = Image.fromarray((grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
    path.parent.mkdir(parents=True, exist_ok=True)
    checkpoint.atomic_write(path, lambda tmp: img.save(tmp, format="PNG"))


class Saver:
    """Evaluations and checkpoints (written by process 0)."""

    def __init__(self, out: Path, task: tasks.Task, cfg: Config, meta: dict, env: Env, last_step: int | None = None):
        self.out, self.task, self.cfg, self.meta, self.env = out, task, cfg, meta, env
        self.last_step = last_step  # the step last.pt holds
        self.before_eval: Callable[[], None] = lambda: None

    def save_last(self, step: int, best: float) -> None:
        if self.env.main:
            checkpoint.save(self.out / "last.pt", self.task.model, self.meta | {"step": step}, step=step,
                            task=self.task.state_dict(), rng=rng_state(), best_val=best, config=config.to_dict(self.cfg),
                            processes=self.env.world)
        self.last_step = step

    def evaluate(self, step: int, val: ValSet, logs: Logs, best: float, bar=None) -> float:
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
