"""Conditional GAN (pix2pix): a discriminator on cat(L_n, ab_n); the generator minimises
adversarial + lambda * pixel (+ perceptual) loss."""

from __future__ import annotations


import torch
import torch.nn as nn

from .. import color, losses
from ..config import ConfigError, OptimConfig, TaskConfig
from .base import Task, fit, param_groups
from .critic import Critic


class GANTask(Task):
    """pix2pix-style conditional GAN; D sees cat(L_n, ab_n) at full resolution."""

    train_metrics = ("g_loss", "d_loss", "g_adv", "g_rec", "g_perc", "d_real", "d_fake")
    eval_metrics = ("loss", "ab_mae")

    def __init__(self, model: nn.Module, cfg: TaskConfig, optim: OptimConfig, steps: int, temperature: float):
        super().__init__(model, optim, steps, temperature)
        if self.spec.output == "rgb":
            raise ConfigError(f"task.kind=gan needs an ab or bin generator; {model.arch} outputs RGB")
        self.critic = Critic(self, cfg, optim)  # built first: the same seed gives the same critic as before
        self.disc = self.critic.disc
        self.rec_fn = losses.pixel_loss(cfg.loss, cfg.mix_p)
        self.recon_weight, self.perceptual_weight = cfg.recon_weight, cfg.perceptual_weight
        self.d_warmup = cfg.d_warmup
        self.adv_weight, self.adv_ramp = cfg.adv_weight, cfg.adv_ramp
        self.perceptual = losses.PerceptualLoss(cfg.perceptual_layers) if cfg.perceptual_weight > 0 else None
        self.add_optimizer("generator", param_groups(model, optim.encoder_lr_scale, optim.lr), optim.lr)

    def to(self, device: torch.device) -> "GANTask":
        super().to(device)
        if self.perceptual is not None:
            self.perceptual.to(device)
        return self

    def critics(self) -> list:
        return [self.critic]

    def generate(self, net: nn.Module, L_n: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """ab_n at L_n's size, and the size the generator predicted it at."""
        ab_small = self.to_ab_n(net(L_n))
        return fit(ab_small, L_n), tuple(ab_small.shape[-2:])

    def train_step(self, batch: dict) -> dict[str, float]:
        L_n, ab_n = batch["L_n"], batch["ab_n"]
        train_g = self.critic.steps_done >= self.d_warmup
        with torch.set_grad_enabled(train_g):
            fake, size = self.generate(self.net, L_n)  # (B, 2, H, W)
        # The real pairs D sees carry no more chroma detail than the generator can make: a
        # generator predicting at 1/4 size (ECCV16) gives bilinearly upsampled ab, which D
        # would tell from real ab by its smoothness alone, and no generator update can fix
        # that; so real ab goes through the same area-down, bilinear-up path.
        real = fit(fit(ab_n, size), ab_n)
        d_real, d_fake = self.critic.step(torch.cat([L_n, real], 1), torch.cat([L_n, fake.detach()], 1))
        d_loss = 0.5 * (d_real + d_fake)
        if not train_g:  # discriminator warm-up: the generator's weights and schedule wait
            nan = float("nan")
            return {"g_loss": nan, "d_loss": d_loss.item(), "g_adv": nan, "g_rec": nan, "g_perc": nan,
                    "d_real": d_real.item(), "d_fake": d_fake.item()}

        # Generator: fool the (frozen) discriminator, stay close to the truth.
        g_adv = self.critic.fool(torch.cat([L_n, fake], 1))
        g_rec = self.rec_fn(fake, ab_n)
        g_perc = torch.zeros((), device=L_n.device)
        if self.perceptual is not None:
            pred_rgb = color.lab_to_rgb(torch.cat([color.denormalize_l(L_n), color.denormalize_ab(fake)], 1))
            g_perc = self.perceptual(pred_rgb, batch["rgb"])
        g_loss = self.adv_scale() * g_adv + self.recon_weight * g_rec + self.perceptual_weight * g_perc
        self._check("generator", g_loss=g_loss)
        self._step("generator", g_loss, self.model.parameters())
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

    def lr(self) -> float:
        return self.optimizers["generator"].param_groups[-1]["lr"]
