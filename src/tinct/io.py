"""Reading and writing the images people actually have, with clear errors.

Decoding is Pillow's; this module only normalises what comes out of it: EXIF orientation
applied, any mode (1, L, LA, P, RGB, RGBA, CMYK, I;16, I, F) turned into sRGB floats in
[0, 1] plus an optional alpha channel, and a pixel-count guard against decompression
bombs that is checked from the header before anything is decoded.

That guard is tinct's own and per call (``max_pixels``): tinct leaves Pillow's process-wide
``PIL.Image.MAX_IMAGE_PIXELS`` to the program that imports it, and opens images without
consulting it (:func:`open_header`). A caller can also refuse an image by its header alone
(``check``: the colorizer's memory budget, :meth:`tinct.Colorizer.check_budget`).

Damage is reported, not decoded into a wrong photo: every image is decoded in full while
Pillow's warnings and libtiff's messages are collected, PNG checksums are verified, and
float pixels must be finite (:mod:`tinct.damage`; which formats can reveal what: README).

Also the file-level helpers every command shares: finding the images in a folder
(:func:`find_images`), the centre square a photo is cropped to (:func:`square`), and
writing any file atomically (:func:`atomic_write`).
"""

from __future__ import annotations

import io as _io
import os
import stat
import struct
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .damage import Damage, collecting, verify
from .errors import TinctError

DEFAULT_MAX_PIXELS = 180_000_000  # 180 MP: above any camera photo, below a bomb
# The extensions tinct looks for in folders: the formats this Pillow build decodes that hold
# photos (GIF included: its first frame is read). Everything that searches a folder uses
# this one set, so a photo tinct colorizes is also one it can train and be evaluated on.
INPUT_EXTS = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp", ".gif"}
OUTPUT_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}


class ImageError(TinctError):
    """An input or output image problem; the message names the file and the reason."""


# check(width, height, mode): called with the header's size before any pixel is decoded;
# raises ImageError to refuse the image.
HeaderCheck = Callable[[int, int, str], None]


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


def load_image(src, max_pixels: int = DEFAULT_MAX_PIXELS, name: str | None = None,
               check: HeaderCheck | None = None) -> Photo:
    """Decode a file path, bytes or PIL image into a :class:`Photo`.

    A PIL image that ``Image.open`` returned and that is not loaded yet is decoded again
    from its file, with every check; one already in memory is taken as it is.

    Args:
        check: ``check(width, height, mode)``, called from the header before decoding.

    Raises:
        ImageError: missing, empty, truncated or damaged, not an image, too many pixels,
            non-finite pixels, or refused by ``check``.
    """
    if isinstance(src, Image.Image):
        name = name or getattr(src, "filename", None) or "<image>"
        data = _unloaded_source(src)
        if data is None:
            _check_pixels(src, name, max_pixels, check)
            return _from_pil(src, name)
        return _open_and_convert(_io.BytesIO(data), name, max_pixels, check, frame=src.tell())
    if isinstance(src, (bytes, bytearray, memoryview)):
        name = name or "<bytes>"
        if not len(src):
            raise ImageError(f"{name}: empty data (0 bytes)")
        return _open_and_convert(_io.BytesIO(src), name, max_pixels, check)
    path = Path(src)
    name = name or str(path)
    with open_file(path, name) as f:
        return _open_and_convert(f, name, max_pixels, check)


@contextmanager
def open_file(path: Path, name: str | None = None) -> Iterator:
    """``open(path, "rb")`` of an image file, with the reasons it cannot be one as ImageErrors."""
    name = name or str(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ImageError(f"{name}: " + ("dangling symbolic link" if path.is_symlink() else "no such file")) from None
    except OSError as e:
        raise ImageError(f"{name}: {e.strerror or e}") from None
    if stat.S_ISDIR(st.st_mode):
        raise ImageError(f"{name}: is a folder, not an image")
    if not stat.S_ISREG(st.st_mode):
        raise ImageError(f"{name}: not a regular file ({_file_kind(st.st_mode)})")
    if st.st_size == 0:
        raise ImageError(f"{name}: empty file (0 bytes)")
    try:
        f = open(path, "rb")
    except OSError as e:
        raise ImageError(f"{name}: cannot open: {e.strerror or e}") from None
    with f:
        yield f


def _file_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a plain file"


def _unloaded_source(im: Image.Image) -> bytes | None:
    """The encoded bytes behind an ``Image.open`` result not loaded yet, else None."""
    fp = getattr(im, "fp", None)
    if fp is None or getattr(im, "_im", None) is not None:  # loaded: its pixels are what we have
        return None
    try:
        pos = fp.tell()
        fp.seek(0)
        data = fp.read()
        fp.seek(pos)
    except (OSError, ValueError, AttributeError):
        return None
    return data or None


def read_header(src, max_pixels: int = DEFAULT_MAX_PIXELS, name: str | None = None) -> tuple[int, int, str]:
    """``(width, height, mode)`` of an image file path or bytes, from its header alone.

    For a caller that decides before decoding (the server: :meth:`tinct.Colorizer.check_budget`).

    Raises:
        ImageError: not an image, or more than ``max_pixels``.
    """
    if isinstance(src, (bytes, bytearray, memoryview)):
        return _header(_io.BytesIO(src), name or "<bytes>", max_pixels)
    with open_file(Path(src), name) as f:
        return _header(f, name or str(src), max_pixels)


def _header(fp, name: str, max_pixels: int) -> tuple[int, int, str]:
    try:
        im = open_header(fp)
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image file Pillow can read (unknown or corrupt format)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise ImageError(f"{name}: cannot decode: {_reason(e)}") from None
    _check_pixels(im, name, max_pixels)
    return im.size[0], im.size[1], im.mode


@contextmanager
def opened(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> Iterator[Image.Image]:
    """An image file opened (header only, nothing decoded) after its size passed ``max_pixels``:
    for callers that decode themselves (training photos, shrunk on decode by ``draft``).

    Raises:
        ImageError: not an image or too many pixels.
    """
    path = Path(path)
    with open_file(path) as f:
        _header(f, str(path), max_pixels)
        f.seek(0)
        with open_header(f) as im:
            yield im


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


def _open_and_convert(fp, name: str, max_pixels: int, check: HeaderCheck | None = None, frame: int = 0) -> Photo:
    """Header, limits, the format's checksums, then a full decode in which any warning or
    libtiff error is damage: the photo comes out whole and as stored, or not at all."""
    try:
        with collecting() as messages:
            im = open_header(fp)
            _check_pixels(im, name, max_pixels, check)
            verify(im, fp, open_header)
            im = open_header(fp)
            if frame:
                im.seek(frame)
            im.load()
            im = ImageOps.exif_transpose(im)  # reads the EXIF: damage there is reported too
            if messages:
                raise Damage("; ".join(dict.fromkeys(messages)))
            return _from_pil(im, name)
    except Image.DecompressionBombError as e:  # from a format that checks Pillow's limit while decoding
        raise ImageError(f"{name}: {e} (Pillow's own limit for this format, PIL.Image.MAX_IMAGE_PIXELS)") from None
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image file Pillow can read (unknown or corrupt format)") from None
    except Damage as e:
        raise ImageError(f"{name}: damaged image data ({_first(str(e))})") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError, struct.error,
            ZeroDivisionError, OverflowError) as e:
        # Pillow's plugins raise these for malformed data (a bad tag type, an index past a table).
        raise ImageError(f"{name}: cannot decode: {_reason(e)}") from None


def _first(text: str) -> str:
    return text.strip().splitlines()[0][:300] if text.strip() else "reported by the decoder"


def _reason(e: BaseException) -> str:
    msg = _first(str(e)) if str(e).strip() else type(e).__name__
    if "truncated" in msg.lower() or isinstance(e, EOFError):
        return f"truncated or damaged image data ({msg})"
    return f"damaged image data ({type(e).__name__}: {msg})" if not isinstance(e, OSError) else msg


def _check_pixels(im: Image.Image, name: str, max_pixels: int, check: HeaderCheck | None = None) -> None:
    w, h = im.size
    if w < 1 or h < 1:
        raise ImageError(f"{name}: image has no pixels ({w}x{h})")
    if w * h > max_pixels:
        raise ImageError(
            f"{name}: {w}x{h} = {w * h / 1e6:.0f} MP exceeds the limit of {max_pixels / 1e6:.0f} MP "
            "(a guard against decompression bombs; raise it with --max-megapixels)"
        )
    if check is not None:
        try:
            check(w, h, im.mode)
        except ImageError as e:  # the check knows the size, not the name
            raise type(e)(f"{name}: {e}") from None


def _from_pil(im: Image.Image, name: str) -> Photo:
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
        bad = arr.size - int(np.isfinite(arr).sum()) if mode == "F" else 0
        if bad:
            raise ImageError(f"{name}: {bad} pixel{'s' if bad > 1 else ''} of this float image "
                             f"{'are' if bad > 1 else 'is'} NaN or infinite (damaged data?)")
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
    # The temporary name stays short whatever the output's (a name is at most 255 bytes).
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temporary_prefix(path.name), suffix=".tmp")
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


def temporary_prefix(name: str) -> str:
    """How the temporary files of :func:`atomic_write` for an output called ``name`` begin
    (then 8 random characters and ``.tmp``): what a killed writer may leave behind."""
    return f".{_short(name)}."


def _short(name: str, limit: int = 64) -> str:
    """At most ``limit`` bytes of ``name`` in UTF-8, cut at a character boundary."""
    return name.encode("utf-8", "surrogateescape")[:limit].decode("utf-8", "ignore")


# ----------------------------------------------------------------- folders and crops
def find_images(root: str | os.PathLike, recursive: bool = True, skipped: list[str] | None = None) -> list[Path]:
    """The image files (:data:`INPUT_EXTS`, any case) in folder ``root``, sorted by relative path.

    Args:
        root: the folder.
        recursive: also every sub-folder's.

    Hidden files and folders (a name starting with ".") are skipped: they are a tool's, not
    the user's photos (macOS writes a ``._name.jpg`` beside each photo on some disks). The
    order is that of the POSIX relative paths as strings, the same on every system.

    Args:
        skipped: if given, gets ``"PATH: reason"`` for each image name that is not a file
            that can be read (a dangling symbolic link, a FIFO, a socket).

    Raises:
        FileNotFoundError: ``root`` is not a folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    found, odd = [], []
    for path in root.rglob("*") if recursive else root.iterdir():
        rel = path.relative_to(root)
        if path.suffix.lower() in INPUT_EXTS and not any(part.startswith(".") for part in rel.parts):
            if path.is_file():
                found.append((rel.as_posix(), path))
            elif not path.is_dir():
                try:
                    kind = _file_kind(path.stat().st_mode)
                except OSError:
                    kind = "a dangling symbolic link" if path.is_symlink() else "unreadable"
                odd.append((rel.as_posix(), f"{path}: {kind}, not an image file"))
    if skipped is not None:
        skipped += [reason for _, reason in sorted(odd)]
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
