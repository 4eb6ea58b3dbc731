"""Training speed of the default recipe on this machine, in one run (docs/PERFORMANCE.md).

Usage:
    python benchmarks/train_speed.py --data ../shared/corpus/train [--rounds 5] [--steps 6] [--profile 8]

Three ways of taking a step of the default model (EfficientNet-Lite0 U-Net over 313 bins,
128x128 crops, batch 32), run interleaved in rounds so that the machine's load hits all
three alike; each round times ``--steps`` steps of each, and the medians over rounds are
reported with their ratios:

  trainer     the whole step of ``tinct train recipes/default/1-base.yaml train.precision=auto``
              (its loader and sampler, ``--prefetch`` batches made ahead, bfloat16 where the CPU has it,
              channels-last layout, the rebalanced soft CE, AdamW with two parameter groups);
  trainer-fp32-inline
              the same step the way the trainer took it before issue 29: float32,
              contiguous layout, the batch made in the loop (no prefetch);
  bare-fp32   the model's float32 forward + backward + optimiser step alone, on one fixed
              batch already in memory (no data, no targets: the ceiling a trainer that did
              nothing else would have in float32).

``--profile N`` then splits N trainer steps into data wait, forward (with the loss),
backward and optimiser, and compares the network's achieved GFLOP/s in forward + backward
with this CPU's measured float32 and bfloat16 matmul rates.

``--recipes`` instead times every recipe in ``recipes/`` (its own crops and batch; the
photos of ``--data``) five ways, interleaved: the trainer as before issue 29 (float32,
contiguous, batches made in the loop), float32 channels-last, bfloat16 autocast (``auto``)
contiguous and channels-last, and as the recipe is written; it prints img/s and the ratios
to "before": no recipe may be slower as written, and the table says per model family
where channels-last and bfloat16 pay.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

from tinct import config, data, precision, tasks
from tinct.loader import Prefetch, ready, train_loader
from tinct.models import create_model

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "default" / "1-base.yaml"


class Env:  # what train_loader needs of the trainer's process description
    rank, world, device = 0, 1, torch.device("cpu")


def trainer(data_dir: str, overrides: list[str], seed: int = 0, recipe: Path = RECIPE):
    """(task, batches, precision) as ``tinct train`` builds them, for ``recipe`` (default: the
    default model's first stage) with ``overrides``."""
    cfg = config.load(recipe, [f"data.train={data_dir}", "task.prior_images=200", f"train.seed={seed}", *overrides])
    sets = data.build(cfg.data)
    torch.manual_seed(seed)
    model = create_model(cfg.model.name, pretrained=cfg.model.pretrained, **cfg.model.kwargs)
    task = tasks.build(cfg.task, cfg.optim, model, cfg.train.steps, cfg.model.temperature, sets.train)
    if cfg.train.channels_last:
        model.to(memory_format=torch.channels_last)
    used = precision.resolve(cfg.train.precision, Env.device)
    task.set_precision(used, Env.device)
    task.set_train(True)
    batches = Prefetch(train_loader(cfg, sets.train, Env, 0), lambda b, s: ready(b, cfg, task, Env.device, s), 0,
                       cfg.data.prefetch)
    return task, batches, used


def bare_step(batch: dict):
    """The float32 forward + backward + optimiser step of the same model on a fixed batch."""
    model = create_model("effunet_bins313", pretrained=True).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=1e-4)
    x = batch["L_n"].contiguous()
    target = torch.softmax(torch.randn(x.shape[0], 313, x.shape[-2] // 4, x.shape[-1] // 4), 1)

    def step():
        logits = model(x)
        loss = -(target * torch.log_softmax(logits, 1)).sum(1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step, model


def timed(fn, n: int, batch: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return n * batch / (time.perf_counter() - t0)


def matmul_rate(dtype: torch.dtype, n: int = 2048, repeats: int = 8) -> float:
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    for _ in range(2):
        a @ b
    t0 = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - t0) / 1e9


def profile(task, batches, n: int) -> dict[str, float]:
    """Seconds per step in data wait, forward (+ loss), backward and optimiser, over ``n`` steps."""
    spent = dict.fromkeys(("data wait", "forward + loss", "backward", "optimiser"), 0.0)
    backward, steps = torch.Tensor.backward, [o.step for o in task.optimizers.values()]

    def timed_backward(self, *a, **k):
        t0 = time.perf_counter()
        backward(self, *a, **k)
        spent["backward"] += time.perf_counter() - t0

    def timed_step(fn):
        def run(*a, **k):
            t0 = time.perf_counter()
            out = fn(*a, **k)
            spent["optimiser"] += time.perf_counter() - t0
            return out
        return run

    torch.Tensor.backward = timed_backward
    for opt, fn in zip(task.optimizers.values(), steps):
        opt.step = timed_step(fn)
    try:
        total = 0.0
        for _ in range(n):
            t0 = time.perf_counter()
            batch = next(batches)
            t1 = time.perf_counter()
            task.train_step(batch)
            t2 = time.perf_counter()
            spent["data wait"] += t1 - t0
            total += t2 - t0
    finally:
        torch.Tensor.backward = backward
        for opt, fn in zip(task.optimizers.values(), steps):
            opt.step = fn
    spent["forward + loss"] = total - sum(spent.values())
    return {k: v / n for k, v in spent.items()} | {"step": total / n}


VARIANTS = {  # name -> overrides; "before" is the trainer as it was before issue 29
    "before": ["train.precision=fp32", "train.channels_last=false", "data.prefetch=0"],
    "fp32+cl": ["train.precision=fp32", "train.channels_last=true", "data.prefetch=0"],
    "bf16": ["train.precision=auto", "train.channels_last=false", "data.prefetch=0"],
    "bf16+cl": ["train.precision=auto", "train.channels_last=true", "data.prefetch=0"],
    "recipe": [],
}


def recipe_speeds(data_dir: str, rounds: int, steps: int, only: str | None = None) -> None:
    """Each recipe's img/s with the trainer as before issue 29, in float32 and bfloat16
    (``auto``), contiguous and channels-last, and as the recipe says, interleaved; ratios to
    "before" (the per-family table of docs/PERFORMANCE.md)."""
    root = RECIPE.parents[1]
    names = list(VARIANTS)
    print(f"img/s, medians of {rounds} rounds x {steps} steps; ratio = variant / before")
    print(f"{'recipe':<30}" + "".join(f"{n:>9}" for n in names) + "   " + "  ".join(f"{n:>7}" for n in names[1:]))
    for recipe in sorted(root.rglob("*.yaml")):
        name = recipe.relative_to(root).with_suffix("").as_posix()
        if only and only not in name:
            continue
        cfg = config.load(recipe)
        extra = ["model.init=null", "task.prior_images=100", "task.d_warmup=0"]
        runs = {}
        for v, overrides in VARIANTS.items():
            task, batches, _ = trainer(data_dir, [*extra, *overrides], recipe=recipe)
            runs[v] = (task, batches)
        bs = cfg.data.batch_size
        for task, batches in runs.values():
            timed(lambda: task.train_step(next(batches)), 1, bs)  # warm-up
        rates = {v: [] for v in runs}
        for _ in range(rounds):
            for v, (task, batches) in runs.items():
                rates[v].append(timed(lambda: task.train_step(next(batches)), steps, bs))
        med = {v: statistics.median(r) for v, r in rates.items()}
        print(f"{name:<30}" + "".join(f"{med[v]:9.2f}" for v in names) + "   "
              + "  ".join(f"{med[v] / med['before']:6.2f}x" for v in names[1:]), flush=True)
        for _, batches in runs.values():
            batches.close()
        del runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="a folder of training photos")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=6, help="steps of each kind per round")
    ap.add_argument("--profile", type=int, default=8, metavar="N", help="profile N trainer steps (0: skip)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prefetch", type=int, default=0, help="data.prefetch of the trainer measured (default 0)")
    ap.add_argument("--recipes", action="store_true", help="time every recipe before issue 29, in fp32/bf16 x contiguous/channels-last and as written, instead")
    ap.add_argument("--only", metavar="TEXT", help="with --recipes: only recipes whose name contains TEXT")
    ap.add_argument("--max-gb", type=float, default=16, help="address-space limit of this process (GB)")
    args = ap.parse_args()
    import resource

    # A big recipe (ECCV16 at 256 px) needs several GB: past this limit it fails alone with
    # MemoryError instead of waking the kernel's OOM killer on the whole machine.
    limit = int(args.max_gb * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    torch.set_num_threads(args.threads)
    if args.recipes:
        recipe_speeds(args.data, args.rounds, args.steps, args.only)
        return
    new, new_batches, used = trainer(args.data, ["train.precision=auto", f"data.prefetch={args.prefetch}"])
    old, old_batches, _ = trainer(args.data, ["train.precision=fp32", "train.channels_last=false", "data.prefetch=0"], 1)
    batch_size = 32
    bare, bare_model = bare_step(next(old_batches))
    kinds = {f"trainer ({used}, prefetch {args.prefetch}, channels_last)": lambda: new.train_step(next(new_batches)),
             "trainer-fp32-inline (before issue 29)": lambda: old.train_step(next(old_batches)),
             "bare-fp32 (forward + backward + AdamW, fixed batch)": bare}
    for fn in kinds.values():  # warm up: first steps allocate, and targets start being made ahead
        timed(fn, 2, batch_size)
    rates = {k: [] for k in kinds}
    for r in range(args.rounds):
        for k, fn in kinds.items():
            rates[k].append(timed(fn, args.steps, batch_size))
        print(f"round {r + 1}: " + ", ".join(f"{v[-1]:.1f}" for v in rates.values()) + " img/s", flush=True)
    med = {k: statistics.median(v) for k, v in rates.items()}
    names = list(med)
    print(f"\n{args.threads} threads, batch {batch_size}, 128x128, {args.rounds} rounds x {args.steps} steps, medians:")
    for k, v in med.items():
        print(f"  {k:<55} {v:6.1f} img/s")
    print(f"  trainer / bare-fp32                                     {med[names[0]] / med[names[2]]:.2f}x")
    print(f"  trainer-fp32-inline / bare-fp32                         {med[names[1]] / med[names[2]]:.2f}x")
    print(f"  trainer / trainer-fp32-inline (speed-up over before)    {med[names[0]] / med[names[1]]:.2f}x")
    if args.profile:
        from torch.utils.flop_counter import FlopCounterMode

        spent = profile(new, new_batches, args.profile)
        print(f"\nprofile of {args.profile} trainer steps ({used}), ms per step:")
        for k, v in spent.items():
            print(f"  {k:<20} {1000 * v:7.1f}  ({100 * v / spent['step']:.0f}%)" if k != "step" else f"  {k:<20} {1000 * v:7.1f}")
        # Forward FLOPs counted by torch, backward taken as twice the forward (the input and
        # the weight gradients): torch's counter charges a grouped convolution's backward as a
        # dense one (groups x too much: a depthwise 3x3 on 8x256x32x32 counts 9.7 GFLOP instead
        # of 0.08; pytorch/pytorch#183405), which made this line report 380.7 GFLOP a step.
        x = torch.zeros(batch_size, 1, 128, 128)
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            bare_model(x)
        gflop = 3 * counter.get_total_flops() / 1e9
        achieved = gflop / (spent["forward + loss"] + spent["backward"])
        f32, b16 = matmul_rate(torch.float32), matmul_rate(torch.bfloat16)
        print(f"  network forward + backward (3 x forward): {gflop:.1f} GFLOP per step -> {achieved:.0f} GFLOP/s achieved; "
              f"matmul 2048^2 on this CPU: {f32:.0f} GFLOP/s float32 ({100 * achieved / f32:.0f}%), "
              f"{b16:.0f} GFLOP/s bfloat16 ({100 * achieved / b16:.0f}%)")
    for b in (new_batches, old_batches):
        b.close()
    sys.stdout.flush()


if __name__ == "__main__":
    main()
