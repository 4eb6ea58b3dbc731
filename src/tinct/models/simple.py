"""Small plain CNNs from the seed reports: no skips, no pretrained parts.

- ``cnn_rgb`` (seed 000 baseline): 4 x [conv-BN-ReLU-maxpool] down, 4 x [transposed
  conv-BN-ReLU] up, conv + sigmoid to RGB; ~4.3M parameters.
- ``shallow_ab`` (seed 001 baseline): two convs and a pool, a bottleneck conv, one
  transposed conv, conv + tanh to ab_n.
- ``autoencoder13`` (seed 004): 13 convolutions, 6 in the encoder (three with stride 2)
  and 7 in the decoder with nearest upsampling (the Keras ``UpSampling2D`` design of
  Wallner's "colorize B&W photos" autoencoder), tanh to ab_n; ~6M parameters.

All take L_n ``(B, 1, H, W)`` in [-1, 1] and return an output of the input's size.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .registry import register_model
from .layers import conv_bn_relu
from .spec import ModelSpec


class SimpleCNN(nn.Module):
    """Encoder-decoder without skips: ``(B, 1, H, W)`` -> RGB ``(B, 3, H, W)`` in [0, 1].

    H and W must be multiples of 16 (four 2x poolings).
    """

    def __init__(self, widths=(64, 128, 256, 512), up_widths=(256, 128, 64, 32), out_channels: int = 3):
        super().__init__()
        down, cin = [], 1
        for w in widths:
            down += [*conv_bn_relu(cin, w), nn.MaxPool2d(2)]
            cin = w
        up = []
        for w in up_widths:
            up += [nn.ConvTranspose2d(cin, w, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
            cin = w
        self.encoder = nn.Sequential(*down)  # (B, 512, H/16, W/16)
        self.decoder = nn.Sequential(*up)  # (B, 32, H, W)
        self.head = nn.Conv2d(cin, out_channels, 3, padding=1)

    def forward(self, L_n: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.head(self.decoder(self.encoder(L_n))))


class ShallowNet(nn.Module):
    """Two convs + pool, bottleneck, transposed conv: ``(B, 1, H, W)`` -> ab_n ``(B, 2, H, W)``.

    H and W must be even.
    """

    def __init__(self, widths=(64, 128), bottleneck: int = 256):
        super().__init__()
        w1, w2 = widths
        self.encoder = nn.Sequential(
            nn.Conv2d(1, w1, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(w1, w2, 3, padding=1), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        self.bottleneck = nn.Sequential(nn.Conv2d(w2, bottleneck, 3, padding=1), nn.ReLU(inplace=True))
        self.decoder = nn.Sequential(nn.ConvTranspose2d(bottleneck, w1, 2, stride=2), nn.ReLU(inplace=True))
        self.head = nn.Conv2d(w1, 2, 3, padding=1)

    def forward(self, L_n: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.head(self.decoder(self.bottleneck(self.encoder(L_n)))))


class Autoencoder13(nn.Module):
    """13-conv autoencoder: ``(B, 1, H, W)`` -> ab_n ``(B, 2, H, W)``; H, W multiples of 8."""

    # (out channels, stride) of the six encoder convs and the seven decoder convs; "up"
    # marks a 2x nearest upsampling before the next conv.
    ENCODER = ((64, 2), (128, 1), (128, 2), (256, 1), (256, 2), (512, 1))
    DECODER = (512, 256, "up", 128, "up", 64, 32, "up", 16)

    def __init__(self):
        super().__init__()
        layers, cin = [], 1
        for cout, stride in self.ENCODER:
            layers += [nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.ReLU(inplace=True)]
            cin = cout
        self.encoder = nn.Sequential(*layers)  # (B, 512, H/8, W/8)
        layers = []
        for item in self.DECODER:
            if item == "up":
                layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
            else:
                layers += [nn.Conv2d(cin, item, 3, padding=1), nn.ReLU(inplace=True)]
                cin = item
        self.decoder = nn.Sequential(*layers)  # (B, 16, H, W)
        self.head = nn.Conv2d(cin, 2, 3, padding=1)  # the 13th conv

    def forward(self, L_n: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.head(self.decoder(self.encoder(L_n))))


@register_model(spec=ModelSpec("rgb", stride=16, native_size=96))
def cnn_rgb(pretrained: bool = False) -> nn.Module:
    """Seed 000 baseline: 4-down/4-up CNN without skips, grey -> RGB (sigmoid), ~4.3M params."""
    return SimpleCNN()


@register_model(spec=ModelSpec("ab", stride=2, native_size=256))
def shallow_ab(pretrained: bool = False, widths=(64, 128), bottleneck: int = 256) -> nn.Module:
    """Seed 001 baseline: 2 convs + pool, bottleneck, transposed conv, tanh ab."""
    return ShallowNet(tuple(widths), bottleneck)


@register_model(spec=ModelSpec("ab", stride=8, native_size=96))
def autoencoder13(pretrained: bool = False) -> nn.Module:
    """Seed 004: 13-layer convolutional autoencoder (6 enc + 7 dec convs), tanh ab, ~6M params."""
    return Autoencoder13()
