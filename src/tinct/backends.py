"""Where the network runs: PyTorch, or ONNX Runtime from an exported ``.onnx`` file.

A backend is a callable: normalised L ``(B, 1, h, w)`` float32 tensor -> the network's raw
output tensor (logits over ab bins, ab_n or rgb). Everything before and after it (resizing,
flip averaging, annealed-mean decoding, recombining with the full-resolution L) is the
colorizer's and is the same for both, so the backends can only differ by the network's
arithmetic.

ONNX Runtime is chosen by default when it is installed (``backend="auto"``): on a 2-core
CPU it runs the default model several times faster than eager PyTorch (figures in
docs/PERFORMANCE.md). A checkpoint is exported once, on first use, into
``$TINCT_CACHE_DIR/onnx`` (default ``~/.cache/tinct/onnx``), named by the hash of the
weight file, so a changed checkpoint is never served from a stale export.

A hint network (``spec.hints``, :mod:`tinct.hints`) runs on PyTorch only: the export has
no hint inputs yet, so ``backend="auto"`` picks torch for it, ``"onnx"`` refuses it and
:func:`export_onnx` refuses to write one. Its torch backend takes the hint inputs, and
with none gives it the zero map and zero global hint it was trained with for "no hints".
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch

from .checkpoint import CheckpointError
from .errors import EXIT_USAGE, TinctError, first_line
from .hints import empty as empty_hints
from .io import atomic_write
from .models import spec_of
from .paths import cache_dir

BACKENDS = ("auto", "onnx", "torch")
# Opset 18: supported by every ONNX Runtime release since 1.14 and by both torch exporters.
OPSET = 18
META_KEY = "tinct"  # ONNX metadata_props key holding the colorizer's meta as JSON


class BackendError(TinctError):
    """The requested backend cannot run here (package missing, export failed)."""

    exit_code = EXIT_USAGE


def onnx_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


class TorchBackend:
    name = "torch"

    def __init__(self, model: torch.nn.Module, device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.model = model.eval().to(self.device)
        self.takes_hints = spec_of(model).hints

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, hints: torch.Tensor | None = None,
                 global_hint: torch.Tensor | None = None) -> torch.Tensor:
        """``hints`` ``(B, 3, h, w)`` and ``global_hint`` ``(B, 314)``: a hint network's
        inputs (None: no hint; only a hint network takes them)."""
        x = x.to(self.device)
        if not self.takes_hints:
            if hints is not None or global_hint is not None:
                raise ValueError("this network takes no hints")
            return self.model(x).float().cpu()
        none_local, none_global = empty_hints(x.shape[0], x.shape[2], x.shape[3], self.device)
        hints = none_local if hints is None else hints.to(self.device)
        global_hint = none_global if global_hint is None else global_hint.to(self.device)
        return self.model(x, hints, global_hint).float().cpu()


class OnnxBackend:
    name = "onnx"
    takes_hints = False  # exports have the L_n input only

    def __init__(self, path: str | os.PathLike, threads: int | None = None, arena: bool = True):
        """``arena``: ONNX Runtime's memory arena, which keeps a run's largest buffers for the
        next runs (faster for a model run again and again; False gives them back after each
        run: the damage model, run on a few tiles per photo beside a colorizer)."""
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise BackendError("the onnx backend needs onnxruntime: pip install onnxruntime") from e
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.log_severity_level = 3  # errors only: its warnings are about graph rewrites it chose itself
        # No busy-waiting between ops: on 2 cores the default model ran in 13.6 ms without it
        # against 20.4 ms with it (the spinning threads compete with the caller's), and a
        # shared machine suffers far more from spinning threads.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.enable_cpu_mem_arena = arena
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types, one per failure kind
            raise CheckpointError(f"{path}: not an ONNX model ONNX Runtime can load ({first_line(e)})") from None
        self.input = self.session.get_inputs()[0].name
        self.meta = read_onnx_meta(self.session)
        self.precision = self.meta.get("precision", "fp32")  # "int8": quantized (tinct.quantize)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out = self.session.run(None, {self.input: x.detach().cpu().numpy().astype("float32", copy=False)})[0]
        return torch.from_numpy(out)


def read_onnx_meta(session) -> dict[str, Any]:
    props = session.get_modelmeta().custom_metadata_map
    if META_KEY not in props:
        raise CheckpointError("ONNX file was not exported by tinct (no 'tinct' metadata); use tinct export")
    return json.loads(props[META_KEY])


def export_onnx(model: torch.nn.Module, meta: dict[str, Any], path: str | os.PathLike, opset: int = OPSET,
                example_size: int = 160) -> None:
    """Write ``model`` as ONNX with dynamic batch, height and width, and tinct's meta inside.

    The input is ``L_n`` (normalised L, ``(B, 1, H, W)``, H and W multiples of the model's
    stride); the output is the network's raw output. ``model`` comes from
    :func:`tinct.models.create_model` (or a checkpoint): its spec is written into the meta. The TorchScript-based exporter is tried
    first (about a second); where it cannot trace a model, the torch.export-based one.

    Raises:
        BackendError: neither exporter could convert the model.
    """
    try:
        import onnx
    except ImportError as e:
        raise BackendError("exporting to ONNX needs the onnx package: pip install onnx onnxscript") from e

    spec = spec_of(model)
    if spec.hints:
        raise BackendError("a hint model cannot be exported to ONNX yet (the export would have no hint inputs); "
                           "it runs on the torch backend")
    model = model.eval().cpu()
    stride = spec.stride
    side = max(stride, example_size // stride * stride)
    example = torch.zeros(1, spec.in_channels, side, side + stride)
    # The spec travels in the file (the ONNX backend has no model to ask), beside the
    # working size the colorizer uses.
    meta = {**meta, **spec.to_meta(), "size": int(meta.get("size", spec.native_size))}
    errors = []
    for dynamo in (False, True):
        tmp = Path(path).with_name(f"{Path(path).name}.{os.getpid()}.export")  # processes may export at once
        try:
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")
                if dynamo:
                    program = torch.onnx.export(model, (example,), input_names=["L_n"], output_names=["out"],
                                                dynamic_shapes=[{0: "batch", 2: "height", 3: "width"}],
                                                opset_version=opset, dynamo=True, verbose=False)
                    program.save(str(tmp))
                else:
                    torch.onnx.export(model, (example,), str(tmp), input_names=["L_n"], output_names=["out"],
                                      dynamic_axes={"L_n": {0: "batch", 2: "height", 3: "width"},
                                                    "out": {0: "batch", 2: "out_height", 3: "out_width"}},
                                      opset_version=opset, dynamo=False)
            proto = onnx.load(str(tmp))
        except Exception as e:  # each exporter fails in its own ways; report both below
            errors.append(f"{'dynamo' if dynamo else 'torchscript'} exporter: {first_line(e)}")
            continue
        finally:
            tmp.unlink(missing_ok=True)
        entry = proto.metadata_props.add()
        entry.key, entry.value = META_KEY, json.dumps(meta)
        atomic_write(path, lambda t: onnx.save(proto, str(t)))
        return
    raise BackendError("cannot export the model to ONNX: " + "; ".join(errors))


def cached_onnx(weights: Path, model: torch.nn.Module, meta: dict[str, Any]) -> Path:
    """The ONNX export of a checkpoint file, made on first use and kept in the cache."""
    digest = hashlib.sha256()
    with open(weights, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    digest.update(f"opset{OPSET}".encode())
    path = cache_dir() / "onnx" / f"{weights.stem}-{digest.hexdigest()[:16]}.onnx"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        export_onnx(model, meta, path)
    return path
