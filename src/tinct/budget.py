"""How much memory colorizing one image takes, known from its header before decoding.

Two parts grow with the input (figures measured by ``benchmarks/memory.py``, peak RSS of a
child process, default model, 2 CPU threads):

- the photo: the decoded pixels, their full-resolution L (4 bytes a pixel) and the 8-bit
  output (4 bytes a pixel in Pillow), plus the decoder's copies while decoding;
- the network: its activations and outputs at the largest working shape (the working size
  times the largest of the model's scales), ~:data:`NET_BYTES_PER_PIXEL` bytes a pixel.

:func:`estimate` adds them to the process's fixed cost (the model, the runtimes) and
:func:`check` refuses an image whose estimate exceeds the budget (:data:`DEFAULT_BUDGET`,
chosen so that what it accepts peaks below 2.5 GB). Batches are cut to what the
network's share holds (:func:`batch_that_fits`).
"""

from __future__ import annotations

from .io import ImageError

GB = 1_000_000_000
DEFAULT_BUDGET = int(2.4 * GB)  # bytes for one colorization, the process's fixed cost included
BASE_BYTES = {"onnx": 450_000_000, "torch": 400_000_000}  # the model and the runtimes, loaded
NET_BYTES_PER_PIXEL = {"onnx": 760, "torch": 560}  # per pixel of the largest working shape, flip included
RESIZE_BYTES_PER_SIDE_PIXEL = 32  # a 40,000,000 x 1 strip: 1.3 GB over 9 bytes a pixel
NET_BATCH_BYTES = 1 * GB  # what a forward pass may take when photos are batched together


class MemoryBudgetError(ImageError):
    """Colorizing this image would need more memory than the budget allows."""


def _pixel_bytes(mode: str) -> tuple[int, int, int]:
    """(bytes a pixel in Pillow, in tinct's decoded array, alpha) for a PIL mode."""
    if mode in ("1", "L", "P"):
        return 1, 1, 0
    if mode in ("LA", "La", "PA"):
        return 4, 1, 1
    if mode.startswith("I;16"):
        return 2, 4 + 8, 0  # float64 while converting, float32 kept
    if mode in ("I", "F"):
        return 4, 4 + 8, 0
    return 4, 3, 1 if mode in ("RGBA", "RGBa") else 0  # RGB, RGBA, CMYK, YCbCr, ...


def estimate(full_pixels: int, mode: str, work_pixels: int, backend: str = "onnx", long_side: int = 0) -> int:
    """Peak bytes of colorizing one image.

    Args:
        full_pixels: the image's width x height.
        mode: its PIL mode.
        work_pixels: pixels of the largest working shape the network sees.
        backend: "onnx" or "torch".
        long_side: the image's longer side: the antialiased resize to the working shape
            keeps filter weights per source pixel of each side (what a thin strip pays).
    """
    pil, array, alpha = _pixel_bytes(mode)
    decoding = 2 * pil + array  # the decoded image, its EXIF-transposed copy, tinct's array
    colorizing = array + 10 + 2 * alpha  # the array, L (4), the output image (4), tiles and slack; alpha twice
    net = NET_BYTES_PER_PIXEL.get(backend, max(NET_BYTES_PER_PIXEL.values())) * work_pixels
    resize = RESIZE_BYTES_PER_SIDE_PIXEL * long_side
    return BASE_BYTES.get(backend, max(BASE_BYTES.values())) + max(decoding, colorizing) * full_pixels + net + resize


def check(needed: int, limit: int, shape: tuple[int, int], size: int) -> None:
    """Raise :class:`MemoryBudgetError` when ``needed`` bytes exceed ``limit``."""
    if needed > limit:
        h, w = shape
        raise MemoryBudgetError(
            f"{w}x{h} at working size {size} needs about {needed / GB:.1f} GB, over the memory budget of "
            f"{limit / GB:.1f} GB; use a smaller --size or a smaller image (or raise --max-memory-gb)")


def batch_that_fits(batch_size: int, work_pixels: int, backend: str = "onnx") -> int:
    """How many photos of ``work_pixels`` working pixels one forward pass may take (at least 1)."""
    per = NET_BYTES_PER_PIXEL.get(backend, max(NET_BYTES_PER_PIXEL.values())) * max(work_pixels, 1)
    return max(1, min(batch_size, NET_BATCH_BYTES // per))


def return_freed_memory_at_once(threshold: int = 2 * 1024 * 1024) -> bool:
    """Have the C allocator (glibc) serve every block of ``threshold`` bytes or more by its own
    ``mmap``, so freeing one gives it back to the system at once. Process-wide; False where
    there is no glibc (nothing changes there). Called by every :class:`tinct.restore.Restorer`.

    Why: glibc raises that threshold (up to 32 MB) each time a large block is freed, after
    which a 24 MP photo's full-size working copies (24-96 MB each) come from the heaps of the
    threads that made them and stay there when freed. ``tinct colorize --restore`` restores
    in the decoding threads and colorizes in the main one, so the restoration's freed copies
    added to the colorizer's peak: at 24 MP 1,070 MB against colorize's 739 MB; 704-722 MB with
    this and the damage model's ONNX arena off (docs/RESTORE.md; no slower: 14.5 s against 12.5-15.5 s).
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt if name else None
    except (OSError, AttributeError):  # no C library to load, or one without mallopt (not glibc)
        return False
    M_MMAP_THRESHOLD = -3
    return bool(mallopt and mallopt(M_MMAP_THRESHOLD, int(threshold)))
