"""Tasks: what one optimisation step is. A task owns the loss, the optimisers and their
schedules; the trainer (``tinct.train``) only feeds it batches.

- ``RegressionTask``: pixel loss between the prediction and ab_n (or RGB for RGB
  models); a bin model is decoded with the (differentiable) annealed mean first, which
  is how seed 003 fine-tunes ECCV16 with MSE.
- ``ClassificationTask``: cross-entropy over ab bins (313 or 16x16), soft or hard
  targets, optionally class-weighted (Zhang's rebalancing or seed 002's 1/sqrt(n + 1e5)).
- ``GANTask``: conditional GAN (pix2pix): a discriminator on cat(L_n, ab_n); the
  generator minimises adversarial + lambda * pixel (+ perceptual) loss.

Every batch is a dict from ``tinct.data.collate``: ``L_n (B, 1, H, W)``, ``ab_n (B, 2,
H, W)``, ``rgb (B, 3, H, W)``. Predictions at a lower resolution (Zhang-style models
predict at 1/4) are compared with the target averaged down to their size; the generator
of a GAN and all validation metrics work at the input's full resolution.
"""

from __future__ import annotations

import contextlib
import math
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from . import color, losses
from .config import ConfigError, OptimConfig, TaskConfig


class NonFiniteLoss(RuntimeError):
    """The loss became NaN or infinite; no optimiser step was taken with it."""


# ---------------------------------------------------------------- helpers


def to_ab_n(y: torch.Tensor, output: str, centers: torch.Tensor | None, temperature: float) -> torch.Tensor:
    """A model's raw output -> ab_n ``(B, 2, h, w)`` (differentiable)."""
    if output == "ab":
        return y
    if output == "rgb":
        return color.normalize_ab(color.rgb_to_lab(y)[:, 1:])
    if output.startswith("bins"):
        return color.normalize_ab(color.annealed_mean(y, centers, temperature))
    raise ValueError(f"model output kind {output!r} cannot be turned into ab")


def fit(x: torch.Tensor, like: torch.Tensor | tuple[int, int]) -> torch.Tensor:
    """Resize ``x`` to ``like``'s spatial size (or to ``like`` = (h, w)): area average
    down, bilinear up."""
    size = tuple(like.shape[-2:]) if isinstance(like, torch.Tensor) else tuple(like)
    if tuple(x.shape[-2:]) == size:
        return x
    if x.shape[-2] > size[0]:
        return F.adaptive_avg_pool2d(x, size)
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def lr_factor(step: int, total: int, schedule: str, warmup: int) -> float:
    """Learning-rate multiplier at ``step``: linear warm-up, then constant or cosine to 0."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.5 * (1 + math.cos(math.pi * t))


def make_optimizer(params, cfg: OptimConfig, lr: float) -> torch.optim.Optimizer:
    if cfg.name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    if cfg.name == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    if cfg.name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    raise ConfigError(f"optim.name: unknown optimiser {cfg.name!r}; choose adam, adamw or sgd")


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
        self.output = model.output
        self.temperature = temperature
        self.grad_clip = optim.grad_clip
        self.centers = torch.from_numpy(color.bin_centers(self.output[4:])) if self.output.startswith("bins") else None
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.schedulers: dict[str, torch.optim.lr_scheduler.LambdaLR] = {}
        self._steps, self._optim = steps, optim

    def add_optimizer(self, name: str, groups: list[dict], lr: float) -> None:
        opt = make_optimizer(groups, self._optim, lr)
        self.optimizers[name] = opt
        o = self._optim
        self.schedulers[name] = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, self._steps, o.schedule, o.warmup))

    def modules(self) -> dict[str, nn.Module]:
        """The trained networks by name (the colorizer is ``"model"``)."""
        return {"model": self.model}

    def to(self, device: torch.device) -> "Task":
        for m in self.modules().values():
            m.to(device)
        if self.centers is not None:
            self.centers = self.centers.to(device)
        return self

    def distribute(self, wrap: Callable[[nn.Module], nn.Module]) -> None:
        """Wrap the networks that train (e.g. in DistributedDataParallel)."""
        self.net = wrap(self.model)

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
        return fit(to_ab_n(self.model(L_n), self.output, self.centers, self.temperature), L_n)

    def _ab_mae(self, batch: dict) -> torch.Tensor:
        """Mean |ab - ab_true| in Lab units at full resolution: one yardstick for all tasks."""
        return color.denormalize_ab((self.predict_ab_n(batch["L_n"]) - batch["ab_n"]).abs().mean())

    def state_dict(self) -> dict:
        state = {f"optimizer.{k}": o.state_dict() for k, o in self.optimizers.items()}
        state.update({f"scheduler.{k}": s.state_dict() for k, s in self.schedulers.items()})
        return state

    def load_state_dict(self, state: dict) -> None:
        for k, o in self.optimizers.items():
            o.load_state_dict(state[f"optimizer.{k}"])
        for k, s in self.schedulers.items():
            s.load_state_dict(state[f"scheduler.{k}"])


# ---------------------------------------------------------------- regression


class RegressionTask(Task):
    def __init__(self, model: nn.Module, cfg: TaskConfig, optim: OptimConfig, steps: int, temperature: float):
        super().__init__(model, optim, steps, temperature)
        self.loss_fn = losses.pixel_loss(cfg.loss, cfg.mix_p)
        self.add_optimizer("model", param_groups(model, optim.encoder_lr_scale, optim.lr), optim.lr)

    def loss(self, net: nn.Module, batch: dict) -> torch.Tensor:
        y = net(batch["L_n"])
        if self.output == "rgb":
            return self.loss_fn(y, fit(batch["rgb"], y))
        pred = to_ab_n(y, self.output, self.centers, self.temperature)
        return self.loss_fn(pred, fit(batch["ab_n"], pred))

    def train_step(self, batch: dict) -> dict[str, float]:
        loss = self.loss(self.net, batch)
        self._check("training", loss=loss)
        self._step("model", loss, self.model.parameters())
        return {"loss": loss.item()}

    @torch.no_grad()
    def eval_step(self, batch: dict) -> dict[str, float]:
        return {"loss": self.loss(self.model, batch).item(), "ab_mae": self._ab_mae(batch).item()}


# ---------------------------------------------------------------- classification


def estimate_prior(dataset, kind: str, n_images: int = 500, stride: int = 4, batch: int = 50) -> np.ndarray:
    """Pixel counts of each ab bin over (an even sample of) the training photos' centre
    crops, with ab averaged down by ``stride`` as the bin models see it.

    Returns:
        float64 ``(Q,)`` counts.
    """
    from .data import collate

    centers = torch.from_numpy(color.bin_centers(kind))
    idx = np.unique(np.linspace(0, len(dataset) - 1, min(n_images, len(dataset))).round().astype(int))
    counts = torch.zeros(len(centers), dtype=torch.float64)
    for i in range(0, len(idx), batch):
        ab = color.denormalize_ab(collate([dataset[int(j)] for j in idx[i:i + batch]])["ab_n"])
        labels = hard_labels(F.avg_pool2d(ab, stride) if stride > 1 else ab, kind, centers)
        counts += torch.bincount(labels.flatten(), minlength=len(centers)).double()
    return counts.numpy()


def hard_labels(ab: torch.Tensor, kind: str, centers: torch.Tensor) -> torch.Tensor:
    """ab ``(B, 2, H, W)`` in Lab units -> bin index ``(B, H, W)``."""
    return color.quantize_16x16(ab) if kind == "16x16" else color.nearest_bin(ab, centers)


class ClassificationTask(Task):
    train_metrics = ("loss", "acc")
    eval_metrics = ("loss", "acc", "ab_mae")

    def __init__(self, model: nn.Module, cfg: TaskConfig, optim: OptimConfig, steps: int, temperature: float,
                 prior: np.ndarray | None, pixels_per_photo: int, n_photos: int):
        super().__init__(model, optim, steps, temperature)
        if not self.output.startswith("bins"):
            raise ConfigError(f"task.kind=classification needs a bin model; {model.arch} outputs {self.output!r}")
        if cfg.encoding not in ("soft", "hard"):
            raise ConfigError(f"task.encoding: choose soft or hard, got {cfg.encoding!r}")
        self.kind, self.encoding = self.output[4:], cfg.encoding
        self.prior = None if prior is None else np.asarray(prior, dtype=np.float64)
        if cfg.class_weights == "none":
            weights = None
        elif self.prior is None:
            raise ValueError("class weights need the bin prior")
        elif cfg.class_weights == "rebalance":
            weights = torch.from_numpy(color.rebalance_weights(self.prior, cfg.rebalance_lambda, cfg.prior_sigma, self.centers.numpy()))
        elif cfg.class_weights == "inv_sqrt":  # n_c: the prior scaled to every pixel of the training set
            n_c = torch.from_numpy(self.prior / self.prior.sum() * pixels_per_photo * n_photos)
            weights = losses.inv_sqrt_weights(n_c)
        else:
            raise ConfigError(f"task.class_weights: choose none, rebalance or inv_sqrt, got {cfg.class_weights!r}")
        self.class_weights = weights
        self.add_optimizer("model", param_groups(model, optim.encoder_lr_scale, optim.lr), optim.lr)

    def to(self, device: torch.device) -> "ClassificationTask":
        super().to(device)
        if self.class_weights is not None:
            self.class_weights = self.class_weights.to(device)
        return self

    def loss(self, net: nn.Module, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        logits = net(batch["L_n"])  # (B, Q, h, w)
        ab = color.denormalize_ab(fit(batch["ab_n"], logits))
        labels = hard_labels(ab, self.kind, self.centers)
        if self.encoding == "soft":
            loss = losses.soft_cross_entropy(logits, color.soft_encode(ab, self.centers), self.class_weights)
        else:
            loss = losses.hard_cross_entropy(logits, labels, self.class_weights)
        acc = (logits.argmax(1) == labels).float().mean()  # per-pixel class accuracy
        return loss, acc

    def train_step(self, batch: dict) -> dict[str, float]:
        loss, acc = self.loss(self.net, batch)
        self._check("training", loss=loss)
        self._step("model", loss, self.model.parameters())
        return {"loss": loss.item(), "acc": acc.item()}

    @torch.no_grad()
    def eval_step(self, batch: dict) -> dict[str, float]:
        loss, acc = self.loss(self.model, batch)
        return {"loss": loss.item(), "acc": acc.item(), "ab_mae": self._ab_mae(batch).item()}

    def state_dict(self) -> dict:
        return super().state_dict() | {"prior": None if self.prior is None else torch.from_numpy(self.prior)}


# ---------------------------------------------------------------- GAN


class GANTask(Task):
    """pix2pix-style conditional GAN; D sees cat(L_n, ab_n) at full resolution."""

    train_metrics = ("g_loss", "d_loss", "g_adv", "g_rec", "g_perc", "d_real", "d_fake")
    eval_metrics = ("loss", "ab_mae")

    def __init__(self, model: nn.Module, cfg: TaskConfig, optim: OptimConfig, steps: int, temperature: float):
        from .models import create_model

        super().__init__(model, optim, steps, temperature)
        if self.output == "rgb":
            raise ConfigError(f"task.kind=gan needs an ab or bin generator; {model.arch} outputs RGB")
        self.disc = create_model(cfg.discriminator, **cfg.discriminator_kwargs)
        if getattr(self.disc, "output", None) != "critic":
            raise ConfigError(f"task.discriminator: {cfg.discriminator!r} is not a discriminator")
        self.d_net = self.disc
        self.gan_loss = losses.GANLoss(cfg.gan_mode)
        self.rec_fn = losses.pixel_loss(cfg.loss, cfg.mix_p)
        self.recon_weight, self.perceptual_weight = cfg.recon_weight, cfg.perceptual_weight
        self.d_warmup = cfg.d_warmup
        self.adv_weight, self.adv_ramp = cfg.adv_weight, cfg.adv_ramp
        self.perceptual = losses.PerceptualLoss(cfg.perceptual_layers) if cfg.perceptual_weight > 0 else None
        self.add_optimizer("generator", param_groups(model, optim.encoder_lr_scale, optim.lr), optim.lr)
        self.add_optimizer("discriminator", [{"params": list(self.disc.parameters()), "lr": optim.lr_d}], optim.lr_d)

    def modules(self) -> dict[str, nn.Module]:
        return {"model": self.model, "discriminator": self.disc}

    def to(self, device: torch.device) -> "GANTask":
        super().to(device)
        if self.perceptual is not None:
            self.perceptual.to(device)
        return self

    def distribute(self, wrap: Callable[[nn.Module], nn.Module]) -> None:
        self.net, self.d_net = wrap(self.model), wrap(self.disc)

    def generate(self, net: nn.Module, L_n: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """ab_n at L_n's size, and the size the generator predicted it at."""
        ab_small = to_ab_n(net(L_n), self.output, self.centers, self.temperature)
        return fit(ab_small, L_n), tuple(ab_small.shape[-2:])

    def train_step(self, batch: dict) -> dict[str, float]:
        L_n, ab_n = batch["L_n"], batch["ab_n"]
        # The discriminator's scheduler counts its steps, and is restored on resume.
        train_g = self.schedulers["discriminator"].last_epoch >= self.d_warmup
        with torch.set_grad_enabled(train_g):
            fake, size = self.generate(self.net, L_n)  # (B, 2, H, W)
        # The real pairs D sees carry no more chroma detail than the generator can make: a
        # generator predicting at 1/4 size (ECCV16) gives bilinearly upsampled ab, which D
        # would tell from real ab by its smoothness alone, and no generator update can fix
        # that; so real ab goes through the same area-down, bilinear-up path.
        real = fit(fit(ab_n, size), ab_n)

        # Discriminator: real pairs -> 1, generated pairs -> 0; two forwards, so the first
        # backward skips DDP's gradient sync and the second syncs the sum.
        no_sync = getattr(self.d_net, "no_sync", contextlib.nullcontext)
        with no_sync():
            d_real = self.gan_loss(self.d_net(torch.cat([L_n, real], 1)), True)
            (0.5 * d_real).backward()
        d_fake = self.gan_loss(self.d_net(torch.cat([L_n, fake.detach()], 1)), False)
        (0.5 * d_fake).backward()
        self._check("discriminator", d_real=d_real, d_fake=d_fake)
        opt_d = self.optimizers["discriminator"]
        if self.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.disc.parameters(), self.grad_clip)
        opt_d.step()
        opt_d.zero_grad(set_to_none=True)
        self.schedulers["discriminator"].step()

        d_loss = 0.5 * (d_real + d_fake)
        if not train_g:  # discriminator warm-up: the generator's weights and schedule wait
            nan = float("nan")
            return {"g_loss": nan, "d_loss": d_loss.item(), "g_adv": nan, "g_rec": nan, "g_perc": nan,
                    "d_real": d_real.item(), "d_fake": d_fake.item()}

        # Generator: fool the (frozen) discriminator, stay close to the truth.
        self.disc.requires_grad_(False)
        try:
            g_adv = self.gan_loss(self.disc(torch.cat([L_n, fake], 1)), True)
            g_rec = self.rec_fn(fake, ab_n)
            g_perc = torch.zeros((), device=L_n.device)
            if self.perceptual is not None:
                pred_rgb = color.lab_to_rgb(torch.cat([color.denormalize_l(L_n), color.denormalize_ab(fake)], 1))
                g_perc = self.perceptual(pred_rgb, batch["rgb"])
            g_loss = self.adv_scale() * g_adv + self.recon_weight * g_rec + self.perceptual_weight * g_perc
            self._check("generator", g_loss=g_loss)
            self._step("generator", g_loss, self.model.parameters())
        finally:
            self.disc.requires_grad_(True)
        return {"g_loss": g_loss.item(), "d_loss": d_loss.item(), "g_adv": g_adv.item(), "g_rec": g_rec.item(),
                "g_perc": g_perc.item(), "d_real": d_real.item(), "d_fake": d_fake.item()}

    def adv_scale(self) -> float:
        """The adversarial loss's weight now: ``adv_weight``, ramped linearly over the
        generator's first ``adv_ramp`` steps (its scheduler counts them; restored on resume)."""
        if self.adv_ramp <= 0:
            return self.adv_weight
        done = self.schedulers["generator"].last_epoch
        return self.adv_weight * min(1.0, (done + 1) / self.adv_ramp)

    @torch.no_grad()
    def eval_step(self, batch: dict) -> dict[str, float]:
        fake, _ = self.generate(self.model, batch["L_n"])
        return {"loss": self.rec_fn(fake, batch["ab_n"]).item(), "ab_mae": self._ab_mae(batch).item()}

    def state_dict(self) -> dict:
        return super().state_dict() | {"discriminator": self.disc.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.disc.load_state_dict(state["discriminator"])

    def lr(self) -> float:
        return self.optimizers["generator"].param_groups[-1]["lr"]


# ---------------------------------------------------------------- factory


def build(cfg: TaskConfig, optim: OptimConfig, model: nn.Module, steps: int, temperature: float, train_set=None,
          prior: np.ndarray | None = None) -> Task:
    """The task a recipe asks for.

    Args:
        train_set: the training crops, to estimate the bin prior when class weights need
            one and ``prior`` (e.g. from a checkpoint being resumed) is not given.
    """
    if cfg.kind == "regression":
        return RegressionTask(model, cfg, optim, steps, temperature)
    if cfg.kind == "classification":
        if not getattr(model, "output", "").startswith("bins"):
            raise ConfigError(f"task.kind=classification needs a bin model; {model.arch} outputs {model.output!r}")
        if prior is None and cfg.class_weights != "none":
            if train_set is None:
                raise ValueError("the class weights need a bin prior: pass train_set or prior")
            prior = estimate_prior(train_set, model.output[4:], cfg.prior_images)
        n = len(train_set) if train_set is not None else 1
        crop = train_set.crop if train_set is not None else 1
        return ClassificationTask(model, cfg, optim, steps, temperature, prior, crop * crop, n)
    if cfg.kind == "gan":
        return GANTask(model, cfg, optim, steps, temperature)
    raise ConfigError(f"task.kind: choose regression, classification or gan, got {cfg.kind!r}")
