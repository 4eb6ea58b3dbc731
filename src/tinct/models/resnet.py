"""ResNet-encoder colorizers of seeds 001 and 002.

The ResNet encoders are the torchvision ResNet-18/34 design (BasicBlocks) with a
one-channel stem, randomly initialised: no ImageNet ResNet weights exist offline here.
Where the seed used a pretrained encoder, the ImageNet EfficientNet-Lite0 of tinct's
default model stands in (``effnet_unet_ab``), its weights read from the installed
package file.

- ``resnet18_unet_ab`` / ``effnet_unet_ab`` (seed 001 primary): the encoder's first four
  stages (strides 2, 4, 8, 16) feed a U-Net decoder that upsamples three times
  (transposed conv, skip concatenation, two conv-BN-ReLU) and ends in a 3x3 conv + tanh
  at 1/2 resolution, as in the report.
- ``resnet34_regress_ab`` (seed 002 regression): ResNet-34 trunk to stride 16, then
  conv-BN-ReLU + 2x upsampling blocks back to full resolution, tanh ab_n.
- ``resnet18_classify16`` (seed 002 classifier): ResNet-18 trunk to stride 8, upsampling
  to 1/4 resolution, logits over the 16x16 ab grid (256 classes).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .registry import register_model
from .layers import LITE0_TAP_CHANNELS, LITE0_TAPS, UpBlock, conv_bn_relu, load_efficientnet_lite0, run_efficientnet_blocks
from .spec import ModelSpec


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)), inplace=True)
        return F.relu(self.bn2(self.conv2(y)) + self.shortcut(x), inplace=True)


class ResNetEncoder(nn.Module):
    """ResNet stem and the first ``stages`` residual stages.

    ``forward`` returns the features at strides 2 (stem), 4, 8, 16, 32 (one per stage),
    as a list ``[(B, 64, H/2, W/2), (B, 64, H/4, W/4), (B, 128, H/8, W/8), ...]``.
    """

    WIDTHS = (64, 128, 256, 512)

    def __init__(self, blocks=(2, 2, 2, 2), stages: int = 4, in_channels: int = 1):
        super().__init__()
        self.stem = conv_bn_relu(in_channels, 64, kernel=7, stride=2)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.stages = nn.ModuleList()
        cin = 64
        for i, (n, w) in enumerate(zip(blocks[:stages], self.WIDTHS)):
            self.stages.append(nn.Sequential(*[BasicBlock(cin if j == 0 else w, w, 2 if (j == 0 and i > 0) else 1) for j in range(n)]))
            cin = w
        self.channels = [64, *self.WIDTHS[:stages]]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        feats = [x]
        x = self.pool(x)
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats


class EffNetEncoder(nn.Module):
    """EfficientNet-Lite0 up to stride 16: features at strides 2, 4, 8, 16 (16, 24, 40, 112 ch).

    Only the stem and the blocks up to stride 16 are kept, under this module's own names
    (``conv_stem``, ``bn0``, ``blocks``: the keys of its checkpoints).
    """

    STRIDES = (2, 4, 8, 16)

    def __init__(self, pretrained: bool = True):
        super().__init__()
        net = load_efficientnet_lite0(pretrained)
        self.n_total = len(net._blocks)  # drop-connect rates depend on the full depth
        self.rate = net._global_params.drop_connect_rate
        self.conv_stem, self.bn0, self.act = net._conv_stem, net._bn0, net._swish
        self.taps = [LITE0_TAPS[s] for s in self.STRIDES]
        self.blocks = nn.ModuleList(net._blocks[: self.taps[-1] + 1])
        self.channels = [LITE0_TAP_CHANNELS[s] for s in self.STRIDES]

    def forward(self, L_n: torch.Tensor) -> list[torch.Tensor]:
        stem = lambda x: self.act(self.bn0(self.conv_stem(x)))  # noqa: E731
        x = L_n.expand(-1, 3, -1, -1)  # grey photo = equal RGB
        return run_efficientnet_blocks(x, stem, self.blocks, self.taps, self.rate, self.n_total)[1]


class EncoderUNet(nn.Module):
    """Encoder features at strides 2..16 -> U-Net decoder -> ab_n ``(B, 2, H/2, W/2)`` (tanh).

    H and W must be multiples of 16.
    """

    def __init__(self, encoder: nn.Module, widths=(128, 64, 64)):
        super().__init__()
        self.encoder = encoder
        c2, c4, c8, c16 = encoder.channels[:4]
        w8, w4, w2 = widths
        self.up8 = UpBlock(c16, c8, w8, mode="transposed")
        self.up4 = UpBlock(w8, c4, w4, mode="transposed")
        self.up2 = UpBlock(w4, c2, w2, mode="transposed")
        self.head = nn.Conv2d(w2, 2, 3, padding=1)

    def forward(self, L_n: torch.Tensor) -> torch.Tensor:
        f2, f4, f8, f16 = self.encoder(L_n)[:4]
        x = self.up2(self.up4(self.up8(f16, f8), f4), f2)
        return torch.tanh(self.head(x))


class ResNetUpsample(nn.Module):
    """ResNet trunk, then [conv-BN-ReLU, 2x bilinear upsampling] blocks, then a 3x3 conv.

    Args:
        blocks: residual blocks per stage ((2, 2, 2, 2) ResNet-18, (3, 4, 6, 3) ResNet-34).
        stages: trunk depth; the trunk's stride is ``2 ** (stages + 1)``.
        out_channels: 2 (ab_n, with tanh) or the number of classes (logits).
        out_stride: resolution of the output relative to the input.
    """

    def __init__(self, blocks, stages: int, out_channels: int, out_stride: int = 1, tanh: bool = True):
        super().__init__()
        self.encoder = ResNetEncoder(blocks, stages)
        cin = self.encoder.channels[-1]
        layers, stride = [], 2 ** (stages + 1)
        while stride > out_stride:
            cout = max(cin // 2, 32)
            layers += [conv_bn_relu(cin, cout), nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)]
            cin, stride = cout, stride // 2
        self.decoder = nn.Sequential(*layers)
        self.head = nn.Conv2d(cin, out_channels, 3, padding=1)
        self.tanh = tanh

    def forward(self, L_n: torch.Tensor) -> torch.Tensor:
        y = self.head(self.decoder(self.encoder(L_n)[-1]))
        return torch.tanh(y) if self.tanh else y


# Seed 001/002's networks all see 256 px crops; the stride is the deepest encoder stage's.
_AB_AT_16 = ModelSpec("ab", stride=16, native_size=256)


@register_model(spec=_AB_AT_16)
def resnet18_unet_ab(pretrained: bool = False, widths=(128, 64, 64)) -> nn.Module:
    """Seed 001: U-Net on a ResNet-18 encoder (random init), tanh ab at 1/2 resolution."""
    return EncoderUNet(ResNetEncoder((2, 2, 2, 2), stages=3), tuple(widths))


@register_model(spec=_AB_AT_16)
def effnet_unet_ab(pretrained: bool = True, widths=(128, 64, 64)) -> nn.Module:
    """Seed 001 with an ImageNet encoder: U-Net on EfficientNet-Lite0 in place of ResNet-18, tanh ab."""
    return EncoderUNet(EffNetEncoder(pretrained), tuple(widths))


@register_model(spec=_AB_AT_16)
def resnet34_regress_ab(pretrained: bool = False) -> nn.Module:
    """Seed 002 regression: ResNet-34 trunk (stride 16) + upsampling blocks, tanh ab, full resolution."""
    return ResNetUpsample((3, 4, 6, 3), stages=3, out_channels=2, out_stride=1)


@register_model(spec=ModelSpec("bins", bins="16x16", stride=8, native_size=256))
def resnet18_classify16(pretrained: bool = False, out_stride: int = 4) -> nn.Module:
    """Seed 002 classifier: ResNet-18 trunk (stride 8) + upsampling, logits over the 16x16 ab grid."""
    return ResNetUpsample((2, 2, 2, 2), stages=2, out_channels=256, out_stride=out_stride, tanh=False)
