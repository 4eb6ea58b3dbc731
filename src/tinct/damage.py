"""Decoding that reports damage instead of hiding it.

Pillow and the C libraries under it notice much of the damage a file can have, but not all
of it reaches the caller as an exception: Pillow reports some as Python warnings (a TIFF tag
past the end of the file, corrupt EXIF), libtiff prints its errors to stderr and may still
hand back pixels, and a PNG's CRC-32 checksums are only checked by ``Image.verify``, which
``Image.open`` + ``load`` never call. :func:`collecting` gathers the warnings and libtiff's
messages of one decode (per thread, so decoders may run side by side, and without printing
them), and :func:`verify` runs the format's own integrity check where it has one.

Which damage can be found depends on the format; docs: README "Inputs". PNG has a CRC-32
on every chunk (and Adler-32 on the pixel stream): any changed byte is found. A JPEG is
decoded a second time by libjpeg-turbo through ``simplejpeg`` in strict mode, because
Pillow drops libjpeg's warnings ("Corrupt JPEG data: ... extraneous bytes", "Premature end
of JPEG file", a bad Huffman code): each of them makes the file fail. JPEG, WebP,
GIF, BMP and TIFF carry no checksum of their pixels: truncation and structural damage are
found, a changed pixel byte that still decodes is not (no decoder can tell).
"""

from __future__ import annotations

import ctypes
import platform
import sys
import threading
import warnings
from contextlib import contextmanager
from typing import Iterator

_lock = threading.Lock()
_local = threading.local()
_depth = 0
_installed: tuple | None = None  # (our filter entry, the showwarning we replaced)


class Damage(Exception):
    """What a decoder reported about one file (the messages, joined)."""


def _show(message, category, filename, lineno, file=None, line=None):
    sink = getattr(_local, "sink", None)
    if sink is not None:
        from PIL import Image

        if not issubclass(category, Image.DecompressionBombWarning):  # tinct has its own pixel limit
            sink.append(str(message))
    elif _installed is not None:
        _installed[1](message, category, filename, lineno, file, line)


def _mutated() -> None:
    hook = getattr(warnings, "_filters_mutated", None) or getattr(warnings, "_filters_mutated_lock_held", None)
    if hook is not None:
        hook()


@contextmanager
def collecting() -> Iterator[list[str]]:
    """Collect this thread's Pillow warnings and libtiff messages while the block runs.

    Yields the list the messages go to. Warnings raised by other threads meanwhile are shown
    as usual; while any thread collects, Pillow's warnings are not de-duplicated ("always"),
    so the same damage in a second file is reported again.
    """
    global _depth, _installed
    _libtiff_handlers()
    with _lock:
        if _depth == 0:
            warnings.filterwarnings("always", module=r"(PIL|tinct)(\.|$)")
            _installed = (warnings.filters[0], warnings.showwarning)
            warnings.showwarning = _show
        _depth += 1
    outer = getattr(_local, "sink", None)
    _local.sink = messages = []
    try:
        yield messages
    finally:
        _local.sink = outer
        with _lock:
            _depth -= 1
            if _depth == 0 and _installed is not None:
                entry, show = _installed
                if entry in warnings.filters:
                    warnings.filters.remove(entry)
                    _mutated()
                if warnings.showwarning is _show:
                    warnings.showwarning = show
                _installed = None


def verify(im, fp, reopen) -> None:
    """The format's own integrity check, on a second opening of ``fp`` (PNG: every chunk's CRC).

    ``reopen(fp)`` opens ``fp`` again (header only), as ``im`` was opened.

    Raises:
        Damage: the check failed.
    """
    if im.format == "JPEG":
        return _verify_jpeg(fp)
    if im.format not in ("PNG",):
        return
    try:
        reopen(fp).verify()
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise Damage(f"{str(e).strip() or type(e).__name__} (the PNG checksums do not match)") from None
    finally:
        fp.seek(0)


def _verify_jpeg(fp) -> None:
    """libjpeg's warnings, which Pillow drops, as damage: a strict decode by libjpeg-turbo
    (``simplejpeg``; at 1/8 scale, which still entropy-decodes every block) that fails
    where a tolerant one succeeds. A file neither decodes (a colour space simplejpeg does
    not convert, say) is left to Pillow, which did decode it."""
    import simplejpeg

    try:
        fp.seek(0)
        data = fp.read()
    finally:
        fp.seek(0)
    try:
        simplejpeg.decode_jpeg(data, colorspace="GRAY", min_factor=8, strict=True)
    except ValueError as strict:
        try:
            simplejpeg.decode_jpeg(data, colorspace="GRAY", min_factor=8, strict=False)
        except ValueError:
            return
        raise Damage(f"{str(strict).strip()} (libjpeg's warning: the JPEG data is damaged)") from None


# ----------------------------------------------------------------- libtiff's messages
_handlers: list | None = None


def _libtiff_handlers() -> None:
    """Route libtiff's error and warning messages to :func:`collecting` instead of stderr.

    Done once, where it is safe: Linux on x86-64 (the libtiff Pillow loaded is found in
    /proc/self/maps, and a C ``va_list`` arrives as a pointer that ``vsnprintf`` can format).
    Elsewhere libtiff keeps printing, and its errors still fail the decode through Pillow.
    """
    global _handlers
    if _handlers is not None:
        return
    _handlers = []
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
        return
    from PIL import Image  # noqa: F401  (loads libtiff with Pillow's core)

    try:
        with open("/proc/self/maps") as f:
            paths = sorted({ln.split()[-1] for ln in f if "/libtiff" in ln})
        libtiff, libc = ctypes.CDLL(paths[0]), ctypes.CDLL(None)
    except (OSError, IndexError):
        return
    kind = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p)
    libc.vsnprintf.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_void_p]

    def handler(level: str):
        def record(module, fmt, args):
            buf = ctypes.create_string_buffer(512)
            libc.vsnprintf(buf, len(buf), fmt, args)
            text = f"{(module or b'libtiff').decode(errors='replace')}: {buf.value.decode(errors='replace')}"
            sink = getattr(_local, "sink", None)
            if sink is None:
                print(f"libtiff {level}: {text}", file=sys.stderr)  # not tinct's decode: as libtiff would
            elif level == "error":
                sink.append(text)
            # warnings during tinct's decodes (an unknown tag, say) are not damage: dropped
        return kind(record)

    _handlers = [handler("error"), handler("warning")]
    libtiff.TIFFSetErrorHandler.argtypes = libtiff.TIFFSetWarningHandler.argtypes = [kind]
    libtiff.TIFFSetErrorHandler.restype = libtiff.TIFFSetWarningHandler.restype = ctypes.c_void_p
    libtiff.TIFFSetErrorHandler(_handlers[0])
    libtiff.TIFFSetWarningHandler(_handlers[1])
