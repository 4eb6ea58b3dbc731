"""The critic: a discriminator, its optimiser and schedule, and its training step.

One critic step serves both places that train a discriminator: ``GANTask`` (pix2pix's
conditional GAN) and the classification task's adversarial term (``tasks.terms``).
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn as nn

from .. import losses
from ..config import ConfigError, OptimConfig, TaskConfig
from .base import Task


class Critic:
    """A discriminator trained beside ``task``'s model, registered as the task's
    ``"discriminator"`` optimiser (so its state and schedule are checkpointed with it).

    The discriminator's optimiser is the recipe's (``optim.name``, ``optim.betas``,
    ``optim.weight_decay``) at ``optim.lr_d``, unless ``optim.name_d``, ``optim.betas_d`` or
    ``optim.weight_decay_d`` say otherwise.
    """

    def __init__(self, task: Task, cfg: TaskConfig, optim: OptimConfig):
        from ..models import create_model, spec_of

        self.disc = create_model(cfg.discriminator, **cfg.discriminator_kwargs)
        if spec_of(self.disc).output != "critic":
            raise ConfigError(f"task.discriminator: {cfg.discriminator!r} is not a discriminator")
        self.net = self.disc  # DistributedDataParallel's wrapper under torchrun (and bf16's autocast)
        self.frozen_net = self.disc  # what ``fool`` runs: unwrapped (no gradient sync), autocast in bf16
        self.gan_loss = losses.GANLoss(cfg.gan_mode)
        self.task = task
        task.add_optimizer("discriminator", [{"params": list(self.disc.parameters()), "lr": optim.lr_d}], optim.lr_d,
                           kind=optim.name_d, betas=optim.betas_d, weight_decay=optim.weight_decay_d)

    @property
    def steps_done(self) -> int:
        """The discriminator's steps so far (its scheduler counts them; restored on resume)."""
        return self.task.schedulers["discriminator"].last_epoch

    def step(self, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One discriminator update: ``real`` inputs -> 1, ``fake`` (detached) -> 0.

        Returns:
            (loss on real, loss on fake); the discriminator's loss is their mean.
        """
        self.disc.requires_grad_(True)
        # Two forwards, so the first backward skips DDP's gradient sync and the second syncs the sum.
        no_sync = getattr(self.net, "no_sync", contextlib.nullcontext)
        with no_sync():
            d_real = self.gan_loss(self.net(real), True)
            (0.5 * d_real).backward()
        d_fake = self.gan_loss(self.net(fake.detach()), False)
        (0.5 * d_fake).backward()
        self.task._check("discriminator", d_real=d_real, d_fake=d_fake)
        opt = self.task.optimizers["discriminator"]
        if self.task.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.disc.parameters(), self.task.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        self.task.schedulers["discriminator"].step()
        return d_real, d_fake

    def fool(self, fake: torch.Tensor) -> torch.Tensor:
        """The model's adversarial loss: make the updated, now frozen, discriminator call
        ``fake`` real. The discriminator stays frozen (no gradients of its own are computed
        in the model's backward pass) until its next ``step``."""
        self.disc.requires_grad_(False)
        return self.gan_loss(self.frozen_net(fake), True)
