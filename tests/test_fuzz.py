"""Damaged images through every entry point: no traceback, no silent success, documented exit codes.

Cases are generated: small photos in PNG, JPEG, WebP, TIFF (raw, deflate, LZW), BMP and GIF,
each damaged by truncation, flipped bits anywhere, header damage or an overwritten run of
bytes. Each goes through ``load_image`` with a path, with bytes, and ``Colorizer.colorize``
of an ``Image.open`` result (the README's example); a folder of them through ``tinct
colorize``.

What must hold (README "Inputs"): only ``ImageError`` is raised, nothing is printed, and a
damaged file fails or decodes to exactly the intact file's pixels, for every truncation in
every format and for any damage to a PNG (CRC-32 on every chunk). The other formats carry no
checksum of their pixels: a changed pixel byte that still decodes cannot be found there, and
the test only counts those cases.
"""

from __future__ import annotations

import io
import warnings
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from tinct.cli import main
from tinct.io import ImageError, load_image
from conftest import make_photo

FORMATS = {  # name -> (Pillow format, save options, has a checksum over its pixels)
    "png": ("PNG", {}, True), "jpg": ("JPEG", {"quality": 90}, False), "webp": ("WEBP", {"quality": 80}, False),
    "tif": ("TIFF", {}, False), "deflate.tif": ("TIFF", {"compression": "tiff_deflate"}, False),
    "lzw.tif": ("TIFF", {"compression": "tiff_lzw"}, False), "bmp": ("BMP", {}, False), "gif": ("GIF", {}, False),
}
KINDS = ("truncate", "flip", "header", "overwrite")


def intact(ext: str, mode: str) -> bytes:
    fmt, options, _ = FORMATS[ext]
    buf = io.BytesIO()
    make_photo(48, 32, seed=len(ext)).convert(mode).save(buf, fmt, **options)
    return buf.getvalue()


def damage(data: bytes, kind: str, rng: np.random.Generator) -> bytes:
    d = bytearray(data)
    if kind == "truncate":
        return bytes(d[: int(rng.integers(1, len(d)))])
    if kind == "flip":
        for _ in range(int(rng.integers(1, 4))):
            d[int(rng.integers(0, len(d)))] ^= 1 << int(rng.integers(0, 8))
    elif kind == "header":
        d[int(rng.integers(0, min(64, len(d))))] ^= int(rng.integers(1, 256))
    else:
        i = int(rng.integers(0, len(d)))
        d[i:i + 16] = rng.integers(0, 256, len(d[i:i + 16]), dtype=np.uint8).tobytes()
    return bytes(d)


def cases(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    exts = list(FORMATS)
    for i in range(n):
        ext, kind, mode = exts[i % len(exts)], KINDS[(i // len(exts)) % len(KINDS)], ("L", "RGB")[i % 2]
        good = intact(ext, mode)
        bad = damage(good, kind, rng)
        if bad != good:
            yield i, ext, kind, good, bad


def run_cases(n: int, tmp_path, colorizer, capfd, pil_every: int = 1) -> Counter:
    counts: Counter = Counter()
    for i, ext, kind, good, bad in cases(n):
        path = tmp_path / f"case{i}.{ext}"
        path.write_bytes(bad)
        reference = load_image(good).pixels
        results = []
        for src in (path, bad):
            try:
                results.append(load_image(src).pixels)
            except ImageError as e:
                assert str(e).strip() and "\n" not in str(e)
                results.append(None)
        assert (results[0] is None) == (results[1] is None), f"case {i}: path and bytes disagree"
        if i % pil_every == 0:
            try:
                with warnings.catch_warnings():  # Pillow's own warnings of the caller's Image.open
                    warnings.simplefilter("ignore")
                    im = Image.open(path)
                out = np.asarray(colorizer.colorize(im))
                assert results[0] is not None, f"case {i}: colorize of an open image accepted what load_image refused"
                if np.array_equal(results[0], reference):
                    np.testing.assert_array_equal(out, np.asarray(colorizer.colorize(good)))
            except ImageError:
                assert results[0] is None, f"case {i}: colorize of an open image refused what load_image accepted"
            except Exception as e:  # Image.open itself may refuse a damaged header, as Pillow does
                assert isinstance(e, (OSError, SyntaxError, Image.DecompressionBombError)) and results[0] is None, \
                    f"case {i}: {e!r}"
        pixels = results[0]
        same = pixels is not None and pixels.shape == reference.shape and np.array_equal(pixels, reference)
        outcome = "failed" if pixels is None else "same" if same else "changed"
        counts[outcome] += 1
        if outcome == "changed":
            checked = FORMATS[ext][2] or kind == "truncate"
            assert not checked, f"case {i} ({ext}, {kind}): damaged file decoded to different pixels without an error"
            counts[f"changed {ext}"] += 1
        path.unlink()
    assert capfd.readouterr().err == "", "a decoder printed to stderr"
    return counts


def test_fuzz_api(tmp_path, tiny_colorizer, capfd):
    counts = run_cases(320, tmp_path, tiny_colorizer, capfd, pil_every=4)
    assert counts["failed"] > 150


@pytest.mark.slow
def test_fuzz_api_full(tmp_path, tiny_colorizer, capfd):
    counts = run_cases(5200, tmp_path, tiny_colorizer, capfd, pil_every=10)
    print(dict(counts))


def test_fuzz_cli(tmp_path, tiny_checkpoint, capsys):
    src = tmp_path / "in"
    src.mkdir()
    n = 0
    for i, ext, kind, good, bad in cases(48, seed=1):
        (src / f"case{i}.{ext}").write_bytes(bad)
        n += 1
    (src / "good.png").write_bytes(intact("png", "L"))
    out = tmp_path / "out"
    code = main(["colorize", str(src), "-o", str(out), "--model", str(tiny_checkpoint), "-q"])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    failed = [line for line in err.splitlines() if line.startswith("failed ")]
    written = sorted(p.name for p in out.iterdir()) if out.exists() else []
    assert code == (1 if failed else 0)
    assert "good.png" in written and len(failed) + len(written) == n + 1
    assert all(len(line) < 600 for line in failed)
