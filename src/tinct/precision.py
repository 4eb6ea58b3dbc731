"""Training precision: float32, or bfloat16 autocast around the networks' forward passes.

``train.precision``:
    fp32   everything in float32;
    bf16   the networks' forward passes (the colorizer, a critic, the semantic teacher) run
           under ``torch.autocast(dtype=torch.bfloat16)`` and hand back float32, so losses,
           the softmax over the bins, the ab prior and its weights, and the optimiser state
           stay float32 (the parameters are float32; autocast only lowers the matmuls and
           convolutions, and their backward follows). On a CPU, depthwise convolutions stay
           float32 (:func:`float32_depthwise`): oneDNN's bfloat16 backward of a depthwise
           convolution is several times slower than its float32 one (a 5x5 stride-2 one
           235-300 ms against 38 ms here), which had eaten most of bfloat16's gain;
    auto   bf16 where the device computes it natively (a CPU with AVX-512 BF16 or AMX, or
           ARM's BF16 extension; a CUDA GPU that reports bf16 support), else fp32. Emulated
           bfloat16 is slower than float32, so ``auto`` never picks it there.
"""

from __future__ import annotations

import contextlib
import platform
from functools import lru_cache

import torch
import torch.nn as nn

from .config import ConfigError

PRECISIONS = ("fp32", "bf16", "auto")
# /proc/cpuinfo flags of native bfloat16 arithmetic: x86 AVX-512 BF16 and AMX-BF16; ARMv8.6 BF16.
BF16_CPU_FLAGS = {"avx512_bf16", "amx_bf16", "bf16"}


@lru_cache(maxsize=None)
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags the kernel reports (empty where there is no /proc/cpuinfo)."""
    try:
        text = open("/proc/cpuinfo", encoding="utf-8", errors="replace").read()
    except OSError:
        return frozenset()
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            flags.update(value.split())
    return frozenset(flags)


def bf16_native(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 natively."""
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if platform.system() == "Darwin" and platform.machine() == "arm64":
        return False  # Apple CPUs: no bf16 in PyTorch's CPU kernels' fast paths
    return bool(cpu_flags() & BF16_CPU_FLAGS)


def resolve(precision: str, device: torch.device) -> str:
    """``fp32`` or ``bf16`` for ``train.precision`` on ``device``."""
    if precision not in PRECISIONS:
        raise ConfigError(f"train.precision: choose {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "auto":
        return "bf16" if bf16_native(device) else "fp32"
    return precision


def autocast(device: torch.device, precision: str):
    """The context the networks' forward passes run in."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


class Autocast(nn.Module):
    """Runs ``net`` under bfloat16 autocast and hands back float32 outputs.

    Wraps the training copy of a network (``Task.net``, perhaps a DistributedDataParallel);
    the task's own ``model`` stays unwrapped, so validation and checkpoints are float32.
    """

    def __init__(self, net: nn.Module, device: torch.device):
        super().__init__()
        self.net, self.device_type = net, device.type
        if device.type == "cpu":
            float32_depthwise(net)

    def forward(self, *args, **kwargs):
        with torch.autocast(self.device_type, dtype=torch.bfloat16):
            y = self.net(*args, **kwargs)
        return y.float()

    def no_sync(self):
        """DDP's gradient-sync skip, when the wrapped network has one."""
        return self.net.no_sync() if hasattr(self.net, "no_sync") else contextlib.nullcontext()


class _Float32UnderAutocast:
    """Mixin: the convolution runs in float32 even inside an autocast region (and exactly
    as before outside one)."""

    def forward(self, x):
        if torch.is_autocast_enabled(x.device.type):
            with torch.autocast(x.device.type, enabled=False):
                return super().forward(x.float())
        return super().forward(x)


_FLOAT32_CLASSES: dict[type, type] = {}


def float32_depthwise(net: nn.Module) -> int:
    """Make every depthwise convolution of ``net`` (groups == in_channels > 1) run in float32
    under autocast; returns how many. The modules keep their class's behaviour, parameters
    and state-dict keys (each gets a subclass of its own class with the mixin), so
    checkpoints, validation and inference, which run outside autocast, are unchanged."""
    count = 0
    for m in net.modules():
        if isinstance(m, nn.Conv2d) and m.groups > 1 and m.groups == m.in_channels \
                and not isinstance(m, _Float32UnderAutocast):
            cls = type(m)
            if cls not in _FLOAT32_CLASSES:
                _FLOAT32_CLASSES[cls] = type(f"Float32{cls.__name__}", (_Float32UnderAutocast, cls), {})
            m.__class__ = _FLOAT32_CLASSES[cls]
            count += 1
    return count
