"""The inference path: sizes, L preserved, alpha, options, batch, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import color as skcolor

from tinct import Colorizer, checkpoint
from tinct.checkpoint import CheckpointError
from conftest import make_photo


def _L(im: Image.Image) -> np.ndarray:
    return skcolor.rgb2lab(np.asarray(im.convert("RGB"), np.float64) / 255)[..., 0]


@pytest.mark.parametrize("w,h", [(1, 1), (3, 200), (97, 61), (64, 64), (300, 17)])
def test_output_keeps_pixel_size(tiny_colorizer, w, h):
    out = tiny_colorizer.colorize(make_photo(w, h).convert("L"))
    assert out.size == (w, h) and out.mode == "RGB"


def test_output_L_equals_input_L(tiny_colorizer):
    gray = make_photo(120, 80).convert("L")
    out = tiny_colorizer.colorize(gray, saturation=0.5)
    assert np.abs(_L(out) - _L(gray)).mean() < 1.0


def test_colour_input_is_treated_as_its_luminance(tiny_colorizer):
    rgb = make_photo(64, 64, seed=3)
    lab = skcolor.rgb2lab(np.asarray(rgb, np.float64) / 255)
    lab[..., 1:] = 0
    gray = Image.fromarray((np.clip(skcolor.lab2rgb(lab), 0, 1) * 255 + 0.5).astype(np.uint8))
    a = np.asarray(tiny_colorizer.colorize(rgb), np.int16)
    b = np.asarray(tiny_colorizer.colorize(gray), np.int16)
    assert np.abs(a - b).mean() < 2.0  # same up to 8-bit rounding of the grey


def test_saturation_zero_gives_grey(tiny_colorizer):
    out = tiny_colorizer.colorize(make_photo(32, 32), saturation=0.0)
    lab = skcolor.rgb2lab(np.asarray(out, np.float64) / 255)
    assert np.abs(lab[..., 1:]).max() < 1.5


def test_temperature_changes_colourfulness(tiny_colorizer):
    im = make_photo(64, 64).convert("L")
    chroma = []
    for t in (0.1, 1.0):
        lab = skcolor.rgb2lab(np.asarray(tiny_colorizer.colorize(im, temperature=t), np.float64) / 255)
        chroma.append(np.hypot(lab[..., 1], lab[..., 2]).mean())
    assert chroma[0] != pytest.approx(chroma[1], abs=1e-3)


def test_chroma_gain_from_checkpoint_scales_ab(tmp_path, tiny_colorizer):
    """meta chroma_gain (set by tinct calibrate) multiplies the predicted ab, on every backend."""
    path = tmp_path / "gain.safetensors"
    checkpoint.save(path, tiny_colorizer.model, tiny_colorizer.meta | {"chroma_gain": 1.5})
    L = torch.linspace(0, 100, 64 * 64).reshape(1, 1, 64, 64)
    plain = tiny_colorizer.predict_ab(L)
    assert plain.abs().max() > 0.5  # the tiny model predicts some colour, so a gain shows
    for backend in ("torch", "onnx"):
        gained = Colorizer.load(path, backend=backend)
        assert gained.chroma_gain == 1.5
        torch.testing.assert_close(gained.predict_ab(L), 1.5 * plain, rtol=1e-4, atol=1e-3)


def test_scales_average_raw_outputs_before_decoding(tmp_path, tiny_colorizer):
    """meta scales: one pass per working size, logits averaged on the largest grid, then decoded once."""
    import torch.nn.functional as F

    path = tmp_path / "scales.safetensors"
    checkpoint.save(path, tiny_colorizer.model, tiny_colorizer.meta | {"scales": [0.5, 1.5, 1.0]})
    multi = Colorizer.load(path, backend="torch")
    assert multi.working_sizes(None) == [96, 64, 32] and multi.working_sizes(128) == [192, 128, 64]
    L = Colorizer.luminance(np.asarray(make_photo(90, 60).convert("L")))
    raws = [multi.predict_raw(Colorizer.resize(L[None, None], multi.working_shape(60, 90, s))) for s in (96, 64, 32)]
    grid = raws[0].shape[-2:]
    mean = sum(F.interpolate(r, size=grid, mode="bilinear", align_corners=False) for r in raws) / 3
    ab = multi.predict_ab_batched([L], None, None, 1)[0]
    assert ab.shape[-2:] == grid
    torch.testing.assert_close(ab, multi.decode(mean)[0])
    single = tiny_colorizer.predict_ab_batched([L], None, None, 1)[0]
    assert single.shape[-2:] == raws[1].shape[-2:] and (ab.shape[-1] > single.shape[-1])
    assert multi.colorize(make_photo(90, 60).convert("L")).size == (90, 60)


def test_bad_scales_are_refused(tmp_path, tiny_colorizer):
    path = tmp_path / "bad.safetensors"
    checkpoint.save(path, tiny_colorizer.model, tiny_colorizer.meta | {"scales": [1.0, 0.0]})
    with pytest.raises(ValueError, match="scales must be positive"):
        Colorizer.load(path, backend="torch")


def test_alpha_carried_over(tiny_colorizer):
    im = make_photo(40, 30).convert("RGBA")
    alpha = np.tile(np.arange(40, dtype=np.uint8) * 6, (30, 1))
    im.putalpha(Image.fromarray(alpha))
    out = tiny_colorizer.colorize(im)
    assert out.mode == "RGBA"
    assert np.array_equal(np.asarray(out.getchannel("A")), alpha)


def test_size_option_sets_working_shape(tiny_colorizer):
    assert tiny_colorizer.working_shape(400, 600, 128) == (128, 192)
    assert tiny_colorizer.working_shape(400, 600, None) == (64, 96)
    assert tiny_colorizer.working_shape(10, 5000, 64) == (32, 256)  # long panoramas capped
    with pytest.raises(ValueError):
        tiny_colorizer.working_shape(64, 64, 8)


def test_batch_equals_single(tiny_colorizer):
    ims = [make_photo(50, 40, seed=s).convert("L") for s in range(3)] + [make_photo(30, 70).convert("L")]
    many = tiny_colorizer.colorize_many(ims, batch_size=2)
    for im, out in zip(ims, many):
        single = np.asarray(tiny_colorizer.colorize(im), np.int16)
        assert np.abs(np.asarray(out, np.int16) - single).max() <= 1


def test_checkpoint_round_trip_safetensors(tmp_path, tiny_colorizer):
    path = tmp_path / "m.safetensors"
    checkpoint.save(path, tiny_colorizer.model, tiny_colorizer.meta)
    again = Colorizer.load(path)
    im = make_photo(48, 48).convert("L")
    assert np.array_equal(np.asarray(again.colorize(im)), np.asarray(tiny_colorizer.colorize(im)))


def test_run_folder_resolves_to_checkpoint(tmp_path, tiny_checkpoint):
    (tmp_path / "best.pt").write_bytes(tiny_checkpoint.read_bytes())
    assert Colorizer.load(tmp_path).size == 64


def test_not_a_tinct_checkpoint(tmp_path):
    plain = tmp_path / "plain.pt"
    torch.save({"weights": torch.zeros(3)}, plain)
    with pytest.raises(CheckpointError, match="not a tinct checkpoint"):
        Colorizer.load(plain)
    text = tmp_path / "notes.pt"
    text.write_text("just text")
    with pytest.raises(CheckpointError, match="notes.pt: not a readable checkpoint"):
        Colorizer.load(text)


def test_truncated_checkpoint(tmp_path, tiny_checkpoint):
    for suffix in (".pt", ".safetensors"):
        full = tmp_path / f"full{suffix}"
        if suffix == ".pt":
            full.write_bytes(tiny_checkpoint.read_bytes())
        else:
            model, meta = checkpoint.load_model(tiny_checkpoint)
            checkpoint.save(full, model, meta)
        cut = tmp_path / f"cut{suffix}"
        cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
        with pytest.raises(CheckpointError, match="cut"):
            Colorizer.load(cut)


def test_missing_model(tmp_path):
    with pytest.raises(CheckpointError, match="not a bundled model name"):
        Colorizer.load(tmp_path / "nothing.pt")
    with pytest.raises(CheckpointError, match="empty"):
        (tmp_path / "empty.pt").write_bytes(b"")
        Colorizer.load(tmp_path / "empty.pt")


def test_bundled_default_model_loads_and_colorizes():
    col = Colorizer.load("default")
    assert col.spec.is_bins and col.spec.bins == "313" and col.spec.tag == "bins313"
    out = col.colorize(make_photo(70, 50).convert("L"))
    assert out.size == (70, 50)
    lab = skcolor.rgb2lab(np.asarray(out, np.float64) / 255)
    assert np.hypot(lab[..., 1], lab[..., 2]).mean() > 1.0  # it actually adds colour
