"""pix2pix (Isola et al. 2017) networks for the GAN recipes of seeds 002 and 003.

- ``pix2pix_unet``: the U-Net generator (stride-2 4x4 convs down, transposed convs up,
  skips at every level, dropout in the inner up-blocks, tanh ab_n). ``depth`` 6 is seed
  002's "6-layer U-Net" for 64 px crops; ``depth`` 8 is pix2pix's own for 256 px.
- ``patchgan``: the 70x70 PatchGAN discriminator (``n_layers`` 3): conditional, it reads
  ``cat(L_n, ab_n)`` ``(B, 3, H, W)`` and returns one logit per patch. It is not a
  colorizer (its spec's output is ``"critic"``); GAN tasks build it beside the generator.

Both are initialised N(0, 0.02) (BatchNorm weights N(1, 0.02)), as in pix2pix.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .registry import register_model
from .spec import ModelSpec


def init_normal_(module: nn.Module, std: float = 0.02) -> nn.Module:
    """pix2pix's ``init_weights(net, 'normal', 0.02)``."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)
    return module


class UNetGenerator(nn.Module):
    """``(B, in_channels, H, W)`` -> ``(B, out_channels, H, W)`` in [-1, 1]; H, W multiples of ``2**depth``.

    Level k (0 = outermost) has ``min(ngf * 2**k, 8 * ngf)`` channels.
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 2, depth: int = 8, ngf: int = 64, dropout: bool = True):
        super().__init__()
        if depth < 2:
            raise ValueError(f"depth must be >= 2, got {depth}")
        widths = [min(ngf * 2**k, 8 * ngf) for k in range(depth)]
        self.down = nn.ModuleList()
        for k in range(depth):
            cin = in_channels if k == 0 else widths[k - 1]
            layers: list[nn.Module] = [] if k == 0 else [nn.LeakyReLU(0.2, inplace=True)]
            layers.append(nn.Conv2d(cin, widths[k], 4, stride=2, padding=1, bias=k in (0, depth - 1)))
            if 0 < k < depth - 1:
                layers.append(nn.BatchNorm2d(widths[k]))
            self.down.append(nn.Sequential(*layers))
        self.up = nn.ModuleList()  # self.up[k] produces level k's output from level k+1
        for k in range(depth):
            cin = widths[k] if k == depth - 1 else 2 * widths[k]
            if k == 0:
                layers = [nn.ReLU(inplace=True), nn.ConvTranspose2d(cin, out_channels, 4, stride=2, padding=1), nn.Tanh()]
            else:
                layers = [nn.ReLU(inplace=True), nn.ConvTranspose2d(cin, widths[k - 1], 4, stride=2, padding=1, bias=False),
                          nn.BatchNorm2d(widths[k - 1])]
                if dropout and 4 <= k <= depth - 2:  # pix2pix's (depth - 5) inner 8*ngf blocks
                    layers.append(nn.Dropout(0.5))
            self.up.append(nn.Sequential(*layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
        x = skips.pop()  # innermost, (B, 8ngf, H/2**depth, W/2**depth)
        for k in reversed(range(len(self.up))):
            x = self.up[k](x)
            if k > 0:
                x = torch.cat([x, skips.pop()], 1)
        return x


class PatchGAN(nn.Module):
    """``(B, in_channels, H, W)`` -> patch logits ``(B, 1, h, w)`` (no sigmoid)."""

    def __init__(self, in_channels: int = 3, ndf: int = 64, n_layers: int = 3):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True)]
        cin = ndf
        for n in range(1, n_layers + 1):
            cout = ndf * min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [nn.Conv2d(cin, cout, 4, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, inplace=True)]
            cin = cout
        layers.append(nn.Conv2d(cin, 1, 4, stride=1, padding=1))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


# 64 px crops for the 6-level generator (seed 002), pix2pix's own 256 for deeper ones.
@register_model(spec=lambda depth, **_: ModelSpec("ab", stride=2**depth, native_size=64 if depth <= 6 else 256))
def pix2pix_unet(pretrained: bool = False, depth: int = 6, ngf: int = 64, dropout: bool = True) -> nn.Module:
    """Seed 002 GAN generator: pix2pix U-Net (depth 6 for 64 px), tanh ab, N(0, 0.02) init."""
    return init_normal_(UNetGenerator(1, 2, depth, ngf, dropout))


@register_model(spec=lambda n_layers, in_channels, **_: ModelSpec("critic", stride=2**n_layers, native_size=256,
                                                                   in_channels=in_channels))
def patchgan(pretrained: bool = False, in_channels: int = 3, ndf: int = 64, n_layers: int = 3) -> nn.Module:
    """PatchGAN discriminator on cat(L, ab) for GAN recipes (a critic, not a colorizer)."""
    return init_normal_(PatchGAN(in_channels, ndf, n_layers))
