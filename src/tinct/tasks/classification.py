"""Classification over quantised ab (Zhang et al. ECCV16's 313 bins, seed 002's 16x16 grid):
cross-entropy against soft or hard targets, optionally class-rebalanced, plus the
optional loss terms on the decoded colours (``tasks.terms``)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import color, losses
from ..config import ConfigError, OptimConfig, TaskConfig
from .base import Task, fit, param_groups
from .terms import DecodedTerms


def estimate_prior(dataset, kind: str, n_images: int = 500, stride: int = 4, batch: int = 100, seed: int = 0) -> np.ndarray:
    """Pixel counts of each ab bin over a random sample of ``n_images`` training photos
    (each whole, as its centre square; ``dataset.square_image``), with ab averaged down by
    ``stride`` as the bin models see it. The sample is drawn from ``seed`` alone, so every
    stage of a recipe chain over the same photos gets the same prior.

    Returns:
        float64 ``(Q,)`` counts.
    """
    centers = torch.from_numpy(color.bin_centers(kind))
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(dataset), size=min(n_images, len(dataset)), replace=False))
    counts = torch.zeros(len(centers), dtype=torch.float64)
    for i in range(0, len(idx), batch):
        rgb = np.stack([dataset.square_image(int(j)) for j in idx[i:i + batch]])
        lab = color.rgb_to_lab(torch.from_numpy(rgb).permute(0, 3, 1, 2).float() / 255)
        ab = lab[:, 1:]
        labels = hard_labels(F.avg_pool2d(ab, stride) if stride > 1 else ab, kind, centers)
        counts += torch.bincount(labels.flatten(), minlength=len(centers)).double()
    return counts.numpy()


def hard_labels(ab: torch.Tensor, kind: str, centers: torch.Tensor) -> torch.Tensor:
    """ab ``(B, 2, H, W)`` in Lab units -> bin index ``(B, H, W)``."""
    return color.quantize_16x16(ab) if kind == "16x16" else color.nearest_bin(ab, centers)


class ClassificationTask(Task):
    """Cross-entropy over the model's bins (+ ``task.terms``).

    The network sees ``batch["L_work"]`` when the trainer drew a working size other than
    the crop's (``data.work_sizes``), else ``batch["L_n"]``; targets, and the terms'
    teacher, see the crop at its full size. The validation loss is the cross-entropy alone.
    """

    eval_metrics = ("loss", "acc", "ab_mae")

    def __init__(self, model: nn.Module, cfg: TaskConfig, optim: OptimConfig, steps: int, temperature: float,
                 prior: np.ndarray | None, pixels_per_photo: int, n_photos: int):
        super().__init__(model, optim, steps, temperature)
        if not self.spec.is_bins:
            raise ConfigError(f"task.kind=classification needs a bin model; {model.arch} outputs {self.spec.tag!r}")
        if cfg.encoding not in ("soft", "hard"):
            raise ConfigError(f"task.encoding: choose soft or hard, got {cfg.encoding!r}")
        self.kind, self.encoding = self.spec.bins, cfg.encoding
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
        self.terms = DecodedTerms(self, cfg, optim)
        self._grids: dict[tuple[int, int], tuple[int, int]] = {}  # input size -> output grid (for ``prepare``)
        self.train_metrics = ("loss", "acc") + (("ce",) + self.terms.names if self.terms else ())

    def critics(self) -> list:
        return [self.terms.critic] if self.terms.critic is not None else []

    def set_precision(self, precision: str, device: torch.device) -> None:
        super().set_precision(precision, device)
        if self.terms.teacher is not None and precision == "bf16":
            self.terms.teacher.autocast_device = device

    def to(self, device: torch.device) -> "ClassificationTask":
        super().to(device)
        if self.class_weights is not None:
            self.class_weights = self.class_weights.to(device)
        self.terms.to(device)
        return self

    def targets(self, batch: dict, grid: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(true ab_n averaged down to the output ``grid``, its bin labels, its soft targets or None);
        averaged in Lab units, as the bins are."""
        ab = fit(batch["lab"][:, 1:], grid)
        soft = color.soft_encode(ab, self.centers) if self.encoding == "soft" else None
        return color.normalize_ab(ab), hard_labels(ab, self.kind, self.centers), soft

    def prepare(self, batch: dict) -> None:
        """The targets, once the output grid of this input size is known (after its first step)."""
        grid = self._grids.get(tuple(batch.get("L_work", batch["L_n"]).shape[-2:]))
        if grid is not None:
            batch["targets"] = (grid, *self.targets(batch, grid))

    def loss(self, net: nn.Module, batch: dict, terms: bool = False) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(loss, {"acc", and with ``terms`` "ce" and each term}) for a batch."""
        x = batch.get("L_work", batch["L_n"])
        logits = net(x, **hint_inputs(batch))  # (B, Q, h, w)
        grid = self._grids.setdefault(tuple(x.shape[-2:]), tuple(logits.shape[-2:]))
        ready = batch.get("targets")
        ab_n, labels, soft = ready[1:] if ready is not None and ready[0] == grid else self.targets(batch, grid)
        if self.encoding == "soft":
            loss = losses.soft_cross_entropy(logits, soft, self.class_weights)
        else:
            loss = losses.hard_cross_entropy(logits, labels, self.class_weights)
        parts = {"acc": (logits.argmax(1) == labels).float().mean()}  # per-pixel class accuracy
        if terms and self.terms:
            parts["ce"] = loss
            loss, values = self.terms(loss, logits, batch, ab_n, soft)
            parts |= values
        return loss, parts

    def train_step(self, batch: dict) -> dict[str, float]:
        loss, parts = self.loss(self.net, batch, terms=True)
        self._check("training", loss=loss)
        self._step("model", loss, self.model.parameters())
        return {"loss": loss.item(), **{k: v.item() for k, v in parts.items()}}

    @torch.no_grad()
    def eval_step(self, batch: dict) -> dict[str, float]:
        loss, parts = self.loss(self.model, batch)
        return {"loss": loss.item(), "acc": parts["acc"].item(), "ab_mae": self._ab_mae(batch).item()}

    def state_dict(self) -> dict:
        return super().state_dict() | {"prior": None if self.prior is None else torch.from_numpy(self.prior)}


def hint_inputs(batch: dict) -> dict:
    """The colour hints of a batch (``data.hints``), as a hint network's keyword arguments."""
    return {k: batch[k] for k in ("hints", "global_hint") if k in batch}
