"""The classic U-Net (Ronneberger et al. 2015) of seed 000, for RGB or ab output.

Four 2x poolings between five double-conv levels of widths ``base * (1, 2, 4, 8, 16)``;
transposed-conv upsampling with skip concatenation. The two seed variants differ only in
width and output:

- ``unet_rgb``: grey -> RGB (sigmoid), base 24, ~4.4M parameters (the seed's ~4.5M).
- ``unet_lab``: L -> ab_n (tanh), base 52, ~20.5M parameters (as in the seed).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .registry import register_model
from .layers import conv_bn_relu
from .spec import ModelSpec


class DoubleConv(nn.Sequential):
    """Two conv-BN-ReLU, flat (keys 0 to 5, as the seed's checkpoints have them)."""

    def __init__(self, cin: int, cout: int):
        super().__init__(*conv_bn_relu(cin, cout), *conv_bn_relu(cout, cout))


def add_levels(net: nn.Module, in_channels: int, base: int, depth: int) -> list[int]:
    """Give ``net`` a U-Net's levels (``down``, ``pool``, ``up``, ``merge``): level k has
    ``base * 2**k`` channels, ``depth`` 2x downsamplings; returns the widths."""
    widths = [base * 2**k for k in range(depth + 1)]
    net.down = nn.ModuleList([DoubleConv(in_channels, widths[0])])
    net.down.extend(DoubleConv(widths[k - 1], widths[k]) for k in range(1, depth + 1))
    net.pool = nn.MaxPool2d(2)
    net.up = nn.ModuleList(nn.ConvTranspose2d(widths[k + 1], widths[k], 2, stride=2) for k in reversed(range(depth)))
    net.merge = nn.ModuleList(DoubleConv(2 * widths[k], widths[k]) for k in reversed(range(depth)))
    return widths


def levels(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The features at full width of ``net``'s levels (:func:`add_levels`) for ``x``."""
    skips = []
    for i, block in enumerate(net.down):
        x = block(x if i == 0 else net.pool(x))
        skips.append(x)
    skips.pop()  # the bottleneck is not a skip
    for up, merge in zip(net.up, net.merge):
        x = merge(torch.cat([up(x), skips.pop()], 1))
    return x


class UNet(nn.Module):
    """``(B, 1, H, W)`` -> ``(B, out_channels, H, W)``; H and W multiples of ``2**depth``.

    Args:
        out_channels: 3 for RGB, 2 for ab.
        base: width of the first level; level k has ``base * 2**k`` channels.
        depth: number of 2x downsamplings.
        activation: ``"sigmoid"`` (RGB in [0, 1]) or ``"tanh"`` (ab_n in [-1, 1]).
    """

    def __init__(self, out_channels: int, base: int = 32, depth: int = 4, activation: str = "tanh"):
        super().__init__()
        acts = {"sigmoid": torch.sigmoid, "tanh": torch.tanh}
        if activation not in acts:
            raise ValueError(f"activation must be one of {sorted(acts)}, got {activation!r}")
        self.activation = acts[activation]
        widths = add_levels(self, 1, base, depth)
        self.head = nn.Conv2d(widths[0], out_channels, 1)

    def forward(self, L_n: torch.Tensor) -> torch.Tensor:
        return self.activation(self.head(levels(self, L_n)))


# Input sides must survive ``depth`` 2x poolings.
@register_model(spec=lambda depth, **_: ModelSpec("rgb", stride=2**depth, native_size=96))
def unet_rgb(pretrained: bool = False, base: int = 24, depth: int = 4) -> nn.Module:
    """Seed 000: 4-level U-Net, grey -> RGB (sigmoid), ~4.4M params at base 24."""
    return UNet(3, base, depth, "sigmoid")


@register_model(spec=lambda depth, **_: ModelSpec("ab", stride=2**depth, native_size=256))
def unet_lab(pretrained: bool = False, base: int = 52, depth: int = 4) -> nn.Module:
    """Seed 000: 4-level U-Net, L -> ab (tanh), ~20.5M params at base 52."""
    return UNet(2, base, depth, "tanh")
