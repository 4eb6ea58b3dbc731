"""What every task shares: the ``Task`` base (a model, its optimisers and schedules, a
finiteness check, resumable state) and the helpers the tasks use (resize to a
prediction's size, learning-rate schedules, optimisers, parameter groups).
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from .. import color
from ..decode import bin_centers, decode_ab
from ..models import spec_of
from ..config import ConfigError, OptimConfig


class NonFiniteLoss(RuntimeError):
    """The loss became NaN or infinite; no optimiser step was taken with it."""


# ---------------------------------------------------------------- helpers


def fit(x: torch.Tensor, like: torch.Tensor | tuple[int, int]) -> torch.Tensor:
    """Resize ``x`` to ``like``'s spatial size (or to ``like`` = (h, w)): area average
    down, bilinear up."""
    size = tuple(like.shape[-2:]) if isinstance(like, torch.Tensor) else tuple(like)
    if tuple(x.shape[-2:]) == size:
        return x
    if x.shape[-2] > size[0]:
        return F.adaptive_avg_pool2d(x, size)
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


SCHEDULES = ("constant", "cosine", "cosine_total")


def lr_factor(step: int, total: int, schedule: str, warmup: int) -> float:
    """Learning-rate multiplier at ``step``: linear warm-up over ``warmup`` steps, then

    - ``constant``: 1;
    - ``cosine``: a cosine from 1 to 0 over the steps after the warm-up;
    - ``cosine_total``: the cosine of the whole run, ``0.5 (1 + cos(pi step / total))``,
      whose first ``warmup`` steps the warm-up replaces (the schedule the bundled default
      model was trained with).
    """
    if schedule not in SCHEDULES:
        raise ConfigError(f"optim.schedule: choose {', '.join(SCHEDULES)}, got {schedule!r}")
    if warmup and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    if schedule == "cosine_total":
        return 0.5 * (1 + math.cos(math.pi * min(step, total) / max(1, total)))
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.5 * (1 + math.cos(math.pi * t))


def make_optimizer(params, cfg: OptimConfig, lr: float, kind: str | None = None, betas=None,
                   weight_decay: float | None = None) -> torch.optim.Optimizer:
    """The recipe's optimiser (``kind``, ``betas``, ``weight_decay`` override it, e.g. for a critic)."""
    name = kind or cfg.name
    betas = tuple(betas or cfg.betas)
    wd = cfg.weight_decay if weight_decay is None else weight_decay
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=betas, weight_decay=wd)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=betas, weight_decay=wd)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=cfg.momentum, weight_decay=wd)
    key = "optim.name_d" if kind else "optim.name"
    raise ConfigError(f"{key}: unknown optimiser {name!r}; choose adam, adamw or sgd")


def param_groups(model: nn.Module, encoder_lr_scale: float, lr: float) -> list[dict]:
    """One group, or two when a pretrained ``model.encoder`` gets its own learning rate."""
    encoder = getattr(model, "encoder", None)
    if encoder is None or encoder_lr_scale == 1.0:
        return [{"params": list(model.parameters()), "lr": lr}]
    enc = list(encoder.parameters())
    ids = {id(p) for p in enc}
    return [{"params": enc, "lr": lr * encoder_lr_scale}, {"params": [p for p in model.parameters() if id(p) not in ids], "lr": lr}]


def all_finite(*values: torch.Tensor) -> bool:
    """True when every value is finite on every process (one tiny all-reduce under DDP)."""
    bad = torch.tensor([0.0 if all(bool(torch.isfinite(v).all()) for v in values) else 1.0])
    if dist.is_available() and dist.is_initialized():
        bad = bad.to(values[0].device)
        dist.all_reduce(bad)
    return bool(bad.item() == 0)


class Task:
    """Base: a model, its optimiser(s) and schedule(s), and a ``net`` to run forward
    (the model itself, or its DistributedDataParallel wrapper)."""

    train_metrics: tuple[str, ...] = ("loss",)
    eval_metrics: tuple[str, ...] = ("loss", "ab_mae")

    def __init__(self, model: nn.Module, optim: OptimConfig, steps: int, temperature: float):
        self.model = self.net = model
        self.spec = spec_of(model)
        self.temperature = temperature
        self.grad_clip = optim.grad_clip
        self.centers = bin_centers(self.spec) if self.spec.is_bins else None
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.schedulers: dict[str, torch.optim.lr_scheduler.LambdaLR] = {}
        self._steps, self._optim = steps, optim
        self.precision = "fp32"  # set_precision may change it

    def add_optimizer(self, name: str, groups: list[dict], lr: float, **overrides) -> None:
        """A named optimiser with the recipe's schedule (``overrides``: see ``make_optimizer``)."""
        opt = make_optimizer(groups, self._optim, lr, **overrides)
        self.optimizers[name] = opt
        o = self._optim
        self.schedulers[name] = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, self._steps, o.schedule, o.warmup))

    def modules(self) -> dict[str, nn.Module]:
        """The trained networks by name: the colorizer is ``"model"``, a critic's network
        ``"discriminator"`` (its optimiser's name too, so a task has at most one critic)."""
        return {"model": self.model} | {"discriminator": c.disc for c in self.critics()}

    def to(self, device: torch.device) -> "Task":
        for m in self.modules().values():
            m.to(device)
        if self.centers is not None:
            self.centers = self.centers.to(device)
        return self

    def critics(self) -> list:
        """The task's critic (``tasks.Critic``), whose network trains beside the model: none,
        or one. Its network is moved, wrapped, switched and checkpointed here with the model's."""
        return []

    def set_precision(self, precision: str, device: torch.device) -> None:
        """Run the training copies of the networks in ``precision`` (``tinct.precision``);
        call after ``distribute``. Validation uses ``model`` itself, in float32."""
        self.precision = precision
        if precision == "bf16":
            from ..precision import Autocast

            self.net = Autocast(self.net, device)
            for critic in self.critics():
                critic.net, critic.frozen_net = Autocast(critic.net, device), Autocast(critic.disc, device)

    def prepare(self, batch: dict) -> None:
        """Work on a batch that needs no network (targets), done ahead of its step by the
        trainer's prefetch thread; the default has none."""

    def distribute(self, wrap: Callable[[nn.Module], nn.Module]) -> None:
        """Wrap the networks that train (e.g. in DistributedDataParallel)."""
        self.net = wrap(self.model)
        for critic in self.critics():
            critic.net = wrap(critic.disc)

    def set_train(self, mode: bool) -> None:
        for m in self.modules().values():
            m.train(mode)

    def lr(self) -> float:
        return self.optimizers[next(iter(self.optimizers))].param_groups[-1]["lr"]

    def _step(self, name: str, loss: torch.Tensor, params) -> None:
        opt = self.optimizers[name]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.grad_clip > 0:
            nn.utils.clip_grad_norm_(params, self.grad_clip)
        opt.step()
        self.schedulers[name].step()

    def _check(self, step_what: str, **values: torch.Tensor) -> None:
        if not all_finite(*values.values()):
            shown = ", ".join(f"{k}={v.item():.4g}" for k, v in values.items())
            raise NonFiniteLoss(f"non-finite {step_what} loss ({shown})")

    @torch.no_grad()
    def predict_ab_n(self, L_n: torch.Tensor) -> torch.Tensor:
        """ab_n at the input's resolution, with the model as it is (call in eval mode)."""
        return fit(self.to_ab_n(self.model(L_n)), L_n)

    def to_ab_n(self, y: torch.Tensor) -> torch.Tensor:
        """The model's raw output -> ab_n at its own resolution (differentiable; ``tinct.decode``)."""
        return decode_ab(y, self.spec, self.temperature, centers=self.centers, normalized=True)

    @torch.no_grad()
    def sample_rows(self, batch: dict) -> list[torch.Tensor]:
        """Rows of a run's validation grid (``tinct.runfolder.save_grid``), each sRGB
        ``(n, 3, h, w)``: grey input, prediction, truth (call in eval mode)."""
        ab = self.predict_ab_n(batch["L_n"])
        L = color.denormalize_l(batch["L_n"])
        rows = [torch.cat([L, torch.zeros_like(ab)], 1), torch.cat([L, color.denormalize_ab(ab)], 1),
                torch.cat([L, color.denormalize_ab(batch["ab_n"])], 1)]
        return [color.lab_to_rgb(r) for r in rows]

    def _ab_mae(self, batch: dict) -> torch.Tensor:
        """Mean |ab - ab_true| in Lab units at full resolution: one yardstick for all tasks."""
        return color.denormalize_ab((self.predict_ab_n(batch["L_n"]) - batch["ab_n"]).abs().mean())

    def state_dict(self) -> dict:
        state = {f"optimizer.{k}": o.state_dict() for k, o in self.optimizers.items()}
        state.update({f"scheduler.{k}": s.state_dict() for k, s in self.schedulers.items()})
        state.update({"discriminator": c.disc.state_dict() for c in self.critics()})
        return state

    def load_state_dict(self, state: dict) -> None:
        for k, o in self.optimizers.items():
            o.load_state_dict(state[f"optimizer.{k}"])
        for k, s in self.schedulers.items():
            s.load_state_dict(state[f"scheduler.{k}"])
        for c in self.critics():
            c.disc.load_state_dict(state["discriminator"])


