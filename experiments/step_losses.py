"""Record the total loss of every training step of a trainer, to full float precision,
for issue 21's equivalence check between ``tinct train`` and the retired
``scripts/train_default.py``.

Both trainers check each step's total loss with ``torch.isfinite`` before its backward
pass, so this wrapper records every 0-d tensor that requires grad passed to it, in
``OUT/steps.csv``, and stops the process after ``--steps`` of them (the learning-rate
schedule still follows the trainer's own total step count).

The script is gone from the tree; get it back with
``git show f1ba123:scripts/train_default.py > /tmp/train_default.py``. On today's package
change its line ``from tinct.models.effunet import _TAPS, load_efficientnet_lite0`` to
``from tinct.models.layers import LITE0_TAPS as _TAPS, load_efficientnet_lite0`` (the same
blocks, moved; the reference run of docs/MODEL_CARD.md predates the move).

Usage:
    python experiments/step_losses.py --steps 100 --csv runs/eq_tinct.csv -- tinct train recipes/default/3-semantic.yaml ...
    python experiments/step_losses.py --steps 100 --csv runs/eq_script.csv -- /tmp/train_default.py --data ... --out ...
    python experiments/step_losses.py --compare runs/eq_tinct.csv runs/eq_script.csv
"""

import argparse
import importlib.util
import os
import sys


def record(steps: int, csv: str, command: list[str]) -> None:
    import torch

    log = open(csv, "w")
    log.write("step,loss\n")
    isfinite, count = torch.isfinite, [0]

    def recording(x):
        if isinstance(x, torch.Tensor) and x.dim() == 0 and x.requires_grad:  # a step's total loss
            count[0] += 1
            log.write(f"{count[0]},{x.item():.9g}\n")
            log.flush()
            if count[0] > steps:  # the next step began: the first `steps` are recorded
                os._exit(0)
        return isfinite(x)

    torch.isfinite = recording
    if command[0] == "tinct":
        from tinct.cli import main

        sys.argv = command
        main()
        return
    spec = importlib.util.spec_from_file_location("trainer", command[0])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.argv = command
    module.main()


def compare(a: str, b: str) -> None:
    import numpy as np

    x, y = (np.loadtxt(p, delimiter=",", skiprows=1) for p in (a, b))
    n = min(len(x), len(y))
    x, y = x[:n, 1], y[:n, 1]
    rel = np.abs(x - y) / np.abs(y)
    print(f"{n} steps: max |a - b| = {np.abs(x - y).max():.3g}, max relative = {rel.max():.3g} "
          f"(step {rel.argmax() + 1}), mean relative = {rel.mean():.3g}, identical = {(x == y).sum()}")
    for i in range(0, n, 10):
        print(f"  step {i + 1:3d}: {x[i]:.9g}  {y[i]:.9g}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--csv")
    ap.add_argument("--compare", nargs=2, metavar=("A", "B"))
    ap.add_argument("command", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    if args.compare:
        compare(*args.compare)
    else:
        record(args.steps, args.csv, args.command[1:] if args.command[:1] == ["--"] else args.command)


if __name__ == "__main__":
    main()
