"""Where and at what precision a model's network runs: device, backend, precision.

``device`` (``--device`` of ``tinct colorize``, ``serve`` and ``video``):
    cpu    the default; the network runs on ONNX Runtime's CPU provider when installed
           (``backend="auto"``), else PyTorch;
    cuda   PyTorch on the GPU (the torch backend: ONNX Runtime runs on the CPU here);
           refused with a clear error where ``torch.cuda.is_available()`` is False;
    auto   cuda where ``torch.cuda.is_available()``, else cpu.

``precision``: ``fp32``, ``int8`` or ``auto`` (:mod:`tinct.quantize`). A model string may
carry it as a suffix, ``default@int8``, so anything that takes a model string (``tinct
evaluate --model default@int8``) can choose it.
"""

from __future__ import annotations

from pathlib import Path

import torch

from . import checkpoint, quantize
from .backends import BACKENDS, BackendError, OnnxBackend, cached_onnx, onnx_available

DEVICES = ("cpu", "cuda", "auto")


def resolve_device(device: str | torch.device) -> str:
    """``cpu``, ``cuda`` or ``cuda:N`` for a ``--device`` value.

    Raises:
        BackendError: cuda asked for and no CUDA GPU is usable here.
        ValueError: not a device tinct runs on.
    """
    text = str(device)
    if text == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if text == "cpu":
        return text
    if text == "cuda" or text.startswith("cuda:"):
        if not torch.cuda.is_available():
            why = "this PyTorch is a CPU-only build" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise BackendError(f"--device {text}: CUDA is not available here ({why}); use --device cpu or auto")
        return text
    raise ValueError(f"device must be one of {', '.join(DEVICES)} (or cuda:N), got {text!r}")


def split_precision(spec):
    """``"default@int8"`` -> ``("default", "int8")``; a spec without a precision suffix (or an
    existing file whose name merely contains one) -> ``(spec, None)``."""
    if isinstance(spec, str) and "@" in spec:
        head, _, tail = spec.rpartition("@")
        if tail in quantize.PRECISIONS and head and not Path(spec).exists():
            return head, tail
    return spec, None


def open_network(path: Path, device: str = "cpu", backend: str = "auto", precision: str = "fp32"):
    """The model file ``path`` -> ``(model or None, meta, backend or None)``, ready for
    :class:`tinct.Colorizer` (a None backend: PyTorch runs ``model`` on ``device``).

    Args:
        device: a :func:`resolve_device` result.
        backend: ``"auto"`` (ONNX Runtime when installed and on CPU, else PyTorch),
            ``"onnx"`` or ``"torch"``.
        precision: ``"fp32"``, ``"int8"`` or ``"auto"`` (:func:`tinct.quantize.choose`).

    Raises:
        tinct.checkpoint.CheckpointError: the file is missing, truncated or not tinct's.
        tinct.backends.BackendError: the backend, device or precision asked for cannot run
            this model here.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if precision not in quantize.PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(quantize.PRECISIONS)}, got {precision!r}")
    on_cpu = device == "cpu"
    if path.suffix.lower() == ".onnx":
        if backend == "torch":
            raise BackendError(f"{path}: an ONNX file runs on the onnx backend; give a checkpoint for torch")
        if not on_cpu:
            raise BackendError(f"{path}: an ONNX file runs on the CPU; give a checkpoint for --device {device}")
        net = OnnxBackend(path)
        if precision == "int8" and net.precision != "int8":
            raise quantize.PrecisionError(f"{path}: a float32 ONNX file; make an int8 one with tinct export "
                                          "--precision int8")
        return None, net.meta, net
    model, meta = checkpoint.load_model(path)
    if not model.spec.is_colorizer:  # a critic, or restoration's damage model (tinct restore --damage-model)
        raise checkpoint.CheckpointError(f"{path}: {model.arch} is not a colorizer (its output is {model.spec.tag!r})")
    if model.spec.hints and backend == "onnx":  # exports carry no hint inputs (tinct.backends)
        raise BackendError(f"{path}: a hint model runs on the torch backend only; use --backend torch or auto")
    if backend == "onnx" and not on_cpu:
        raise BackendError(f"the onnx backend runs on the CPU; --device {device} runs the torch backend")
    torch_only = backend == "torch" or model.spec.hints or not on_cpu or not onnx_available()
    table = quantize.shipped_ranges(path) if precision != "fp32" else None
    chosen = quantize.choose(precision, not torch_only, table)
    if torch_only:
        return model, meta, None
    if chosen == "int8":
        try:
            return model, meta, OnnxBackend(quantize.cached_int8(path, model, meta, table))
        except quantize.PrecisionError:
            if precision == "int8":
                raise
            # auto: ranges that do not fit this export (another exporter's names) -> float32
    try:
        return model, meta, OnnxBackend(cached_onnx(path, model, meta))
    except BackendError:
        if backend == "onnx":
            raise
        return model, meta, None  # auto: a model the exporter cannot convert runs on PyTorch
