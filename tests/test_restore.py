"""Restoration (``tinct.restore``, ``tinct restore``, ``tinct colorize --restore``): each
step on generated photos with drawn damage, the damage model's training pairs, the CLI end
to end with bad inputs, and the bundled damage model on photos with drawn scratches."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

from tinct import checkpoint, degrade
from tinct.checkpoint import CheckpointError
from tinct.cli import main
from tinct.config import TaskConfig, OptimConfig
from tinct.models import create_model
from tinct.restore import DEFAULT_STEPS, STEPS, Restorer, RestoreError, parse_steps, resolve_damage_model
from tinct.restore import steps as ops

from conftest import make_photo


def psnr(a, b) -> float:
    mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


def smooth_grey(w=160, h=120, seed=0) -> np.ndarray:
    """A smooth grey photo (mid-tones, some structure), uint8 (h, w)."""
    return np.asarray(make_photo(w, h, seed).convert("L")).copy()


def scratched(grey: np.ndarray, seed=0):
    return degrade.degrade(grey, [degrade.Step("scratches", {"count": 4, "width": 2.0, "bright": 1.0, "opacity": 0.9})],
                           seed, return_mask=True)


@pytest.fixture(scope="module")
def tiny_damage_model(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = create_model("damage_unet", base=4, depth=2)
    path = tmp_path_factory.mktemp("damage") / "tiny-damage.pt"
    checkpoint.save(path, model, {"description": "random weights"})
    return path


# ----------------------------------------------------------------- the steps
def test_inpaint_removes_drawn_scratches_and_touches_nothing_far_away():
    grey = smooth_grey()
    damaged, mask = scratched(grey)
    out = ops.inpaint(damaged, mask)
    assert psnr(out, grey) > psnr(damaged, grey) + 6
    near = ops._cv2().dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    assert np.array_equal(out[~near], damaged[~near])
    assert np.array_equal(ops.inpaint(grey, np.zeros_like(mask)), grey)


def test_inpaint_in_tiles_matches_one_piece(monkeypatch):
    grey = smooth_grey(300, 200, seed=4)
    damaged, mask = scratched(grey, seed=3)
    whole = ops.inpaint(damaged, mask)
    monkeypatch.setattr(ops, "TILE", 128)
    tiled = ops.inpaint(damaged, mask)
    assert psnr(tiled, whole) > 40  # the margin hides the seams


def test_denoise_removes_grain_and_leaves_a_clean_photo_alone():
    grey = smooth_grey(200, 160)
    noisy = degrade.degrade(grey, [degrade.Step("grain", {"amount": 0.04, "size": 0.5})], 1)
    assert ops.grain_level(noisy) >= ops.GRAIN_MIN > ops.grain_level(grey)
    assert psnr(ops.denoise(noisy), grey) > psnr(noisy, grey) + 2
    assert np.array_equal(ops.denoise(grey), grey)


def test_tone_stretches_a_faded_print_only():
    grey = smooth_grey()
    full = np.clip((grey.astype(float) - grey.min()) * 255 / np.ptp(grey), 0, 255).astype(np.uint8)  # 0 ... 255
    faded = degrade.degrade(full, [degrade.Step("fade", {"black": 0.12, "white": 0.85})], 0)
    lo, hi = ops.tone_range(faded)
    assert lo >= ops.TONE_BLACK and hi <= ops.TONE_WHITE
    assert psnr(ops.correct_tone(faded), full) > psnr(faded, full) + 5
    assert np.array_equal(ops.correct_tone(full), full)


def test_steps_parse_in_pipeline_order():
    assert parse_steps(None) == parse_steps("") == DEFAULT_STEPS
    assert parse_steps("all") == STEPS
    assert parse_steps("tone, scratches") == ("scratches", "tone")
    with pytest.raises(RestoreError, match="unknown restore step"):
        parse_steps("scratches,dust")


# ----------------------------------------------------------------- the restorer
def test_restorer_without_scratches_needs_no_model():
    r = Restorer.load("no-such-model", "grain,tone")
    assert r.net is None and r.steps == ("grain", "tone")
    with pytest.raises(RestoreError, match="needs a damage-mask model"):
        Restorer(None, "scratches")


@pytest.mark.parametrize("shape", [(5, 7), (37, 130), (200, 150)])
def test_damage_probability_of_any_size(tiny_damage_model, shape):
    r = Restorer.load(tiny_damage_model, backend="torch")
    grey = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    p = r.damage_probability(grey)
    assert p.shape == shape and p.dtype == np.float32 and 0 <= p.min() and p.max() <= 1
    out = r.restore_grey(grey)
    assert out.shape == shape and out.dtype == np.uint8


def test_restore_keeps_size_alpha_and_greys_a_colour_photo(tiny_damage_model):
    r = Restorer.load(tiny_damage_model, "all", backend="torch")
    im = make_photo(50, 30).convert("RGBA")
    out = r.restore(im)
    assert out.mode == "LA" and out.size == (50, 30)
    assert r.restore(make_photo(20, 20)).mode == "L"


def test_a_colorizer_is_not_a_damage_model_and_back(tiny_damage_model, tiny_checkpoint):
    from tinct import Colorizer

    with pytest.raises(CheckpointError, match="not a damage-mask model"):
        Restorer.load(tiny_checkpoint)
    with pytest.raises(CheckpointError, match="not a colorizer"):
        Colorizer.load(tiny_damage_model)
    with pytest.raises(RestoreError, match="not a training run"):
        resolve_damage_model(tiny_checkpoint.parent.parent)


def test_memory_budget_refuses_from_the_header(tiny_damage_model):
    r = Restorer.load(tiny_damage_model, backend="torch")
    r.check_budget((4000, 6000), mode="L")  # 24 MP grey fits the default 2.4 GB
    r.memory_budget = int(0.5e9)
    with pytest.raises(Exception, match="memory budget"):
        r.check_budget((4000, 6000), mode="L")


# ----------------------------------------------------------------- the training pairs
def _batch(n=4, side=64):
    from tinct import data

    crops = [torch.from_numpy(np.array(make_photo(side, side, seed=s))).permute(2, 0, 1) for s in range(n)]
    return data.collate(crops)


def test_segmentation_pairs_are_a_function_of_the_crop():
    from tinct.tasks import SegmentationTask

    model = create_model("damage_unet", base=4, depth=2)
    task = SegmentationTask(model, TaskConfig(kind="segmentation", damage_p=1.0), OptimConfig(), steps=10)
    a, b = _batch(), _batch()
    clean = a["L_n"].clone()
    task.prepare(a)
    task.prepare(b)
    assert torch.equal(a["L_n"], b["L_n"]) and torch.equal(a["mask"], b["mask"])
    assert set(a["mask"].unique().tolist()) <= {0.0, 1.0} and a["mask"].mean() > 0
    changed = (a["L_n"] - clean).abs() > 0
    assert bool(changed[a["mask"] > 0].all())  # every target pixel was changed by the damage
    m = task.eval_step(_batch())
    assert set(m) == set(task.eval_metrics) and all(np.isfinite(v) for v in m.values())


def test_segmentation_needs_a_mask_model():
    from tinct.config import ConfigError
    from tinct.tasks import SegmentationTask

    with pytest.raises(ConfigError, match="needs a mask model"):
        SegmentationTask(create_model("unet_lab", base=4), TaskConfig(kind="segmentation"), OptimConfig(), steps=1)


# ----------------------------------------------------------------- the command line
def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_cli_restore_folder_with_broken_files(tmp_path, tiny_damage_model, capsys):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(scratched(smooth_grey())[0]).save(src / "a.png")
    make_photo(50, 70, seed=2).save(src / "b.jpg")
    (src / "text.png").write_text("not an image\n")
    (src / "zero.jpg").write_bytes(b"")
    before = _digests(src)
    out = tmp_path / "out"
    code = main(["restore", str(src), "-o", str(out), "--damage-model", str(tiny_damage_model), "--backend", "torch"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png"]
    assert Image.open(out / "a.png").mode == "L" and Image.open(out / "b.png").size == (50, 70)
    assert "2 restored (scratches, grain), 2 failed" in err
    assert sum(line.startswith("failed ") for line in err.splitlines()) == 2
    assert _digests(src) == before
    # again: outputs exist and are kept
    assert main(["restore", str(src / "a.png"), "-o", str(out), "--damage-model", str(tiny_damage_model)]) == 0
    assert "skipped" in capsys.readouterr().err


@pytest.mark.parametrize("extra, message", [
    (["--steps", "scratches,bogus"], "unknown restore step"),
    (["--damage-model", "missing.pt"], "cannot load damage model"),
])
def test_cli_restore_usage_errors_exit_2(tmp_path, extra, message, capsys):
    make_photo(20, 20).save(tmp_path / "p.png")
    assert main(["restore", str(tmp_path / "p.png"), "-o", str(tmp_path / "o.png"), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_cli_restore_nothing_to_do_and_no_input_replaced(tmp_path, capsys):
    assert main(["restore", str(tmp_path / "none*.png"), "--steps", "tone"]) == 2
    assert "nothing to restore" in capsys.readouterr().err
    p = tmp_path / "p.png"
    make_photo(20, 20).save(p)
    before = p.read_bytes()
    assert main(["restore", str(p), "-o", str(p), "--steps", "tone"]) == 1
    assert "would replace an input" in capsys.readouterr().err and p.read_bytes() == before


def test_cli_colorize_restore_first(tmp_path, tiny_checkpoint, tiny_damage_model, capsys):
    src = tmp_path / "old.png"
    grainy = degrade.degrade(scratched(smooth_grey())[0], [degrade.Step("grain", {"amount": 0.04, "size": 0.5})], 1)
    Image.fromarray(grainy).save(src)
    common = ["colorize", str(src), "--model", str(tiny_checkpoint), "--backend", "torch"]
    assert main([*common, "-o", str(tmp_path / "plain.png")]) == 0
    assert main([*common, "-o", str(tmp_path / "restored.png"), "--restore", "--damage-model", str(tiny_damage_model)]) == 0
    assert "1 colorized, 0 failed" in capsys.readouterr().err
    plain, restored = (np.asarray(Image.open(tmp_path / n)) for n in ("plain.png", "restored.png"))
    assert plain.shape == restored.shape == (120, 160, 3) and not np.array_equal(plain, restored)
    assert main([*common, "-o", str(tmp_path / "x.png"), "--restore", "grain,nope"]) == 2
    assert "unknown restore step" in capsys.readouterr().err


# ----------------------------------------------------------------- the bundled model
@pytest.mark.skipif(not (Path(__file__).parents[1] / "src/tinct/weights/restore-damage.safetensors").is_file(),
                    reason="the bundled damage model is not in this checkout")
def test_bundled_model_finds_and_removes_drawn_scratches():
    r = Restorer.load("default", "scratches", backend="torch")
    tp = pp = ap = 0
    gains, flagged = [], []
    for seed in range(4):
        grey = smooth_grey(256, 192, seed=seed)
        damaged, mask = scratched(grey, seed)
        pred = r.damage_mask(damaged)
        tp, pp, ap = tp + (pred & mask).sum(), pp + pred.sum(), ap + mask.sum()
        gains.append(psnr(r.restore_grey(damaged), grey) - psnr(damaged, grey))
        flagged.append(r.damage_mask(grey).mean())
    assert tp / pp > 0.7 and tp / ap > 0.7, (tp / pp, tp / ap)
    assert min(gains) > 4 and max(flagged) < 0.005


def test_a_torn_corner_outlined_by_damage_is_filled_and_a_white_sky_is_not():
    rng = np.random.default_rng(0)
    grey = smooth_grey(200, 150, seed=2)
    torn, truth = degrade.torn_corner(grey, rng, 1.0, size=(0.2, 0.2))
    edge = truth & ~np.asarray(Image.fromarray(truth.astype(np.uint8)).filter(ImageFilter.MinFilter(5)), bool)
    found = ops.fill_torn_corners(torn, edge.copy())  # the network marks the tear's edge only
    assert found[truth].mean() > 0.98 and (found & ~truth).sum() <= edge.sum()
    sky = grey.copy()
    sky[:40, :60] = 250  # a flat white corner that no damage outlines
    assert not ops.fill_torn_corners(sky, np.zeros(sky.shape, bool)).any()
    strip, outline = grey.copy(), np.zeros(grey.shape, bool)
    strip[:10, :120] = 250  # a flat band along the top, outlined by damage, but past a corner's reach
    outline[10, :121] = outline[:11, 120] = True
    assert not ops.fill_torn_corners(strip, outline.copy())[:10, :120].any()
    for h, w in ((1, 1), (1, 40), (40, 1), (2, 2), (3, 3), (15, 200), (16, 16), (17, 3000)):  # tiny and thin photos
        flat = np.full((h, w), 250, np.uint8)
        assert ops.fill_torn_corners(flat, np.zeros((h, w), bool)).shape == (h, w)


def test_a_restorer_keeps_no_memory_between_photos():
    from tinct import budget
    from tinct.backends import onnx_available

    # glibc here: big blocks served by mmap from 2 MB on, so freeing gives them back (docs/RESTORE.md)
    import platform

    assert budget.return_freed_memory_at_once() is (platform.libc_ver()[0] == "glibc")
    if onnx_available() and (Path(__file__).parents[1] / "src/tinct/weights/restore-damage.safetensors").is_file():
        r = Restorer.load("default", "scratches", backend="onnx")
        assert r.net.session.get_session_options().enable_cpu_mem_arena is False  # no arena kept after a run
