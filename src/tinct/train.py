"""The training loop: recipe -> data -> model and task -> steps -> logs and checkpoints.

    tinct train RECIPE.yaml [--data DIR] [--val-data DIR] [--out RUN] [--resume] [key=value ...]
    torchrun --nproc_per_node=N -m tinct train ...      # DistributedDataParallel

The run folder (``config.yaml``, ``last.pt``, ``best.pt``, logs, curves, sample grids)
is described and written by ``tinct.runfolder``. A stage of a chain (``model.init``: the
previous stage's weights) records the stages before it in its checkpoints' ``meta["stages"]``.

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
from typing import Iterable

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from . import checkpoint, config, data, io, precision, tasks
from .config import Config, ConfigError
from .models import create_model
from .loader import Prefetch, ready, train_loader
from .runfolder import Logs, Saver


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
    validate(cfg)  # before anything is written
    last_path, best_path = out / "last.pt", out / "best.pt"
    if last_path.is_file() and not resume:
        raise ConfigError(f"{out} already holds a run; pass --resume to continue it, or choose another --out")
    resume = resume and last_path.is_file()
    env.barrier()  # every process has looked at the folder before process 0 writes to it
    if env.main:
        out.mkdir(parents=True, exist_ok=True)
        for stale in out.glob(".*.tmp"):  # left by a process killed while saving
            stale.unlink(missing_ok=True)
        io.atomic_write(out / "config.yaml", lambda tmp: Path(tmp).write_text(config.dump(cfg)))
    torch.set_num_threads(intra_op_threads(cfg.train.threads))
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
    stages = []  # the recipes of the stages this one continues (model.init's chain)
    if cfg.model.init and blob is None:
        stages = load_weights(model, cfg.model.init).get("stages", [])
    elif blob is not None:
        stages = blob["meta"].get("stages", [None])[:-1]
    prior = blob["task"].get("prior") if blob else None
    task = tasks.build(cfg.task, cfg.optim, model, cfg.train.steps, cfg.model.temperature, sets.train,
                       None if prior is None else prior.numpy())
    task.to(env.device)  # before loading optimiser state, which takes its parameters' device
    if cfg.train.channels_last:
        for m in task.modules().values():
            m.to(memory_format=torch.channels_last)
    step, best = 0, math.inf
    if blob is not None:
        model.load_state_dict(blob["state_dict"])
        task.load_state_dict(blob["task"])
        step, best = int(blob["step"]), float(blob["best_val"])
        set_rng_state(blob["rng"], env, cfg.train.seed, step)
    if env.world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [env.device.index] if env.device.type == "cuda" else None
        task.distribute(lambda m: DDP(m, device_ids=ids))
    precision_used = precision.resolve(cfg.train.precision, env.device)
    if blob is not None and cfg.train.precision == "auto" and blob.get("precision") in ("fp32", "bf16"):
        precision_used = blob["precision"]  # a resumed run keeps the precision it started with
    task.set_precision(precision_used, env.device)
    task.set_train(True)

    # ---- loop
    batches = Prefetch(train_loader(cfg, sets.train, env, step), lambda b, s: ready(b, cfg, task, env.device, s, env.rank), step,
                       cfg.data.prefetch)
    val = ValSet(sets.val, cfg.data.batch_size, env) if sets.val is not None else None
    recipe = config.to_dict(cfg)
    meta = {"size": cfg.model.size or cfg.data.resize or cfg.data.crop, "temperature": cfg.model.temperature,
            "description": cfg.description, "recipe": recipe, "stages": [*stages, recipe], "trained_on": cfg.data.train}
    logs = Logs(out, task, step, env.main)
    saver = Saver(out, task, cfg, meta, env, rng_state, last_step=step if blob is not None else None)
    if cfg.train.precise_bn > 0:
        # A stream of its own (seed + 1), so the training batches are the same with or without it.
        bn_loader = DataLoader(sets.train, batch_size=cfg.data.batch_size, collate_fn=data.collate,
                               sampler=data.ShardedStream(len(sets.train), env.rank, env.world, cfg.train.seed + 1),
                               generator=torch.Generator().manual_seed(cfg.train.seed + 1))  # global RNG untouched
        saver.before_eval = lambda: precise_bn(task.model, itertools.islice(iter(bn_loader), cfg.train.precise_bn), env.device)
    if env.main:
        n_params = sum(p.numel() for p in model.parameters())
        print(f"tinct: {'resuming' if blob else 'training'} {cfg.model.name} ({n_params / 1e6:.2f}M params) on "
              f"{len(sets.train)} photos x {env.world} process(es), step {step} -> {cfg.train.steps}, "
              f"{precision_used}, run folder {out}",
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
    try:
        while step < cfg.train.steps:
            t0 = time.perf_counter()
            try:
                batch = next(batches)
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
    finally:
        batches.close()
    bar.close()
    if val is None and env.main:  # nothing to choose by: the final weights are the best we have
        checkpoint.save(best_path, model, meta | {"step": step})
    summary = logs.summary(cfg, model, step, rates, env.world)
    env.barrier()
    return summary


def intra_op_threads(threads: int) -> int:
    """``train.threads``, or with 0 this process's share of the cores it may run on: the
    processes torchrun started on this machine (``LOCAL_WORLD_SIZE``) split them, so that
    together they use each core once. (Loader worker processes run one thread each, torch's
    own setting for them.)"""
    if threads > 0:
        return threads
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))


def validate(cfg: Config) -> None:
    """Recipe values that would only fail deep into a run (after caching photos and loading
    networks), checked before anything runs.

    Raises:
        ConfigError: the key and what is wrong with it.
    """
    from .models import model_spec

    d, t = cfg.data, cfg.task
    if d.sampler not in ("epochs", "draws"):
        raise ConfigError(f"data.sampler: choose epochs or draws, got {d.sampler!r}")
    if d.sampler == "draws" and tuple(d.scale) != (1.0, 1.0):
        raise ConfigError(f"data.sampler=draws takes integer crops of each photo's square; data.scale must be [1, 1], got {list(d.scale)}")
    if d.degrade is not None:
        from .degrade import PRESETS

        if d.degrade not in PRESETS or not 0 <= d.degrade_p <= 1:
            raise ConfigError(f"data.degrade: choose one of {', '.join(sorted(PRESETS))} with data.degrade_p in [0, 1], "
                              f"got {d.degrade!r} with {d.degrade_p}")
    precision.resolve(cfg.train.precision, torch.device("cpu"))  # the name; the device decides later
    terms = {k: v for k, v in vars(t.terms).items() if k in ("l1", "semantic", "features", "adversarial") and v}
    if t.kind != "classification" and (terms or d.work_sizes):
        what = "data.work_sizes" if d.work_sizes else "task.terms." + next(iter(terms))
        raise ConfigError(f"{what}: only classification tasks take it, not task.kind={t.kind}")
    if t.kind == "segmentation":
        from .degrade import PRESETS

        if t.damage not in PRESETS or not 0 <= t.damage_p <= 1:
            raise ConfigError(f"task.damage: choose one of {', '.join(sorted(PRESETS))} with task.damage_p in [0, 1], "
                              f"got {t.damage!r} with {t.damage_p}")
    if t.terms.temperature <= 0:
        raise ConfigError(f"task.terms.temperature must be > 0, got {t.terms.temperature}")
    if d.work_sizes:
        try:
            stride = model_spec(cfg.model.name, **cfg.model.kwargs).stride
        except (KeyError, TypeError) as e:
            raise ConfigError(f"model: {e.args[0] if e.args else e}") from None
        bad = [w for w in d.work_sizes if isinstance(w, bool) or not isinstance(w, int) or w <= 0 or w % stride]
        if bad:
            raise ConfigError(f"data.work_sizes: each must be a positive multiple of {stride} ({cfg.model.name}'s stride), got {bad}")


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


def load_weights(model: torch.nn.Module, path: str) -> dict:
    """Initialise ``model`` from a checkpoint of the same architecture (weights only);
    returns the checkpoint's meta."""
    try:
        blob = checkpoint.read(path)
    except checkpoint.CheckpointError as e:
        raise ConfigError(f"model.init: {e}") from None
    if blob["arch"] != model.arch:
        raise ConfigError(f"model.init: {path} holds {blob['arch']!r}, not {model.arch!r}")
    # A network may add parameters to its family's (``fresh_prefixes``, e.g. a hint network's
    # ``hint_`` layers): those a checkpoint lacks keep their initialisation; nothing else may differ.
    missing, unexpected = model.load_state_dict(blob["state_dict"], strict=False)
    fresh = getattr(model, "fresh_prefixes", ())
    missing = [k for k in missing if not k.startswith(fresh)] if fresh else missing
    if missing or unexpected:
        raise ConfigError(f"model.init: {path} does not fit {model.arch} with {model.arch_kwargs}: "
                          f"{len(missing)} missing weight(s) ({', '.join(missing[:2]) or '-'}), "
                          f"{len(unexpected)} unexpected ({', '.join(unexpected[:2]) or '-'})")
    return blob.get("meta") or {}


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


