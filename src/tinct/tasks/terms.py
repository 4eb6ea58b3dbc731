"""Loss terms on a bin model's decoded colours, added to its cross-entropy.

The classification task's cross-entropy only sees each pixel's bin distribution; these
terms see the colours it decodes to (the differentiable annealed mean at
``task.terms.temperature``), as the bundled default model's fine-tunes use them:

- ``l1``: L1 between the decoded ab and the true ab (normalised ab units), at the model's
  output resolution;
- ``semantic``: KL between a frozen ImageNet classifier's class distributions on the
  colorized crop and on the original (``losses.SemanticTeacher``);
- ``features``: L1 in the same classifier's features (a cheap perceptual loss);
- ``histogram``: KL from each photo's true ab-bin histogram (the mean of its pixels' soft
  targets) to the predicted one (the mean of its pixels' softmax): the colours a photo
  holds, wherever they are;
- ``variety``: the absolute difference between the decoded and the true colours' hue
  variety per photo (``1 - |mean ab| / mean |ab|``; 0 = one hue everywhere), against the
  wash of one hue over a whole photo;
- ``adversarial``: a PatchGAN critic (``tasks.critic.Critic``) on (L, ab) at
  ``critic_size``, ab from the model's output grid for real and colorized crops alike, so
  the critic judges the choice of colours and not the resolution of ab.

Each weight is 0 (off) by default.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import color, losses
from ..decode import decode_ab
from ..config import OptimConfig, TaskConfig
from .base import Task


class DecodedTerms:
    """The active terms of ``cfg.terms`` for ``task`` (a bin model's task)."""

    def __init__(self, task: Task, cfg: TaskConfig, optim: OptimConfig):
        from .critic import Critic

        t = self.cfg = cfg.terms
        self.task = task  # its spec and bin centres decode the logits
        # The critic is built before the teacher, as the script that trained the default did,
        # so the same seed gives the same random initialisation.
        self.critic = Critic(task, cfg, optim) if t.adversarial > 0 else None
        self.teacher = losses.SemanticTeacher(t.teacher_size) if t.semantic > 0 or t.features > 0 else None
        self.names = tuple(name for name, on in (("l1", t.l1 > 0), ("sem", t.semantic > 0), ("feat", t.features > 0),
                                                 ("hist", t.histogram > 0), ("variety", t.variety > 0),
                                                 ("adv", self.critic is not None), ("critic", self.critic is not None))
                           if on)

    def __bool__(self) -> bool:
        return bool(self.names)

    def to(self, device: torch.device) -> None:
        if self.teacher is not None:  # the critic's network is the task's to move (Task.modules)
            self.teacher.to(device)

    def __call__(self, loss: torch.Tensor, logits: torch.Tensor, batch: dict,
                 ab_true_n: torch.Tensor, soft: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``loss`` plus the weighted active terms (added in the order listed above), and
        each term's value.

        Args:
            loss: the cross-entropy.
            logits: the model's output ``(B, Q, h, w)``.
            batch: the training batch (``L_n`` and ``lab`` at the crop's full size).
            ab_true_n: the true ab_n averaged down to ``(h, w)``.
            soft: the soft targets ``(B, Q, h, w)`` (``histogram``; encoded here when None).
        """
        t = self.cfg
        ab = decode_ab(logits, self.task.spec, t.temperature, centers=self.task.centers)  # (B, 2, h, w), Lab units
        parts: dict[str, torch.Tensor] = {}
        if t.l1 > 0:
            parts["l1"] = (color.normalize_ab(ab) - ab_true_n).abs().mean()
            loss = loss + t.l1 * parts["l1"]
        if self.teacher is not None:
            # The crop's own Lab: its L under the decoded ab, and its colours as Lab -> sRGB
            # gives them back (what the default model's original trainer compared).
            lab = batch["lab"]
            ab_full = F.interpolate(ab, size=lab.shape[-2:], mode="bilinear", align_corners=False)
            judged = self.teacher(color.lab_to_rgb(torch.cat([lab[:, :1], ab_full], 1)), color.lab_to_rgb(lab))
            for name, weight in (("sem", t.semantic), ("feat", t.features)):
                if weight > 0:
                    parts[name] = judged[name]
                    loss = loss + weight * judged[name]
        if t.histogram > 0:
            if soft is None:
                soft = color.soft_encode(color.denormalize_ab(ab_true_n), self.task.centers)
            q = soft.float().mean((2, 3))  # (B, Q) the photo's true bin histogram
            p = torch.softmax(logits.float(), 1).mean((2, 3))
            parts["hist"] = (q * (torch.log(q.clamp_min(1e-8)) - torch.log(p.clamp_min(1e-8)))).sum(1).mean()
            loss = loss + t.histogram * parts["hist"]
        if t.variety > 0:
            parts["variety"] = (hue_variety(ab) - hue_variety(color.denormalize_ab(ab_true_n))).abs().mean()
            loss = loss + t.variety * parts["variety"]
        if self.critic is not None:
            real = self.critic_input(batch["L_n"], ab_true_n)
            fake = self.critic_input(batch["L_n"], color.normalize_ab(ab))
            d_real, d_fake = self.critic.step(real, fake.detach())
            parts["critic"] = 0.5 * (d_real + d_fake)
            parts["adv"] = self.critic.fool(fake)
            loss = loss + t.adversarial * parts["adv"]
        return loss, parts

    def critic_input(self, L_n: torch.Tensor, ab_n: torch.Tensor) -> torch.Tensor:
        """cat(L_n, ab_n) at ``critic_size`` (ab upsampled from the model's output grid)."""
        size = (self.cfg.critic_size, self.cfg.critic_size)
        L_s = F.interpolate(L_n, size=size, mode="bilinear", align_corners=False)
        ab_s = F.interpolate(ab_n, size=size, mode="bilinear", align_corners=False)
        return torch.cat([L_s, ab_s], 1)


def hue_variety(ab: torch.Tensor, delta: float = 1e-4) -> torch.Tensor:
    """``(B,)`` per-photo hue variety of ``(B, 2, h, w)`` ab (Lab units): ``1 - |mean ab| /
    mean |ab|`` (0: one hue everywhere, or neutral): ``tinct.metrics.variety``'s formula on
    torch tensors, made differentiable (that metric, on 8-bit photos, also counts a photo of
    mean chroma under 0.5 as 0; here it is computed at any chroma, exactly neutral giving
    0): each norm is ``sqrt(|.|^2 + delta)``, smooth at 0 and, being convex,
    still never larger for the mean than on average, so the value stays in [0, 1]."""
    mean_ab = (ab.mean((2, 3)).pow(2).sum(1) + delta).sqrt()
    mean_chroma = (ab.pow(2).sum(1) + delta).sqrt().mean((1, 2))
    return 1 - mean_ab / mean_chroma
