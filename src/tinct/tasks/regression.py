"""Regression: a pixel loss between the prediction and ab_n (or RGB for RGB models); a bin
model is decoded with the (differentiable) annealed mean first, which is how seed 003
fine-tunes ECCV16 with MSE."""

from __future__ import annotations

import torch
import torch.nn as nn

from .. import losses
from ..config import OptimConfig, TaskConfig
from .base import Task, fit, param_groups

class RegressionTask(Task):
    def __init__(self, model: nn.Module, cfg: TaskConfig, optim: OptimConfig, steps: int, temperature: float):
        super().__init__(model, optim, steps, temperature)
        self.loss_fn = losses.pixel_loss(cfg.loss, cfg.mix_p)
        self.add_optimizer("model", param_groups(model, optim.encoder_lr_scale, optim.lr), optim.lr)

    def loss(self, net: nn.Module, batch: dict) -> torch.Tensor:
        y = net(batch["L_n"])
        if self.spec.output == "rgb":
            return self.loss_fn(y, fit(batch["rgb"], y))
        pred = self.to_ab_n(y)
        return self.loss_fn(pred, fit(batch["ab_n"], pred))

    def train_step(self, batch: dict) -> dict[str, float]:
        loss = self.loss(self.net, batch)
        self._check("training", loss=loss)
        self._step("model", loss, self.model.parameters())
        return {"loss": loss.item()}

    @torch.no_grad()
    def eval_step(self, batch: dict) -> dict[str, float]:
        return {"loss": self.loss(self.model, batch).item(), "ab_mae": self._ab_mae(batch).item()}


