"""Making int8 models from photos: ``tinct export --precision int8`` and the shipped ranges.

Measures a checkpoint's activation ranges (:mod:`tinct.quantize`) on photos spread over a
folder, and writes int8 ONNX files. Apart from :mod:`tinct.quantize` because it loads models
through :class:`tinct.Colorizer`, which itself opens int8 models through that module.
"""

from __future__ import annotations

from pathlib import Path

from .backends import cached_onnx
from .colorizer import Colorizer, resolve_model_path
from .quantize import PrecisionError, calibration_inputs, measure_ranges, quantize, ranges_table, shipped_ranges


def calibrate(spec, folder: str | Path, photos: int = 64) -> tuple[dict, Path, object]:
    """Measure a checkpoint's int8 ranges on ``photos`` photos spread evenly over ``folder``
    (every k-th of its images in sorted order, so the choice is the same everywhere).

    Returns:
        ``(table, weights path, colorizer)``: the ranges table (:func:`ranges_table`), the
        weight file it is measured for and the float32 :class:`tinct.Colorizer` used.

    Raises:
        FileNotFoundError: ``folder`` holds no images.
    """
    from .io import find_images

    weights = resolve_model_path(spec)
    paths = find_images(folder)
    if not paths:
        raise FileNotFoundError(f"{folder}: no images to calibrate int8 ranges on")
    step = max(1, len(paths) // photos)
    chosen = paths[::step][:photos]
    col = Colorizer.load(weights, backend="torch")
    fp32 = cached_onnx(weights, col.model, col.meta)
    ranges = measure_ranges(fp32, calibration_inputs(col, chosen))
    table = ranges_table(ranges, weights, photos=len(chosen), every=step, folder=Path(folder).name,
                         sizes=col.working_sizes(None), flip=col.flip, method="minmax")
    return table, weights, col


def export_int8(spec, out: str | Path, calibration: str | Path | None = None, photos: int = 64) -> None:
    """``tinct export --precision int8``: write the int8 ONNX file of a model, with its shipped
    ranges, or with ranges measured on ``photos`` photos of the folder ``calibration``.

    Raises:
        PrecisionError: no shipped ranges and no calibration folder, or quantization failed.
        FileNotFoundError: the calibration folder holds no images.
    """
    from .checkpoint import load_model

    weights = resolve_model_path(spec)
    if calibration is not None:
        table, _, col = calibrate(weights, calibration, photos)
        model, meta = col.model, col.meta
    else:
        model, meta = load_model(weights)  # first: a file that is no checkpoint says so
        table = shipped_ranges(weights)
        if table is None:
            raise PrecisionError(f"{weights}: no int8 calibration ranges ship for this model; give photos to "
                                 "measure them on: --calibration DIR")
    quantize(cached_onnx(weights, model, meta), table, out)
