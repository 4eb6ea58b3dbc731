"""Tasks: what one optimisation step is. A task owns the loss, the optimisers and their
schedules; the trainer (``tinct.train``) only feeds it batches.

- ``RegressionTask`` (``regression.py``): pixel loss between the prediction and ab_n (or
  RGB for RGB models).
- ``ClassificationTask`` (``classification.py``): cross-entropy over ab bins (313 or
  16x16), soft or hard targets, optionally class-weighted, plus optional loss terms on the
  decoded colours (``terms.py``: L1, semantic consistency, features, adversarial).
- ``GANTask`` (``gan.py``): conditional GAN (pix2pix).
- ``SegmentationTask`` (``segmentation.py``): a per-pixel mask (a restoration damage
  detector) with BCE + Dice, on crops it damages itself (``tinct.degrade``).
- ``Critic`` (``critic.py``): the discriminator step the GAN and the adversarial term share.

Every batch is a dict from ``tinct.data.collate``: ``L_n (B, 1, H, W)``, ``ab_n (B, 2,
H, W)``, ``rgb (B, 3, H, W)``, ``lab (B, 3, H, W)`` in Lab units (and ``L_work``, the network's input at a drawn working
size, when the recipe has ``data.work_sizes``). Predictions at a lower resolution
(Zhang-style models predict at 1/4) are compared with the target averaged down to their
size; the generator of a GAN and all validation metrics work at the input's full resolution.
"""

from __future__ import annotations

import numpy as np
import torch.nn as nn

from ..config import ConfigError, OptimConfig, TaskConfig
from ..models import spec_of
from .base import NonFiniteLoss, Task, fit, lr_factor
from .classification import ClassificationTask, estimate_prior, hard_labels
from .critic import Critic
from .gan import GANTask
from .regression import RegressionTask
from .segmentation import SegmentationTask

__all__ = ["NonFiniteLoss", "Task", "RegressionTask", "ClassificationTask", "GANTask", "SegmentationTask", "Critic", "build", "fit",
           "lr_factor", "estimate_prior", "hard_labels"]


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
        spec = spec_of(model)
        if not spec.is_bins:
            raise ConfigError(f"task.kind=classification needs a bin model; {model.arch} outputs {spec.tag!r}")
        if prior is None and cfg.class_weights != "none":
            if train_set is None:
                raise ValueError("the class weights need a bin prior: pass train_set or prior")
            prior = estimate_prior(train_set, spec.bins, cfg.prior_images)
        n = len(train_set) if train_set is not None else 1
        crop = train_set.crop if train_set is not None else 1
        return ClassificationTask(model, cfg, optim, steps, temperature, prior, crop * crop, n)
    if cfg.kind == "gan":
        return GANTask(model, cfg, optim, steps, temperature)
    if cfg.kind == "segmentation":
        return SegmentationTask(model, cfg, optim, steps)
    raise ConfigError(f"task.kind: choose regression, classification, gan or segmentation, got {cfg.kind!r}")
