"""Damage detection for restoration (``tinct.restore``): a small U-Net that marks the
scratches, cracks, dust and torn corners of an old print.

``damage_unet``: L_n ``(B, 1, H, W)`` in [-1, 1] -> per-pixel logits ``(B, 1, H, W)`` of
"this pixel is damage" (spec output ``"mask"``; a sigmoid gives the probability). It works
at the photo's own resolution (a 1-pixel scratch does not survive a resize), where a 1 MP
photo would spend most of its time in the first level's convolutions; so the pixels are
first folded, losslessly, into 4 channels at half resolution (``pixel_unshuffle``, each
2 x 2 block's pixels side by side), a U-Net of seed 000's pattern runs there (``unet.DoubleConv``
levels of widths ``base * (1, 2, 4, 8)``, max-pool down, transposed-conv up, skip
concatenation) and its head's 4 channels unfold back into the 2 x 2 pixels of each block
(``pixel_shuffle``). At the default base 16 and depth 3: ~0.48M parameters; 1 MP in
~0.3 s on 2 loaded CPU cores with ONNX Runtime (1.0 s in PyTorch), against 0.56 s (2.0 s)
for the same U-Net at full resolution with widths 8 ... 128. Input sides must be
multiples of ``2 ** (depth + 1)``; :mod:`tinct.restore` pads to that.
Trained by ``recipes/restore/damage.yaml`` (task ``segmentation``, ``tinct.tasks.segmentation``).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .registry import register_model
from .spec import ModelSpec
from .unet import add_levels, levels


class DamageUNet(nn.Module):
    """``(B, 1, H, W)`` -> logits ``(B, 1, H, W)``; H and W multiples of ``2 ** (depth + 1)``."""

    def __init__(self, base: int = 16, depth: int = 3):
        super().__init__()
        widths = add_levels(self, 4, base, depth)  # the 2 x 2 block's 4 pixels in
        self.head = nn.Conv2d(widths[0], 4, 1)  # a logit for each pixel of the 2 x 2 block

    def forward(self, L_n: torch.Tensor) -> torch.Tensor:
        x = levels(self, F.pixel_unshuffle(L_n, 2))  # at (H/2, W/2)
        return F.pixel_shuffle(self.head(x), 2)  # (B, 1, H, W) logits


@register_model(spec=lambda depth, **_: ModelSpec("mask", stride=2 ** (depth + 1), native_size=256))
def damage_unet(pretrained: bool = False, base: int = 16, depth: int = 3) -> nn.Module:
    """Restoration: damage-mask U-Net (scratches, dust, cracks, tears), logits per pixel, ~0.48M params."""
    return DamageUNet(base, depth)
