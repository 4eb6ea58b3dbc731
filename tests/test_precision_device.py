"""int8 (tinct.quantize) and --device (tinct.runtime): choices, errors, and the int8 model."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from tinct import Colorizer, quantize, runtime
from tinct.backends import BackendError
from tinct.colorizer import bundled_path
from tinct.int8_export import export_int8

from conftest import make_photo

CUDA = torch.cuda.is_available()


def test_choose_precision():
    table = {"ranges": {}}
    assert quantize.choose("fp32", True, table) == "fp32"
    assert quantize.choose("auto", True, None) == "fp32"  # no ranges: float32
    assert quantize.choose("auto", True, table) == "fp32"  # ranges not evaluated within the bound: float32
    assert quantize.choose("auto", True, {**table, "auto": True}) == ("int8" if quantize.int8_native() else "fp32")
    assert quantize.choose("auto", False, table) == "fp32"  # torch or a GPU: float32
    with pytest.raises(quantize.PrecisionError, match="no int8 calibration ranges"):
        quantize.choose("int8", True, None)
    with pytest.raises(quantize.PrecisionError, match="onnx backend on a CPU"):
        quantize.choose("int8", False, table)
    with pytest.raises(ValueError):
        quantize.choose("int4", True, table)


def test_precision_suffix_of_a_model_string(tmp_path):
    assert runtime.split_precision("default@int8") == ("default", "int8")
    assert runtime.split_precision("runs/x@fp32") == ("runs/x", "fp32")
    assert runtime.split_precision("default") == ("default", None)
    odd = tmp_path / "m@int8"
    odd.write_bytes(b"")
    assert runtime.split_precision(str(odd)) == (str(odd), None)  # an existing file keeps its name


def test_the_shipped_ranges_are_those_of_the_bundled_weights():
    table = quantize.shipped_ranges(bundled_path("default"))
    assert table is not None, "src/tinct/int8/default.json is stale: python scripts/int8_ranges.py --data TRAIN"
    assert table["calibration"]["sizes"] == Colorizer.load("default", backend="torch").working_sizes(None)
    assert all(lo <= hi for lo, hi in table["ranges"].values())


def test_int8_of_a_checkpoint_calibrated_on_a_folder(tiny_checkpoint, tmp_path):
    if not quantize.quantize_supported():
        pytest.skip("this onnxruntime cannot quantize from stored ranges")
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(4):
        make_photo(80, 64, seed=i).save(photos / f"p{i}.png")
    out = tmp_path / "tiny-int8.onnx"
    export_int8(tiny_checkpoint, out, photos, photos=3)
    q = Colorizer.load(out)
    assert (q.backend, q.precision) == ("onnx", "int8")
    with pytest.raises(quantize.PrecisionError, match="float32 ONNX"):
        Colorizer.load(_fp32_export(tiny_checkpoint, tmp_path), precision="int8")
    photo = make_photo(64, 64, seed=9)
    a = np.asarray(q.colorize(photo), dtype=int)
    b = np.asarray(Colorizer.load(tiny_checkpoint, precision="fp32").colorize(photo), dtype=int)
    assert a.shape == b.shape and np.abs(a - b).mean() < 8  # random weights: a loose bound on int8's rounding


def _fp32_export(checkpoint_path, tmp_path):
    from tinct.backends import export_onnx
    from tinct.checkpoint import load_model

    model, meta = load_model(checkpoint_path)
    path = tmp_path / "fp32.onnx"
    export_onnx(model, meta, path)
    return path


def test_int8_without_ranges_or_on_torch_is_refused_clearly(tiny_checkpoint, tmp_path):
    with pytest.raises(quantize.PrecisionError, match="no int8 calibration ranges"):
        Colorizer.load(tiny_checkpoint, precision="int8")
    assert Colorizer.load(tiny_checkpoint, precision="auto").precision == "fp32"  # no ranges: float32
    make_photo().save(tmp_path / "x.png")
    run = subprocess.run([sys.executable, "-m", "tinct", "colorize", str(tmp_path / "x.png"), "--precision", "int8",
                          "--backend", "torch", "-o", str(tmp_path / "out")], capture_output=True, text=True)
    assert run.returncode == 2 and "onnx backend on a CPU" in run.stderr and "Traceback" not in run.stderr


@pytest.mark.skipif(CUDA, reason="checks the error where there is no GPU")
def test_cuda_asked_for_without_a_gpu_is_a_clear_error(tmp_path):
    with pytest.raises(BackendError, match="CUDA is not available"):
        runtime.resolve_device("cuda")
    assert runtime.resolve_device("auto") == "cpu"
    make_photo().save(tmp_path / "x.png")
    for args in (["colorize", str(tmp_path / "x.png"), "-o", str(tmp_path / "out")],
                 ["video", str(tmp_path / "x.mp4"), "-o", str(tmp_path / "y.mp4")]):
        run = subprocess.run([sys.executable, "-m", "tinct", *args, "--device", "cuda"], capture_output=True, text=True)
        assert run.returncode == 2, run.stderr
        assert "--device cuda: CUDA is not available" in run.stderr and "Traceback" not in run.stderr


def test_unknown_device_is_refused():
    with pytest.raises(ValueError, match="device must be one of"):
        runtime.resolve_device("tpu")


@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
def test_cuda_runs_the_torch_backend_and_agrees_with_the_cpu(tiny_checkpoint):
    gpu = Colorizer.load(tiny_checkpoint, device="cuda")
    assert gpu.backend == "torch" and next(gpu.model.parameters()).is_cuda
    assert Colorizer.load(tiny_checkpoint, device="auto").backend == "torch"
    with pytest.raises(BackendError, match="onnx backend runs on the CPU"):
        Colorizer.load(tiny_checkpoint, device="cuda", backend="onnx")
    photo = make_photo(96, 64)
    a = np.asarray(gpu.colorize(photo), dtype=int)
    b = np.asarray(Colorizer.load(tiny_checkpoint, backend="torch").colorize(photo), dtype=int)
    assert np.abs(a - b).max() <= 2
