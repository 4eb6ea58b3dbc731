"""Reading and writing the images people actually have, with clear errors.

Decoding is Pillow's; this module only normalises what comes out of it: EXIF orientation
applied, any mode (1, L, LA, P, RGB, RGBA, CMYK, I;16, I, F) turned into sRGB floats in
[0, 1] plus an optional alpha channel, and a pixel-count guard against decompression
bombs that is checked from the header before anything is decoded.

That guard is tinct's own and per call (``max_pixels``): tinct leaves Pillow's process-wide
``PIL.Image.MAX_IMAGE_PIXELS`` to the program that imports it, and opens images without
consulting it (:func:`open_header`).

Also the file-level helpers every command shares: finding the images in a folder
(:func:`find_images`), the centre square a photo is cropped to (:func:`square`), and
writing any file atomically (:func:`atomic_write`).
"""

from __future__ import annotations

import io as _io
import os
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

DEFAULT_MAX_PIXELS = 180_000_000  # 180 MP: above any camera photo, below a bomb
# The extensions tinct looks for in folders: the formats this Pillow build decodes that hold
# photos (GIF included: its first frame is read). Everything that searches a folder uses
# this one set, so a photo tinct colorizes is also one it can train and be evaluated on.
INPUT_EXTS = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp", ".gif"}
OUTPUT_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}


class ImageError(Exception):
    """An input or output image problem; the message names the file and the reason."""


@dataclass
class Photo:
    """A decoded photo, kept as compact as its source allows.

    Attributes:
        pixels: sRGB as decoded: uint8 ``(H, W)`` (grey) or ``(H, W, 3)``, or float32 in
            [0, 1] for sources deeper than 8 bits. A 24 MP grey JPEG is 24 MB here, not the
            288 MB of a float RGB copy, which is what keeps huge photos within memory.
        alpha: uint8 ``(H, W)`` or None.
        name: where it came from (for messages).
        is_gray: the photo has no colour: a grey mode, or RGB with three equal channels.
    """

    pixels: np.ndarray
    alpha: np.ndarray | None
    name: str
    is_gray: bool

    @property
    def size(self) -> tuple[int, int]:
        """(width, height), as PIL reports sizes."""
        return self.pixels.shape[1], self.pixels.shape[0]

    @property
    def rgb(self) -> np.ndarray:
        """float32 ``(H, W, 3)`` sRGB in [0, 1] (a new array; grey photos get three equal channels)."""
        return rgb_float(self.pixels)


def rgb_float(pixels: np.ndarray) -> np.ndarray:
    """uint8 or float pixels, grey ``(H, W)`` or ``(H, W, 3)`` -> float32 ``(H, W, 3)`` in [0, 1]."""
    f = pixels.astype(np.float32) / 255.0 if pixels.dtype == np.uint8 else pixels.astype(np.float32, copy=False)
    return np.repeat(f[..., None], 3, axis=-1) if f.ndim == 2 else f


def load_image(src, max_pixels: int = DEFAULT_MAX_PIXELS, name: str | None = None) -> Photo:
    """Decode a file path, bytes or PIL image into a :class:`Photo`.

    Raises:
        ImageError: missing, empty, truncated, not an image, or too many pixels.
    """
    if isinstance(src, Image.Image):
        return _from_pil(src, name or "<image>", max_pixels)
    if isinstance(src, (bytes, bytearray)):
        name = name or "<bytes>"
        if not src:
            raise ImageError(f"{name}: empty data (0 bytes)")
        return _open_and_convert(_io.BytesIO(src), name, max_pixels)
    path = Path(src)
    name = name or str(path)
    if not path.exists():
        raise ImageError(f"{name}: no such file")
    if path.is_dir():
        raise ImageError(f"{name}: is a folder, not an image")
    if path.stat().st_size == 0:
        raise ImageError(f"{name}: empty file (0 bytes)")
    with open(path, "rb") as f:
        return _open_and_convert(f, name, max_pixels)


def open_header(fp) -> Image.Image:
    """``PIL.Image.open`` of a binary file object, the header only, without Pillow's pixel limit.

    ``Image.open`` compares every image's size with ``PIL.Image.MAX_IMAGE_PIXELS``, a
    process-wide setting that belongs to the program importing tinct. tinct has its own
    per-call limit (``max_pixels``, checked by the callers from ``im.size``), so this asks
    Pillow's registered format plugins directly, in Pillow's order and with the errors
    ``Image.open`` treats as "not this format" -- which neither reads nor changes that
    global, and so is safe from any thread.

    A few formats check Pillow's limit again inside their plugins (the frames of an MPO
    while opening, TIFF and GIF images while decoding); for those Pillow's global still
    applies, and tinct reports its ``DecompressionBombError`` as an :class:`ImageError`.

    Raises:
        PIL.UnidentifiedImageError: no plugin recognises the data.
    """
    Image.init()  # registers every plugin (a no-op after the first call)
    fp.seek(0)
    prefix = fp.read(16)
    for fmt in list(Image.ID):
        factory, accept = Image.OPEN[fmt]
        try:
            result = not accept or accept(prefix)  # a str is a plugin's "not quite" message
            if result and not isinstance(result, str):
                fp.seek(0)
                return factory(fp, "")
        except (SyntaxError, IndexError, TypeError, struct.error):
            continue  # not this format after all (a short prefix, a bad header)
    raise UnidentifiedImageError(f"cannot identify image file {fp!r}")


def _open_and_convert(fp, name: str, max_pixels: int) -> Photo:
    try:
        im = open_header(fp)
        _check_pixels(im, name, max_pixels)
        im.load()
    except Image.DecompressionBombError as e:  # from a format that checks Pillow's limit while decoding
        raise ImageError(f"{name}: {e} (Pillow's own limit for this format, PIL.Image.MAX_IMAGE_PIXELS)") from None
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image file Pillow can read (unknown or corrupt format)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        msg = str(e).strip() or type(e).__name__
        if "truncated" in msg.lower() or isinstance(e, EOFError):
            msg = f"truncated or damaged image data ({msg})"
        raise ImageError(f"{name}: cannot decode: {msg}") from None
    return _from_pil(im, name, max_pixels)


def _check_pixels(im: Image.Image, name: str, max_pixels: int) -> None:
    w, h = im.size
    if w < 1 or h < 1:
        raise ImageError(f"{name}: image has no pixels ({w}x{h})")
    if w * h > max_pixels:
        raise ImageError(
            f"{name}: {w}x{h} = {w * h / 1e6:.0f} MP exceeds the limit of {max_pixels / 1e6:.0f} MP "
            "(a guard against decompression bombs; raise it with --max-megapixels)"
        )


def _from_pil(im: Image.Image, name: str, max_pixels: int) -> Photo:
    _check_pixels(im, name, max_pixels)
    try:
        im = ImageOps.exif_transpose(im)
    except Exception:  # broken EXIF must not lose the photo; keep it as stored
        pass
    mode = im.mode
    alpha = None
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        mode = im.mode
    if mode in ("LA", "La", "PA", "RGBA", "RGBa"):
        alpha = np.asarray(im.getchannel("A"), dtype=np.uint8).copy()
    is_gray = mode in ("1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")
    if mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        arr = np.asarray(im, dtype=np.float64)
        top = 65535.0 if (mode.startswith("I;16") or arr.max(initial=0) > 255) else 255.0
        if mode == "F":
            top = 1.0 if arr.max(initial=0) <= 1.0 else 255.0
        pixels = np.clip(arr / top, 0, 1).astype(np.float32)
    elif is_gray:
        pixels = np.asarray(im if mode == "L" else im.convert("L"), dtype=np.uint8)
    else:
        # CMYK goes through Pillow's plain conversion (no ICC): enough to take the luminance from.
        pixels = np.asarray(im if mode == "RGB" else im.convert("RGB"), dtype=np.uint8)
        if _channels_equal(pixels):  # a grey photo saved as RGB (most scans): keep one channel
            pixels, is_gray = np.ascontiguousarray(pixels[..., 0]), True
    return Photo(pixels=pixels, alpha=alpha, name=name, is_gray=is_gray)


def _channels_equal(rgb: np.ndarray) -> bool:
    return bool(np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]))


def to_pil(rgb: np.ndarray, alpha: np.ndarray | None = None) -> Image.Image:
    """float ``(H, W, 3)`` in [0, 1] (+ alpha) -> 8-bit RGB or RGBA PIL image."""
    u8 = (np.clip(rgb, 0, 1) * 255.0 + 0.5).astype(np.uint8)
    im = Image.fromarray(u8, "RGB")
    if alpha is not None:
        im.putalpha(Image.fromarray(alpha, "L"))
    return im


def save_image(im: Image.Image, path: str | os.PathLike, quality: int = 95) -> None:
    """Write an 8-bit PNG or JPEG chosen by the extension, atomically.

    JPEG has no alpha channel: a transparent photo saved as JPEG loses its alpha (PNG keeps it).
    """
    path = Path(path)
    fmt = OUTPUT_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ImageError(f"{path}: unsupported output extension {path.suffix!r}; use .png, .jpg or .jpeg")
    if fmt == "JPEG" and im.mode != "RGB":
        im = im.convert("RGB")
    # PNG: zlib level 1. On photos it writes files within ~2% of level 6's size, three
    # times faster (20 val photos: 269 kB in 23 ms vs 273 kB in 71 ms).
    kwargs = {"quality": quality} if fmt == "JPEG" else {"compress_level": 1}
    atomic_write(path, lambda tmp: im.save(tmp, format=fmt, **kwargs))


def atomic_write(path: str | os.PathLike, write) -> None:
    """Call ``write(tmp_path)``, then rename the temporary file over ``path``.

    A crash mid-write leaves the previous file intact (the rename is atomic on POSIX).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual file mode
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ----------------------------------------------------------------- folders and crops
def find_images(root: str | os.PathLike, recursive: bool = True) -> list[Path]:
    """The image files (:data:`INPUT_EXTS`, any case) in folder ``root``, sorted by relative path.

    Args:
        root: the folder.
        recursive: also every sub-folder's.

    Hidden files and folders (a name starting with ".") are skipped: they are a tool's, not
    the user's photos (macOS writes a ``._name.jpg`` beside each photo on some disks). The
    order is that of the POSIX relative paths as strings, the same on every system.

    Raises:
        FileNotFoundError: ``root`` is not a folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    found = []
    for path in root.rglob("*") if recursive else root.iterdir():
        rel = path.relative_to(root)
        if path.suffix.lower() in INPUT_EXTS and not any(part.startswith(".") for part in rel.parts) and path.is_file():
            found.append((rel.as_posix(), path))
    return [path for _, path in sorted(found)]


def square(img: np.ndarray, side: int, resample: Image.Resampling = Image.Resampling.BILINEAR) -> np.ndarray:
    """Scale so the short side is ``side`` and take the centre ``side x side`` square.

    Args:
        img: uint8 ``(H, W, 3)`` or ``(H, W)``.
        side: the square's side in pixels.
        resample: Pillow's filter, antialiased when shrinking; bilinear by default, as the
            training-photo cache (:mod:`tinct.data`) has always been made.

    Returns:
        uint8 ``(side, side, 3)`` (or ``(side, side)``). Only the square is resampled, in one
        pass from the source pixels.
    """
    return np.asarray(ImageOps.fit(Image.fromarray(img), (side, side), method=resample))
