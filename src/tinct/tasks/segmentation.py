"""Segmentation: a per-pixel binary mask (the damage of an old print, ``tinct.restore``),
learnt with binary cross-entropy plus a soft Dice loss.

The pairs are made from clean photos here, in :meth:`SegmentationTask.prepare`: each crop's
lightness is damaged by the ``tinct.degrade`` preset ``task.damage`` (with probability
``task.damage_p``; the other crops stay clean, so that clean texture is learnt as "no
damage"), and the mask of the pixels the damage changed by at least ``task.min_change``
is the target. What a crop gets is drawn from its own pixels (a CRC-32 of the 8-bit crop)
and the seed: a resumed run damages its batches as an uninterrupted one did, and each
validation crop gets the same damage at every evaluation, so the validation curve compares
like with like. The damage's spatial scale is drawn per crop from ``task.damage_scale``
(marks in pixels of a photo whose short side is 256 times that), so one crop size trains
for several photo sizes.

Batch keys added: ``L_n`` (replaced by the damaged input) and ``mask`` ``(B, 1, H, W)`` in {0, 1}.
"""

from __future__ import annotations

import zlib

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import color
from ..config import ConfigError, OptimConfig, TaskConfig
from .base import Task, param_groups


def dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - soft Dice of sigmoid(logits) and target, over the whole batch (one ratio, so crops
    without damage do not divide by zero)."""
    p = torch.sigmoid(logits)
    return 1 - (2 * (p * target).sum() + eps) / (p.sum() + target.sum() + eps)


def counts(logits: torch.Tensor, target: torch.Tensor, threshold: float = 0.5) -> tuple[float, float, float]:
    """(true positives, predicted positives, actual positives) at ``threshold`` probability."""
    pred = torch.sigmoid(logits) >= threshold
    truth = target > 0.5
    return float((pred & truth).sum()), float(pred.sum()), float(truth.sum())


class SegmentationTask(Task):
    train_metrics = ("loss", "bce", "dice")
    eval_metrics = ("loss", "precision", "recall", "f1")

    def __init__(self, model: nn.Module, cfg: TaskConfig, optim: OptimConfig, steps: int):
        super().__init__(model, optim, steps, temperature=1.0)
        if self.spec.output != "mask":
            raise ConfigError(f"task.kind=segmentation needs a mask model (e.g. damage_unet); {model.arch} outputs {self.spec.tag!r}")
        self.cfg = cfg
        self.add_optimizer("model", param_groups(model, optim.encoder_lr_scale, optim.lr), optim.lr)

    # ------------------------------------------------------------ the pairs
    def prepare(self, batch: dict) -> None:
        """Damage each crop's input and set its mask (once per batch)."""
        if "mask" in batch:
            return
        from ..degrade import degrade_lightness

        c = self.cfg
        L = batch["lab"][:, 0].detach().float().cpu().numpy()  # (B, H, W) in [0, 100]
        crops = (batch["rgb"].detach() * 255).round().to(torch.uint8).cpu().numpy()
        L_out, masks = L.copy(), np.zeros(L.shape, np.float32)
        for j in range(len(L)):
            key = [0x5E6, zlib.crc32(crops[j].tobytes())]
            rng = np.random.default_rng(key)
            if rng.random() >= c.damage_p:
                continue
            scale = rng.uniform(*c.damage_scale)
            L_out[j], m = degrade_lightness(L[j], c.damage, key, return_mask=True, scale=scale, min_change=c.min_change)
            masks[j] = m
        device = batch["L_n"].device
        batch["L_n"] = color.normalize_l(torch.from_numpy(L_out)[:, None]).to(device)
        batch["mask"] = torch.from_numpy(masks)[:, None].to(device)

    # ------------------------------------------------------------ the steps
    def losses(self, net: nn.Module, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        logits = net(batch["L_n"])
        pos = torch.tensor(self.cfg.pos_weight, device=logits.device)
        bce = F.binary_cross_entropy_with_logits(logits.float(), batch["mask"], pos_weight=pos)
        dice = dice_loss(logits.float(), batch["mask"])
        return bce + self.cfg.dice_weight * dice, bce, dice, logits

    def train_step(self, batch: dict) -> dict[str, float]:
        self.prepare(batch)
        loss, bce, dice, _ = self.losses(self.net, batch)
        self._check("training", loss=loss)
        self._step("model", loss, self.model.parameters())
        return {"loss": loss.item(), "bce": bce.item(), "dice": dice.item()}

    @torch.no_grad()
    def eval_step(self, batch: dict) -> dict[str, float]:
        self.prepare(batch)
        loss, _, _, logits = self.losses(self.model, batch)
        tp, pp, ap = counts(logits, batch["mask"])
        precision, recall = tp / max(pp, 1.0), tp / max(ap, 1.0)
        return {"loss": loss.item(), "precision": precision, "recall": recall,
                "f1": 2 * precision * recall / max(precision + recall, 1e-9)}

    @torch.no_grad()
    def sample_rows(self, batch: dict) -> list[torch.Tensor]:
        """Rows of the validation grid, sRGB ``(n, 3, h, w)``: damaged input, predicted mask
        (red over the input), true mask (green over the input)."""
        self.prepare(batch)
        L = color.denormalize_l(batch["L_n"])
        grey = color.lab_to_rgb(torch.cat([L, torch.zeros_like(L), torch.zeros_like(L)], 1))
        pred = (torch.sigmoid(self.model(batch["L_n"])) >= 0.5).float()
        tint = lambda m, rgb: grey * (1 - m) + m * torch.tensor(rgb, device=grey.device).view(1, 3, 1, 1)  # noqa: E731
        return [grey, tint(pred, (1.0, 0.1, 0.1)), tint(batch["mask"], (0.1, 0.9, 0.1))]
