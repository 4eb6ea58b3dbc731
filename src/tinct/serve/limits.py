"""What one colorization may cost: the working-size range, a memory budget, out-of-memory errors.

The budget is computed from the image's header (size and mode, nothing decoded) and the
working shape the request asks for, before anything large is allocated. It models the
steps a request takes (:func:`tinct.io.load_image`, :meth:`tinct.Colorizer.colorize`, PNG
encoding), so a request is refused (413) when its estimate is over ``--max-job-mb``:

    decoded image     pixels x (Pillow's buffer + tinct's array + conversions)
    L + output        pixels x (4 L + 3 RGB array + 4 Pillow RGB(A) + 1 alpha + 6 PNG bytes and copy)
    ab widening       2 x output rows x width x 4      (ab widened to the full width once)
    one strip         strip pixels x 160               (Lab -> sRGB temporaries; a strip is
                                                         at least one full row: thin images hurt)
    network           working pixels x 480 of the largest scale (x2 with flip averaging:
                      both run as one batch); scales run one after the other

The per-pixel constants were measured (peak RSS in a child process, ONNX Runtime, the
bundled EfficientNet-Lite0 U-Net over 313 bins, flip-averaged at scales 0.8 and 1.4):
every case is estimated 15-40% above what it used (``benchmarks/serve_memory.py``
measures them again). A 40,000,000 x 1 strip is
estimated at 10 GB -- its one-row strips are the whole width -- and refused from its header.

This mirrors the colorizer's algorithm from outside (tinct.colorizer is not the server's);
it belongs next to that algorithm, as ``Colorizer.memory_estimate``, once it can move there.
"""

from __future__ import annotations

import weakref

import torch
from fastapi import HTTPException

SIZE_RANGE = (32, 768)  # working size over REST; a square photo at 768 fits the default --max-job-mb
MB = 2**20
NET_BYTES_PER_WORKING_PIXEL = 480  # measured 405-440 (704x704 to 1440x1440 working shapes, batch of 2)
STRIP_BYTES_PER_PIXEL = 160  # measured ~120-150 on one-row strips of 1 and 4 million pixels
STRIP_PIXELS = 1 << 20  # tinct.colorizer.STRIP_PIXELS: the colorizer works in strips of whole rows
_DEEP = {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
_GREY = {"1", "L", "LA", "La"}
_OOM_WORDS = ("not enough memory", "defaultcpuallocator", "out of memory", "failed to allocate",
              "bad_alloc", "bad allocation", "cannot allocate memory")
_output_strides: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def is_out_of_memory(exc: BaseException) -> bool:
    """A failed allocation: ``MemoryError`` (numpy, Pillow) or a framework's own error for it.

    PyTorch raises ``RuntimeError("... DefaultCPUAllocator: not enough memory ...")`` and ONNX
    Runtime its ``RuntimeException("... Failed to allocate memory ...")``; neither is a
    ``MemoryError``, so they are recognised by their message.
    """
    if isinstance(exc, MemoryError):
        return True
    return isinstance(exc, Exception) and any(w in str(exc).lower() for w in _OOM_WORDS)


def out_of_memory() -> HTTPException:
    return HTTPException(503, "out of memory for this image right now; retry later, or send a smaller image or size",
                         headers={"Retry-After": "10"})


def decoded_bytes_per_pixel(mode: str) -> int:
    """Bytes a pixel of ``mode`` costs while :func:`tinct.io.load_image` decodes and converts it."""
    if mode in _DEEP:
        return 4 + 8 + 8 + 4  # Pillow's buffer, float64 copy, clip temporary, float32 result
    pillow = 1 if mode in ("1", "L", "P") else 4  # Pillow keeps every multi-band mode at 4 bytes a pixel
    if mode in _GREY:
        return pillow + 2 + (1 if "A" in mode else 0)  # (converted to L) + uint8 array (+ alpha)
    return pillow + 4 + 3 + 1  # converted to RGB(A) + uint8 RGB array + alpha


def output_stride(colorizer) -> int:
    """How many working pixels one output pixel covers along a side (measured once, tiny input)."""
    stride = _output_strides.get(colorizer)
    if stride is None:
        side = 2 * colorizer.spec.stride
        out = colorizer.predict_raw(torch.full((1, 1, side, side), 50.0))
        stride = max(1, side // int(out.shape[-2]))
        _output_strides[colorizer] = stride
    return stride


def estimate_bytes(colorizer, w: int, h: int, mode: str, size: int | None) -> int:
    """Peak bytes to colorize a ``w x h`` image of ``mode`` at working size ``size`` (either
    orientation: EXIF may turn it), not counting the upload itself."""
    return max(_estimate(colorizer, w, h, mode, size), _estimate(colorizer, h, w, mode, size))


def _estimate(colorizer, w: int, h: int, mode: str, size: int | None) -> int:
    n = w * h
    full = n * (decoded_bytes_per_pixel(mode) + 4 + 3 + 4 + 1 + 6)
    strip = min(h, max(1, STRIP_PIXELS // w)) * w * STRIP_BYTES_PER_PIXEL
    net, out_rows = 0, 0
    for s in colorizer.working_sizes(size):
        hh, ww = colorizer.working_shape(h, w, s)
        net = max(net, hh * ww * NET_BYTES_PER_WORKING_PIXEL * (2 if colorizer.flip else 1))
        out_rows = max(out_rows, hh // output_stride(colorizer))
    wide = 2 * out_rows * w * 4
    return full + strip + net + wide


def check_budget(colorizer, w: int, h: int, mode: str, size: int | None, budget_bytes: int) -> None:
    """Raise 413 when colorizing this image at ``size`` would need more than the budget.

    The message gives the estimate and the largest working size that fits, if any.
    """
    need = estimate_bytes(colorizer, w, h, mode, size)
    if need <= budget_bytes:
        return
    stride = colorizer.spec.stride
    asked = int(size or colorizer.size)
    fits = next((s for s in range(asked - asked % stride, max(stride, SIZE_RANGE[0]) - 1, -stride)
                 if s < asked and estimate_bytes(colorizer, w, h, mode, s) <= budget_bytes), None)
    hint = (f"size {fits} or less fits" if fits else
            "no working size fits: send a smaller image (or one less long and thin)")
    raise HTTPException(413, f"this {w}x{h} image needs about {need / MB:,.0f} MB to colorize at size {asked}, "
                             f"over the server's {budget_bytes / MB:,.0f} MB limit per colorization (--max-job-mb); "
                             f"{hint}")
