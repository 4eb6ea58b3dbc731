"""Image input/output: every format and mode people have, and clear errors."""

from __future__ import annotations

import io as _io

import struct
import subprocess
import sys
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image

from tinct.io import ImageError, find_images, load_image, open_header, save_image, square, to_pil
from conftest import make_photo


@pytest.mark.parametrize("ext", ["jpg", "png", "tif", "webp", "bmp"])
def test_formats(tmp_path, ext):
    path = tmp_path / f"p.{ext}"
    make_photo(40, 30).save(path)
    photo = load_image(path)
    assert photo.rgb.shape == (30, 40, 3) and photo.rgb.dtype == np.float32
    assert 0 <= photo.rgb.min() and photo.rgb.max() <= 1


@pytest.mark.parametrize("mode,gray,has_alpha", [
    ("L", True, False), ("LA", True, True), ("P", False, False), ("RGB", False, False),
    ("RGBA", False, True), ("CMYK", False, False), ("1", True, False),
])
def test_modes(tmp_path, mode, gray, has_alpha):
    im = make_photo(32, 24).convert(mode)
    ext = "tif" if mode == "CMYK" else "png"
    path = tmp_path / f"m.{ext}"
    im.save(path)
    photo = load_image(path)
    assert photo.rgb.shape == (24, 32, 3)
    assert photo.is_gray == gray
    assert (photo.alpha is not None) == has_alpha
    if gray:
        assert np.array_equal(photo.rgb[..., 0], photo.rgb[..., 1])


def test_palette_with_transparency_keeps_alpha(tmp_path):
    im = make_photo(16, 16).convert("P")
    im.info["transparency"] = 0
    path = tmp_path / "t.png"
    im.save(path, transparency=0)
    assert load_image(path).alpha is not None


def test_16bit_grayscale_keeps_precision(tmp_path):
    ramp = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (8, 1))
    path = tmp_path / "g16.png"
    Image.fromarray(ramp).save(path)
    assert Image.open(path).mode.startswith("I")
    photo = load_image(path)
    assert photo.is_gray
    np.testing.assert_allclose(photo.rgb[0, :, 0], ramp[0] / 65535.0, atol=1e-6)


def test_exif_orientation_applied(tmp_path):
    im = make_photo(40, 20)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    path = tmp_path / "rot.jpg"
    im.save(path, exif=exif)
    assert load_image(path).size == (20, 40)


def test_one_pixel(tmp_path):
    path = tmp_path / "one.png"
    Image.new("L", (1, 1), 128).save(path)
    assert load_image(path).rgb.shape == (1, 1, 3)


def _png_header_only(path, w, h):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))


def test_decompression_bomb_refused_before_decoding(tmp_path):
    path = tmp_path / "bomb.png"
    _png_header_only(path, 100_000, 100_000)  # 10 gigapixels claimed in 45 bytes
    with pytest.raises(ImageError, match=r"bomb\.png.*10000 MP exceeds the limit"):
        load_image(path)


def test_importing_tinct_leaves_pillows_pixel_limit_alone():
    # A fresh interpreter: this test process may have imported tinct long ago.
    code = ("from PIL import Image; before = Image.MAX_IMAGE_PIXELS; "
            "import tinct, tinct.io, tinct.cli, tinct.batch, tinct.evaluate; "
            "print(before, Image.MAX_IMAGE_PIXELS)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == str(1024 * 1024 * 1024 // 4 // 3)  # Pillow's documented default, ~89.5 MP
    assert out[1] == out[0]


def test_header_is_read_past_pillows_default_limit(tmp_path):
    # 14000 x 12800 = 179.2 MP: within tinct's 180 MP, beyond the 2 x 89.5 MP at which
    # Image.open raises under Pillow's default. Only the header exists, so nothing is decoded.
    path = tmp_path / "big.png"
    _png_header_only(path, 14_000, 12_800)
    assert Image.MAX_IMAGE_PIXELS == 1024 * 1024 * 1024 // 4 // 3
    with pytest.raises(Image.DecompressionBombError):
        Image.open(path)
    with open(path, "rb") as f, open_header(f) as im:
        assert im.size == (14_000, 12_800) and im.format == "PNG"
    with pytest.raises(ImageError, match=r"big\.png.*exceeds the limit of 150 MP"):
        load_image(path, max_pixels=150_000_000)


@pytest.mark.parametrize("pillow_limit", [1000, 2000])  # 3072 pixels: Pillow's error, Pillow's warning
def test_decoding_follows_tincts_limit_not_pillows(tmp_path, monkeypatch, pillow_limit):
    # The importing program's own (here tiny) Pillow limit must neither refuse nor warn about
    # an image tinct's per-call limit allows; and tinct's limit still refuses what it must.
    path = tmp_path / "p.png"
    make_photo(64, 48).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", pillow_limit)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        photo = load_image(path)
        assert load_image(path.read_bytes()).size == (64, 48)
    assert photo.size == (64, 48)
    np.testing.assert_array_equal(photo.pixels, np.asarray(make_photo(64, 48)))
    with pytest.raises(ImageError, match="64x48 = 0 MP exceeds the limit"):  # 3072 px > 3071 px
        load_image(path, max_pixels=64 * 48 - 1)
    assert Image.MAX_IMAGE_PIXELS == pillow_limit  # tinct did not touch it


def test_pixel_limit_is_configurable(tmp_path):
    path = tmp_path / "p.png"
    make_photo(20, 20).save(path)
    with pytest.raises(ImageError, match="exceeds the limit"):
        load_image(path, max_pixels=100)


@pytest.mark.parametrize("content,reason", [
    (b"", "empty file"),
    (b"hello, I am text", "not an image"),
])
def test_broken_files(tmp_path, content, reason):
    path = tmp_path / "bad.png"
    path.write_bytes(content)
    with pytest.raises(ImageError, match=rf"bad\.png: .*{reason}"):
        load_image(path)


def test_truncated_jpeg(tmp_path):
    good = tmp_path / "good.jpg"
    make_photo(64, 64).save(good, quality=90)
    bad = tmp_path / "cut.jpg"
    bad.write_bytes(good.read_bytes()[:400])
    with pytest.raises(ImageError, match=r"cut\.jpg: cannot decode: truncated"):
        load_image(bad)


def test_jpeg_damage_libjpeg_warns_about_fails(tmp_path):
    """Pillow decodes a JPEG whose entropy-coded data libjpeg reports as corrupt ("Corrupt
    JPEG data: ... extraneous bytes", "premature end of data segment") without a word;
    tinct refuses it (a strict libjpeg-turbo pass), as a path, bytes and an open PIL image,
    while the intact file and the flips libjpeg cannot notice still load."""
    import simplejpeg
    from PIL import Image

    good = tmp_path / "good.jpg"
    make_photo(128, 96, seed=2).save(good, quality=85)
    data = good.read_bytes()
    load_image(good)
    warned = []
    for pos in range(len(data) // 4, len(data) - 2, 7):
        b = bytearray(data)
        b[pos] ^= 0x10
        try:
            simplejpeg.decode_jpeg(bytes(b), colorspace="GRAY", min_factor=8, strict=True)
        except ValueError:
            try:
                Image.open(_io.BytesIO(bytes(b))).load()  # Pillow alone: decodes it silently
            except Exception:
                continue
            warned.append(bytes(b))
        if len(warned) == 3:
            break
    assert len(warned) == 3
    for i, b in enumerate(warned):
        bad = tmp_path / f"bad{i}.jpg"
        bad.write_bytes(b)
        for src in (bad, b, Image.open(bad)):
            with pytest.raises(ImageError, match=r"damaged image data \(Corrupt JPEG data"):
                load_image(src)


def test_missing_and_folder(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(ImageError, match="is a folder"):
        load_image(tmp_path)


def test_bytes_and_pil_inputs():
    im = make_photo(10, 8)
    assert load_image(im).size == (10, 8)
    import io
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    assert load_image(buf.getvalue()).size == (10, 8)
    with pytest.raises(ImageError, match="empty"):
        load_image(b"")


@pytest.mark.parametrize("ext,fmt", [("png", "PNG"), ("jpg", "JPEG"), ("jpeg", "JPEG")])
def test_save_by_extension(tmp_path, ext, fmt):
    rgb = np.random.default_rng(0).random((12, 10, 3)).astype(np.float32)
    alpha = np.full((12, 10), 200, np.uint8)
    path = tmp_path / f"o.{ext}"
    save_image(to_pil(rgb, alpha), path)
    with Image.open(path) as im:
        assert im.format == fmt and im.size == (10, 12)
        assert im.mode == ("RGBA" if fmt == "PNG" else "RGB")
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary file left behind


def test_save_unsupported_extension(tmp_path):
    with pytest.raises(ImageError, match="unsupported output extension"):
        save_image(make_photo(4, 4), tmp_path / "o.gif")


def test_find_images_is_recursive_sorted_and_skips_hidden(tmp_path):
    for name in ("a-b/x.PNG", "a/y.jpg", "b.gif", ".cache/z.jpg", "._w.jpg", "notes.txt"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    # sorted by the relative path as a string ("-" before "/"), extensions in any case, hidden names skipped
    assert [p.relative_to(tmp_path).as_posix() for p in find_images(tmp_path)] == ["a-b/x.PNG", "a/y.jpg", "b.gif"]
    assert [p.name for p in find_images(tmp_path, recursive=False)] == ["b.gif"]
    with pytest.raises(FileNotFoundError, match="no such folder"):
        find_images(tmp_path / "nope")


def test_square_scales_the_short_side_and_keeps_the_centre():
    img = np.zeros((40, 80, 3), np.uint8)
    img[:, 20:60] = 255  # a white centre square between black sides
    out = square(img, 20)
    assert out.shape == (20, 20, 3) and out.dtype == np.uint8
    assert out[:, 1:-1].min() == 255 and out.min() > 200  # the centre (the filter reaches one pixel past it)
    assert square(img[..., 0], 16).shape == (16, 16)

