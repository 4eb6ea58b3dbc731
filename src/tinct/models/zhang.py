"""Zhang, Isola & Efros, "Colorful Image Colorization" (ECCV 2016), and a reduced version.

The network is a stack of conv blocks (ReLU after every conv, BatchNorm closing each
block) with no pooling: three stride-2 convs take it to 1/8, dilated convs widen the view
in the middle, and one transposed conv brings it back to 1/4 of the input, where it
predicts. Layer layout and widths follow richzhang/colorization's ``eccv16.py``.

- ``zhang_eccv16`` (seed 003): 8 blocks, ~32M parameters, logits over the 313 in-gamut ab
  bins (trained with soft-encoded, class-rebalanced cross-entropy; decoded with the
  annealed mean, T = 0.38).
- ``zhang_small_ab`` (seed 004): the same design with half the widths and two middle
  blocks removed (~3.8M parameters, near the report's 3.5M "animals" net), no rebalancing: it
  regresses ab_n directly (tanh) and upsamples back to full resolution.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .registry import register_model
from .spec import ModelSpec

# One block per tuple: (width, convs, stride of the last conv, dilation).
ECCV16_PLAN = ((64, 2, 2, 1), (128, 2, 2, 1), (256, 3, 2, 1), (512, 3, 1, 1), (512, 3, 1, 2), (512, 3, 1, 2), (512, 3, 1, 1))
SMALL_PLAN = ((32, 2, 2, 1), (64, 2, 2, 1), (128, 3, 2, 1), (256, 3, 1, 1), (256, 2, 1, 2))


class ZhangNet(nn.Module):
    """L_n ``(B, 1, H, W)`` -> ``(B, out_channels, H/4, W/4)``; H, W multiples of 8.

    Args:
        plan: the down/middle blocks, see ``ECCV16_PLAN``.
        up_width: width of the final block (one transposed conv, then ``up_convs`` convs).
        out_channels: 313 for bin logits, 2 for ab_n.
    """

    def __init__(self, plan=ECCV16_PLAN, up_width: int = 256, up_convs: int = 2, out_channels: int = 313):
        super().__init__()
        blocks, cin = [], 1
        for width, n, stride, dilation in plan:
            layers: list[nn.Module] = []
            for j in range(n):
                s = stride if j == n - 1 else 1
                layers += [nn.Conv2d(cin, width, 3, stride=s, padding=dilation, dilation=dilation), nn.ReLU(inplace=True)]
                cin = width
            layers.append(nn.BatchNorm2d(width))
            blocks.append(nn.Sequential(*layers))
        self.blocks = nn.Sequential(*blocks)  # (B, C, H/8, W/8)
        up: list[nn.Module] = [nn.ConvTranspose2d(cin, up_width, 4, stride=2, padding=1), nn.ReLU(inplace=True)]
        for _ in range(up_convs):
            up += [nn.Conv2d(up_width, up_width, 3, padding=1), nn.ReLU(inplace=True)]
        self.up = nn.Sequential(*up)  # (B, up_width, H/4, W/4)
        self.head = nn.Conv2d(up_width, out_channels, 1)

    def forward(self, L_n: torch.Tensor) -> torch.Tensor:
        return self.head(self.up(self.blocks(L_n)))


class ZhangRegressor(nn.Module):
    """A ZhangNet predicting ab_n (tanh), upsampled x4 back to the input's size."""

    def __init__(self, plan=SMALL_PLAN, up_width: int = 128, up_convs: int = 1):
        super().__init__()
        self.net = ZhangNet(plan, up_width, up_convs, out_channels=2)
        self.upsample = nn.Upsample(scale_factor=4, mode="bilinear", align_corners=False)

    def forward(self, L_n: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.upsample(self.net(L_n)))


@register_model(spec=ModelSpec("bins", bins="313", stride=8, native_size=256))
def zhang_eccv16(pretrained: bool = False) -> nn.Module:
    """Seed 003: Zhang et al. ECCV16 (8 conv blocks, ~32M params), 313-bin logits at 1/4."""
    return ZhangNet()


@register_model(spec=ModelSpec("ab", stride=8, native_size=96))
def zhang_small_ab(pretrained: bool = False) -> nn.Module:
    """Seed 004: reduced Zhang-style CNN (~3.8M params) regressing ab (tanh), no rebalancing."""
    return ZhangRegressor()
