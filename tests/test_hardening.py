"""Issue 26: memory bounded from the header, every failure one line with its exit code, damage
reported (images, checkpoints, videos), Pillow's globals untouched, and the smaller cases."""

from __future__ import annotations

import io
import os
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from tinct import Colorizer, checkpoint
from tinct import colorizer as colorizer_module, compose
from tinct.budget import MemoryBudgetError
from tinct.checkpoint import CheckpointError
from tinct.cli import main
from tinct.errors import describe, one_line
from tinct.io import ImageError, atomic_write, load_image, read_header
from conftest import composed_at_once, make_photo


def _png_header_only(path, w, h):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
                     + chunk(b"IEND", b""))


# ----------------------------------------------------------------- 1. memory
def test_budget_refuses_from_the_header_before_decoding(tmp_path):
    col = Colorizer.load("default", backend="torch")
    col.check_budget((768, 1024), 512)  # fits
    with pytest.raises(MemoryBudgetError, match=r"1024x768 at working size 2048 needs about .* GB, over the memory budget"):
        col.check_budget((768, 1024), 2048)
    path = tmp_path / "huge.png"
    _png_header_only(path, 20_000, 15_000)  # 300 MP claimed, only a header: refused without decoding
    assert read_header(path, max_pixels=10**9) == (20_000, 15_000, "L")
    with pytest.raises(MemoryBudgetError):
        col.colorize(path, max_pixels=10**9)


def test_cli_size_over_budget_is_one_line_exit_1(tmp_path, capsys):
    src = tmp_path / "p.png"
    make_photo(1024, 768).convert("L").save(src)
    assert main(["colorize", str(src), "-o", str(tmp_path / "out"), "--size", "2048", "--backend", "torch"]) == 1
    err = capsys.readouterr().err
    assert f"failed {src}: 1024x768 at working size 2048 needs about" in err and "memory budget" in err
    assert "Traceback" not in err and not (tmp_path / "out" / "p.png").exists()


def test_tiles_bound_thin_strips():
    tiles = list(colorizer_module._tiles(1, 40_000_000))
    assert max((y1 - y0) * (x1 - x0) for y0, y1, x0, x1 in tiles) <= colorizer_module.STRIP_PIXELS
    assert sum((y1 - y0) * (x1 - x0) for y0, y1, x0, x1 in tiles) == 40_000_000


def test_render_of_a_thin_strip_in_tiles_equals_composing_at_once(tiny_colorizer, monkeypatch):
    rng = np.random.default_rng(1)
    L = torch.from_numpy(rng.uniform(0, 100, (2, 997)).astype(np.float32))
    ab_small = torch.from_numpy(rng.uniform(-60, 60, (2, 1, 31)).astype(np.float32))
    expected = composed_at_once(L, ab_small)
    monkeypatch.setattr(compose, "TILE_PIXELS", 100)  # pieces of rows
    got = np.asarray(tiny_colorizer.render(L, ab_small))
    assert np.abs(got.astype(int) - expected).max() <= 1 and (got != expected).mean() < 0.01


# ----------------------------------------------------------------- 2. out of memory
def test_out_of_memory_fails_one_photo_and_the_batch_goes_on(tmp_path, tiny_checkpoint, monkeypatch, capsys):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(6):
        make_photo(40, 30, seed=i).save(src / f"p{i}.png")
    real = Colorizer.colorize_many

    def flaky(self, images, *a, **k):
        if any(getattr(p, "name", "").endswith("p3.png") for p in images):
            raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory")
        return real(self, images, *a, **k)

    monkeypatch.setattr(Colorizer, "colorize_many", flaky)
    out = tmp_path / "out"
    assert main(["colorize", str(src), "-o", str(out), "--model", str(tiny_checkpoint), "--batch-size", "4"]) == 1
    err = capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["p0.png", "p1.png", "p2.png", "p4.png", "p5.png"]
    assert "p3.png: out of memory" in err and "Traceback" not in err and "5 colorized, 1 failed" in err


def test_describe_maps_every_kind_of_failure():
    assert describe(MemoryError(), "a.jpg")[1] == 1
    assert "out of memory" in describe(RuntimeError("CUDA out of memory. Tried"), "a.jpg")[0]
    assert describe(OSError(28, "No space left on device", "out/a.png")) == ("out/a.png: No space left on device", 1)
    assert describe(CheckpointError("m.pt: damaged"))[1] == 2
    assert describe(KeyError("bug")) is None  # a bug keeps its traceback
    assert one_line("a\nb\tc") == "a\\nb\\tc"


# ----------------------------------------------------------------- 3. damaged input
def _flipped_png(tmp_path):
    good = tmp_path / "good.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 64), dtype=np.uint8)).save(good)
    data = bytearray(good.read_bytes())
    data[len(data) // 2] ^= 0x10  # one flipped bit inside the compressed pixels
    bad = tmp_path / "bad.png"
    bad.write_bytes(bytes(data))
    return bad


def test_flipped_byte_fails_for_a_path_bytes_and_an_open_image(tmp_path, tiny_colorizer):
    bad = _flipped_png(tmp_path)
    with pytest.raises(ImageError, match=r"bad\.png: .*damaged|bad\.png: cannot decode"):
        load_image(bad)
    with pytest.raises(ImageError):
        load_image(bad.read_bytes())
    with pytest.raises(ImageError, match="bad.png"):
        tiny_colorizer.colorize(Image.open(bad))  # the README's example


def test_nan_pixel_in_a_float_tiff_is_refused(tmp_path, tiny_checkpoint, capsys):
    arr = np.full((16, 16), 0.5, np.float32)
    arr[3, 4] = np.nan
    path = tmp_path / "f.tif"
    Image.fromarray(arr, "F").save(path)
    with pytest.raises(ImageError, match="NaN or infinite"):
        load_image(path)
    assert main(["colorize", str(path), "-o", str(tmp_path / "o"), "--model", str(tiny_checkpoint)]) == 1
    assert "NaN or infinite" in capsys.readouterr().err


def test_libtiff_messages_do_not_leak_and_fail_the_decode(tmp_path, capfd):
    good = io.BytesIO()
    make_photo(64, 48).save(good, "TIFF", compression="tiff_deflate")
    data = bytearray(good.getvalue())
    data[40] ^= 0xFF  # inside the deflate stream
    with pytest.raises(ImageError):
        load_image(bytes(data))
    assert capfd.readouterr().err == ""


# ----------------------------------------------------------------- 4. checkpoints
def test_flipped_weight_bytes_are_refused(tmp_path, tiny_checkpoint):
    blob = torch.load(tiny_checkpoint, weights_only=True)
    assert "sha256" in blob
    name = max(blob["state_dict"], key=lambda k: blob["state_dict"][k].numel())
    raw = blob["state_dict"][name].view(-1).view(torch.uint8)
    idx = torch.randperm(raw.numel(), generator=torch.Generator().manual_seed(0))[:2000]
    raw[idx] ^= 0x40
    bad = tmp_path / "bad.pt"
    torch.save(blob, bad)
    with pytest.raises(CheckpointError, match="do not match the checkpoint's SHA-256"):
        checkpoint.read(bad)
    st = tmp_path / "m.safetensors"
    checkpoint.save(st, Colorizer.load(tiny_checkpoint, backend="torch").model, {"size": 64})
    data = bytearray(st.read_bytes())
    for i in range(len(data) - 4000, len(data) - 2000):
        data[i] ^= 0x01
    st.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="SHA-256"):
        checkpoint.read(st)


def test_bundled_weights_carry_a_checksum():
    """In the file, or (the bundled default, saved before checksums) in the .sha256 beside
    it, which matches its weights."""
    from safetensors import safe_open

    path = colorizer_module.bundled_path("default")
    with safe_open(str(path), "pt") as f:
        digest = f.metadata().get("sha256") or open(f"{path}.sha256").read().split()[0]
    assert len(digest) == 64 and checkpoint.state_digest(checkpoint.read(path)["state_dict"]) == digest


def test_legacy_checkpoint_without_checksum_needs_finite_weights(tmp_path, tiny_checkpoint):
    blob = torch.load(tiny_checkpoint, weights_only=True)
    del blob["sha256"]
    legacy = tmp_path / "legacy.pt"
    torch.save(blob, legacy)
    checkpoint.read(legacy)  # still loads
    next(v for v in blob["state_dict"].values() if v.is_floating_point()).view(-1)[0] = float("nan")
    torch.save(blob, legacy)
    with pytest.raises(CheckpointError, match="NaN or infinite"):
        checkpoint.read(legacy)


def test_weights_only_checkpoint_cannot_be_resumed(tmp_path, tiny_checkpoint):
    blob = checkpoint.read(tiny_checkpoint)  # saved without training state, like best.pt
    with pytest.raises(CheckpointError, match="no 'task' entry.*cannot be resumed"):
        blob["task"].get("prior")


def test_bad_kwargs_and_bad_safetensors_headers_exit_2(tmp_path, tiny_checkpoint, capsys):
    from safetensors.torch import save_file

    blob = torch.load(tiny_checkpoint, weights_only=True)
    blob["arch_kwargs"] = {"no_such_option": 3}
    torch.save(blob, tmp_path / "kw.pt")
    state = {k: v.contiguous() for k, v in blob["state_dict"].items()}
    save_file(state, tmp_path / "noarch.safetensors", metadata={"format": "tinct"})
    save_file(state, tmp_path / "json.safetensors", metadata={"format": "tinct", "arch": "effunet_bins313", "meta": "{oops"})
    img = tmp_path / "p.png"
    make_photo(8, 8).save(img)
    for name, reason in [("kw.pt", "arch_kwargs do not fit"), ("noarch.safetensors", "not a tinct checkpoint"),
                         ("json.safetensors", "not JSON")]:
        assert main(["colorize", str(img), "-o", str(tmp_path / "o"), "--model", str(tmp_path / name)]) == 2
        err = capsys.readouterr().err
        assert reason in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


# ----------------------------------------------------------------- 5. Pillow's bomb guard in training
def test_training_decode_refuses_a_bomb_from_its_header(tmp_path):
    from tinct import data

    path = tmp_path / "bomb.png"
    _png_header_only(path, 20_000, 20_000)  # 400 MP in 45 bytes
    with pytest.raises(ValueError, match="exceeds the limit"):
        data.decode(path, 64)
    assert Image.MAX_IMAGE_PIXELS == 1024 * 1024 * 1024 // 4 // 3


# ----------------------------------------------------------------- 7. smaller ones
def test_long_name_writes(tmp_path, tiny_checkpoint):
    src = tmp_path / ("x" * 240 + ".png")  # 244 characters
    make_photo(16, 16).save(src)
    out = tmp_path / "out"
    assert main(["colorize", str(src), "-o", str(out), "--model", str(tiny_checkpoint)]) == 0
    assert (out / src.name).is_file()
    atomic_write(tmp_path / ("y" * 250 + ".bin"), lambda t: open(t, "wb").write(b"1"))


def test_newline_in_a_name_stays_on_one_line(tmp_path, tiny_checkpoint, capsys):
    src = tmp_path / "a\nb.png"
    src.write_bytes(b"not an image")
    assert main(["colorize", str(src), "-o", str(tmp_path / "o"), "--model", str(tiny_checkpoint)]) == 1
    failed = [line for line in capsys.readouterr().err.splitlines() if line.startswith("failed ")]
    assert len(failed) == 1 and "a\\nb.png" in failed[0]


def test_dangling_links_and_fifos_are_reported(tmp_path, tiny_checkpoint, capsys):
    src = tmp_path / "in"
    src.mkdir()
    make_photo(16, 16).save(src / "ok.png")
    os.symlink(tmp_path / "gone.png", src / "link.png")
    os.mkfifo(src / "pipe.jpg")
    assert main(["colorize", str(src), "-o", str(tmp_path / "o"), "--model", str(tiny_checkpoint)]) == 0
    err = capsys.readouterr().err
    assert "link.png: a dangling symbolic link" in err and "pipe.jpg: a FIFO" in err
    assert main(["colorize", str(src / "pipe.jpg"), "-o", str(tmp_path / "o2"), "--model", str(tiny_checkpoint)]) == 1
    assert "not a regular file (a FIFO)" in capsys.readouterr().err


def test_output_with_an_image_suffix_is_a_file(tmp_path, tiny_checkpoint, capsys):
    src = tmp_path / "cam.jpg"
    make_photo(16, 16).save(src)
    assert main(["colorize", str(src), "-o", str(tmp_path / "out" / "cam.webp"), "--model", str(tiny_checkpoint)]) == 2
    assert "writes .png or .jpg" in capsys.readouterr().err and not (tmp_path / "out" / "cam.webp").exists()


def test_quiet_hides_skipped_lines(tmp_path, tiny_checkpoint, capsys):
    src = tmp_path / "p.png"
    make_photo(16, 16).save(src)
    args = ["colorize", str(src), "-o", str(tmp_path / "o"), "--model", str(tiny_checkpoint)]
    assert main(args) == 0 and main(args + ["-q"]) == 0
    err = capsys.readouterr().err
    assert err.count("skipped ") == 0 and "1 skipped" in err


def test_models_speaks_to_users(capsys):
    assert main(["models"]) == 0
    assert "stand-in" not in capsys.readouterr().out


def test_bundled_weights_are_checked_against_their_sidecar_digest(tmp_path):
    """The bundled default carries no digest inside (committed before checksums); the
    ``.sha256`` beside it is checked instead: a copy with one weight changed to another
    finite value is refused, the intact copy loads."""
    import shutil

    from pathlib import Path

    from tinct import checkpoint
    from tinct.colorizer import bundled_path

    src = bundled_path("default")
    assert checkpoint.read(src)["sha256"] is None and Path(f"{src}.sha256").is_file()
    good, bad = tmp_path / "good.safetensors", tmp_path / "bad.safetensors"
    for p in (good, bad):
        shutil.copy(src, p)
        shutil.copy(f"{src}.sha256", f"{p}.sha256")
    data = bytearray(bad.read_bytes())
    data[-1000] ^= 0x01  # the low bit of a weight's last byte: still finite
    bad.write_bytes(bytes(data))
    checkpoint.read(good)
    with pytest.raises(checkpoint.CheckpointError, match="SHA-256"):
        checkpoint.read(bad)
