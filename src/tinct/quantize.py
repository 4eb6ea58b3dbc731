"""int8 on a CPU: the exported network quantized statically with ONNX Runtime's QDQ tooling.

``precision`` (``tinct colorize --precision``, :meth:`tinct.Colorizer.load`):
    fp32   the network in float32 (either backend);
    int8   the ONNX export quantized: weights int8 per output channel, activations uint8
           with fixed ranges (``quantize_static``, QDQ format). ONNX Runtime on a CPU only;
    auto   int8 where it was measured faster and within the quality bound: ONNX Runtime on
           an x86 CPU with int8 dot products (AVX-512 VNNI, AVX-VNNI or AMX), with ranges
           whose int8 model was evaluated within the bound (their table says ``"auto": true``);
           everywhere else fp32. The bundled model's int8 is 1.6-1.9x faster per network pass
           but 1.1 less colourful on val photos (outside the paired-bootstrap interval), so
           its table says false and ``auto`` runs it in fp32 (docs/PERFORMANCE.md, "int8").

Activations are uint8: on this project's CPU (AVX-512 VNNI) the network ran 1.8-1.9x faster
than float32 with uint8 activations and only 1.1-1.3x with int8 ones (VNNI multiplies
unsigned by signed bytes; signed activations need extra work).

**Calibration ranges.** Static quantization needs each activation's range, measured by
running the float32 network over calibration inputs. The user has no training photos, so the
ranges of the bundled model ship in the package (``tinct/int8/*.json``, about 25 kB: tensor
name -> [min, max]), measured once on training photos' L at the working sizes and flips the
colorizer uses (:func:`calibration_inputs`; ``scripts/int8_ranges.py`` rewrites them). A
table names the SHA-256 of the weight file it was measured for, so changed weights never run
with stale ranges. Any other checkpoint is calibrated from a folder the user gives
(``tinct export --precision int8 --calibration DIR``); its L is all the network sees, so the
photos the user colorizes serve as well as training photos. The quantized model is built on
first use beside the float32 export in the cache, named by the weights' hash and the ranges'.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import platform
import tempfile
from importlib import resources
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from .backends import META_KEY, BackendError, cached_onnx
from .errors import first_line
from .io import atomic_write
from .paths import cache_dir
from .precision import cpu_flags

PRECISIONS = ("fp32", "int8", "auto")
RANGES_FORMAT = 1
# x86 flags of int8 dot-product instructions, where ONNX Runtime's u8 x s8 kernels pay.
INT8_CPU_FLAGS = {"avx512_vnni", "avx_vnni", "amx_int8"}


class PrecisionError(BackendError):
    """int8 cannot run here, or not for this model (no calibration ranges)."""


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def int8_native() -> bool:
    """Whether this CPU has the int8 dot products the uint8 x int8 kernels were measured with."""
    return platform.machine().lower() in ("x86_64", "amd64") and bool(cpu_flags() & INT8_CPU_FLAGS)


def quantize_supported() -> bool:
    """Whether the installed ONNX Runtime can quantize from stored ranges (``calibration_cache_path``)."""
    try:
        from onnxruntime.quantization import quantize_static
        from onnxruntime.quantization.calibrate import save_tensors_data  # noqa: F401
    except ImportError:
        return False
    return "calibration_cache_path" in inspect.signature(quantize_static).parameters


# ------------------------------------------------------------------ ranges
def shipped_ranges(weights: str | Path) -> dict | None:
    """The packaged ranges table measured for this weight file (by SHA-256), or None."""
    folder = resources.files("tinct") / "int8"
    if not folder.is_dir():
        return None
    digest = None
    for entry in folder.iterdir():
        if not entry.name.endswith(".json"):
            continue
        table = json.loads(entry.read_text())
        digest = digest or file_sha256(weights)
        if table.get("weights_sha256") == digest and table.get("format") == RANGES_FORMAT:
            return table
    return None


def calibration_inputs(colorizer, photos: Iterable, flip: bool = True) -> Iterator[np.ndarray]:
    """Normalised L ``(1, 1, h, w)`` float32 of each photo at every working size the
    colorizer uses (its scales), and mirrored when it flip-averages: the shapes and
    statistics the network meets when colorizing.

    Args:
        colorizer: a :class:`tinct.Colorizer` (its working sizes and flip setting are used).
        photos: paths, PIL images or :class:`tinct.io.Photo`.
    """
    from . import color
    from .io import load_image

    for p in photos:
        L = colorizer.luminance(load_image(p).pixels)
        for size in colorizer.working_sizes(None):
            x = color.normalize_l(colorizer.resize(L[None, None], colorizer.working_shape(*L.shape, size)))
            x = x.float().numpy()
            yield x
            if flip and colorizer.flip:
                yield np.ascontiguousarray(x[..., ::-1])


def measure_ranges(fp32_onnx: str | Path, inputs: Iterable[np.ndarray]) -> dict[str, list[float]]:
    """Each activation's [min, max] over ``inputs`` (ONNX Runtime's MinMax calibrator)."""
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, create_calibrator

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(inputs)

        def get_next(self):
            x = next(self.it, None)
            return None if x is None else {"L_n": x}

    with tempfile.TemporaryDirectory(prefix="tinct-calib-") as tmp:
        calibrator = create_calibrator(Path(fp32_onnx), None, augmented_model_path=str(Path(tmp) / "augmented.onnx"),
                                       calibrate_method=CalibrationMethod.MinMax)
        calibrator.collect_data(Reader())
        data = calibrator.compute_data()
        del calibrator
    return {name: [float(np.asarray(t.range_value[0]).min()), float(np.asarray(t.range_value[1]).max())]
            for name, t in data.items()}


def ranges_table(ranges: dict[str, list[float]], weights: str | Path, **about) -> dict:
    """A ranges table as it is stored: the ranges, the weights' SHA-256 and how they were measured."""
    return {"format": RANGES_FORMAT, "weights_sha256": file_sha256(weights), "calibration": about,
            "ranges": ranges}


def _digest(table: dict) -> str:
    return hashlib.sha256(json.dumps(table["ranges"], sort_keys=True).encode()).hexdigest()[:12]


# ------------------------------------------------------------------ the quantized model
def quantize(fp32_onnx: str | Path, table: dict, out: str | Path) -> None:
    """Write the int8 QDQ model of ``fp32_onnx`` with the activation ranges of ``table``.

    Raises:
        PrecisionError: ONNX Runtime cannot quantize from stored ranges, or the ranges do not
            name this export's tensors (measured on another export of other weights).
    """
    import onnx

    if not quantize_supported():
        raise PrecisionError("int8 needs an onnxruntime that quantizes from stored ranges (1.23 or later): "
                             "pip install -U onnxruntime")
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.calibrate import TensorData, TensorsData, save_tensors_data

    proto = onnx.load(str(fp32_onnx))
    ranges = table["ranges"]
    conv_inputs = [n.input[0] for n in proto.graph.node if n.op_type == "Conv"]
    missing = [name for name in conv_inputs if name not in ranges]
    if missing:
        raise PrecisionError(f"the int8 ranges do not match this ONNX export ({len(missing)} of {len(conv_inputs)} "
                             f"convolution inputs unnamed, e.g. {missing[0]}); calibrate again: "
                             "tinct export --precision int8 --calibration DIR")
    data = TensorsData(CalibrationMethod.MinMax, {
        name: TensorData(lowest=np.array([lo], np.float32), highest=np.array([hi], np.float32))
        for name, (lo, hi) in ranges.items()})
    meta = json.loads(next(p.value for p in proto.metadata_props if p.key == META_KEY))
    with tempfile.TemporaryDirectory(prefix="tinct-int8-") as tmp:
        cache = Path(tmp) / "ranges.json"
        save_tensors_data(data, cache)
        staged = Path(tmp) / "int8.onnx"
        import logging

        level = logging.getLogger().level
        logging.getLogger().setLevel(logging.ERROR)  # its advice to pre-process is about other models
        try:
            quantize_static(str(fp32_onnx), str(staged), None, quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax, calibration_cache_path=str(cache))
        except Exception as e:  # onnxruntime's quantizer raises many kinds; the model then runs in fp32
            raise PrecisionError(f"{fp32_onnx}: ONNX Runtime cannot quantize it to int8 ({first_line(e)})") from None
        finally:
            logging.getLogger().setLevel(level)
        q = onnx.load(str(staged))
    del q.metadata_props[:]
    entry = q.metadata_props.add()
    entry.key, entry.value = META_KEY, json.dumps({**meta, "precision": "int8", "int8_ranges": _digest(table)})
    atomic_write(out, lambda t: onnx.save(q, str(t)))


def cached_int8(weights: Path, model, meta: dict, table: dict) -> Path:
    """The int8 model of a checkpoint with these ranges, made on first use and kept in the cache
    beside its float32 export (named by the weights' hash and the ranges')."""
    fp32 = cached_onnx(weights, model, meta)
    path = cache_dir() / "onnx" / f"{fp32.stem}-int8-{_digest(table)}.onnx"
    if not path.is_file():
        quantize(fp32, table, path)
    return path


def choose(precision: str, on_onnx_cpu: bool, table: dict | None) -> str:
    """``fp32`` or ``int8`` for a ``precision`` setting.

    Args:
        on_onnx_cpu: the network runs on ONNX Runtime's CPU provider.
        table: the model's calibration ranges, or None.

    Raises:
        PrecisionError: int8 asked for where it cannot run.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "fp32":
        return "fp32"
    usable = on_onnx_cpu and table is not None and quantize_supported()
    if precision == "auto":  # only ranges whose int8 model met the quality bound say "auto": true
        return "int8" if usable and table.get("auto") is True and int8_native() else "fp32"
    if not on_onnx_cpu:
        raise PrecisionError("--precision int8 runs on the onnx backend on a CPU only")
    if table is None:
        raise PrecisionError("no int8 calibration ranges for this model; make an int8 ONNX file from photos of "
                             "your own: tinct export --model MODEL --precision int8 --calibration DIR -o MODEL-int8.onnx")
    return "int8"

