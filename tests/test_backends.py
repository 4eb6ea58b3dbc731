"""ONNX export and backend, strip-wise composition, folder sharding."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from tinct import Colorizer, colorizer as colorizer_module, compose
from tinct.backends import BackendError
from tinct.batch import parse_shard, shard
from tinct.checkpoint import CheckpointError
from tinct.io import load_image

from conftest import composed_at_once, make_photo

def test_render_in_strips_equals_composing_at_once(tiny_colorizer, monkeypatch):
    rng = np.random.default_rng(0)
    L = torch.from_numpy(rng.uniform(0, 100, (37, 53)).astype(np.float32))
    ab_small = torch.from_numpy(rng.uniform(-60, 60, (2, 5, 7)).astype(np.float32))
    expected = composed_at_once(L, ab_small)
    monkeypatch.setattr(compose, "TILE_PIXELS", 3 * 53 + 5)  # 3 rows a tile: 13 tiles
    monkeypatch.setattr(compose, "PIECE_PIXELS", 53)  # a row a piece
    got = np.asarray(tiny_colorizer.render(L, ab_small))
    assert got.shape == (37, 53, 3)
    assert np.abs(got.astype(int) - expected).max() <= 1  # float rounding at the .5 boundary only
    assert (got != expected).mean() < 0.01


def test_luminance_in_strips_equals_whole_image(monkeypatch):
    pixels = np.asarray(make_photo(40, 30))
    whole = Colorizer.luminance(pixels.astype(np.float32) / 255)
    monkeypatch.setattr(colorizer_module, "STRIP_PIXELS", 7 * 40)
    torch.testing.assert_close(Colorizer.luminance(pixels), whole)


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_grey_photo_is_stored_as_one_uint8_channel(tmp_path, mode):
    path = tmp_path / "g.png"
    grey = np.asarray(make_photo(40, 30).convert("L"))
    Image.fromarray(grey, "L").convert(mode).save(path)
    photo = load_image(path)
    assert photo.is_gray and photo.pixels.shape == (30, 40) and photo.pixels.dtype == np.uint8
    assert photo.rgb.shape == (30, 40, 3) and photo.rgb.dtype == np.float32


def test_grey_lightness_table_equals_the_conversion():
    grey = np.arange(256, dtype=np.uint8).reshape(16, 16)
    rgb = np.repeat(grey[..., None], 3, -1)
    torch.testing.assert_close(Colorizer.luminance(grey), Colorizer.luminance(rgb), atol=1e-4, rtol=0)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The bundled default model, exported with the CLI."""
    path = tmp_path_factory.mktemp("onnx") / "default.onnx"
    run = subprocess.run([sys.executable, "-m", "tinct", "export", "--model", "default", "-o", str(path)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    return path


def test_onnx_and_torch_predict_the_same_ab(exported):
    torch_col = Colorizer.load("default", backend="torch")
    onnx_col = Colorizer.load(exported)
    assert (torch_col.backend, onnx_col.backend) == ("torch", "onnx")
    assert (onnx_col.size, onnx_col.temperature, onnx_col.flip, onnx_col.spec) == \
        (torch_col.size, torch_col.temperature, torch_col.flip, torch_col.spec)  # the spec travels in the file
    worst = 0.0
    for seed, (w, h) in enumerate([(256, 256), (300, 200), (97, 411)]):  # dynamic height and width
        L = Colorizer.luminance(np.asarray(make_photo(w, h, seed)))
        a, b = (c.predict_ab_batched([L], None, None, 1)[0] for c in (torch_col, onnx_col))
        assert a.shape == b.shape
        worst = max(worst, (a - b).abs().max().item())
    assert worst <= 0.5, f"max |delta ab| = {worst:.4f}"


def test_auto_backend_exports_once_into_the_cache(tiny_checkpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("TINCT_CACHE_DIR", str(tmp_path))
    col = Colorizer.load(tiny_checkpoint)  # auto
    assert col.backend == "onnx"
    cached = list((tmp_path / "onnx").glob("*.onnx"))
    assert len(cached) == 1
    stamp = cached[0].stat().st_mtime_ns
    Colorizer.load(tiny_checkpoint)
    assert cached[0].stat().st_mtime_ns == stamp  # reused, not exported again
    torch_col = Colorizer.load(tiny_checkpoint, backend="torch")
    photo = make_photo(64, 64)
    a = np.asarray(col.colorize(photo), dtype=int)
    b = np.asarray(torch_col.colorize(photo), dtype=int)
    assert np.abs(a - b).max() <= 2


def test_onnx_file_errors_are_clear(tmp_path, exported):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(CheckpointError, match="bad.onnx"):
        Colorizer.load(bad)
    with pytest.raises(BackendError, match="onnx backend"):
        Colorizer.load(exported, backend="torch")
    with pytest.raises(ValueError, match="backend must be one of"):
        Colorizer.load("default", backend="tensorrt")


def test_cli_colorize_with_an_onnx_file_and_bad_export_target(tmp_path, exported):
    src = tmp_path / "p.png"
    make_photo(80, 60).convert("L").save(src)
    run = subprocess.run([sys.executable, "-m", "tinct", "colorize", str(src), "-o", str(tmp_path / "out.png"),
                          "--model", str(exported), "-q"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert Image.open(tmp_path / "out.png").size == (80, 60)
    run = subprocess.run([sys.executable, "-m", "tinct", "export", "-o", str(tmp_path / "m.pt")], capture_output=True, text=True)
    assert run.returncode == 2 and "tinct: error:" in run.stderr and "Traceback" not in run.stderr


def test_shards_are_disjoint_cover_everything_and_balance():
    items = [f"photo{i:03d}.jpg" for i in range(103)]
    parts = [shard(items, f"{i}/4") for i in range(1, 5)]
    assert sorted(sum(parts, [])) == items
    assert max(map(len, parts)) - min(map(len, parts)) <= 1
    assert shard(items, "2/4") == parts[1]  # deterministic
    for bad in ("0/4", "5/4", "a/b", "3"):
        with pytest.raises(ValueError, match="shard"):
            parse_shard(bad)


def test_cli_shards_split_a_folder(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(5):
        make_photo(48, 40, i).convert("L").save(folder / f"p{i}.png")
    outs = []
    for i in (1, 2):
        out = tmp_path / f"out{i}"
        run = subprocess.run([sys.executable, "-m", "tinct", "colorize", str(folder), "-o", str(out), "--shard", f"{i}/2",
                              "-q"], capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
        outs.append({p.name for p in out.iterdir()})
    assert outs[0].isdisjoint(outs[1]) and outs[0] | outs[1] == {f"p{i}.png" for i in range(5)}
    assert outs == [{"p0.png", "p2.png", "p4.png"}, {"p1.png", "p3.png"}]
