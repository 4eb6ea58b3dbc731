"""Measuring colour hints (issue 22, part 4): the points simulated from the truth, the
non-learned spread baseline, hint obedience, ``tinct evaluate --hints`` end to end, and
the "two shapes" check (tests/two_shapes.py) on the baseline and, when one is given, on a
trained hint model."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import make_photo
from test_guide import wire
from tinct import Colorizer, checkpoint, color, hints, metrics
from tinct.cli import main
from tinct.colorizer import BUNDLED, bundled_installed
from tinct.models import create_model
from two_shapes import MAX_LEAK, check_two_shapes, two_shapes_photo


def _truth(w=64, h=48, seed=0) -> np.ndarray:
    return np.asarray(make_photo(w, h, seed=seed), dtype=np.float32) / 255


# ---------------------------------------------------------------- simulated points
def test_truth_points_ask_for_their_patch_mean_and_are_fixed_per_photo():
    truth = _truth()
    pts = hints.truth_points(truth, 20, "a/b.jpg", seed=0)
    lab = color.rgb_to_lab(truth)
    for p in pts:
        assert 2 <= p.x < 64 - 2 and 2 <= p.y < 48 - 2  # the 5x5 patch lies inside
        patch = lab[p.y - 2:p.y + 3, p.x - 2:p.x + 3].reshape(-1, 3).mean(0)
        np.testing.assert_allclose((p.L, p.a, p.b), patch, atol=1e-3)
    assert hints.truth_points(truth, 20, "a/b.jpg", seed=0) == pts  # the same photo: the same points
    assert hints.truth_points(truth, 5, "a/b.jpg", seed=0) == pts[:5]  # fewer: the first ones
    assert hints.truth_points(truth, 20, "a/c.jpg", seed=0) != pts  # another photo, or seed: others
    assert hints.truth_points(truth, 20, "a/b.jpg", seed=1) != pts
    assert len({(p.x, p.y) for p in pts}) > 15  # spread over the photo


def test_true_points_reach_the_grid_as_hints_do():
    """A TruePoint lands where a pixel Hint at its place lands, with its exact ab."""
    p = hints.TruePoint(30, 17, 50.0, 41.3, -12.7)
    exact = hints.Guide([p]).local((48, 64), (32, 48))
    as_hint = hints.Guide([hints.Hint(30, 17, "red")]).local((48, 64), (32, 48))
    assert torch.equal(exact[2], as_hint[2]) and exact[2].sum() == 25
    m = exact[2] > 0
    np.testing.assert_allclose(color.denormalize_ab(exact[:2])[:, m].mean(1).numpy(), (41.3, -12.7), atol=1e-4)
    assert hints.Hint(0, 0, p.colour).ab == pytest.approx(p.ab, abs=1.5)  # its colour name is close


# ---------------------------------------------------------------- the spread baseline
def _flat(h=64, w=128, L=50.0):
    return np.full((h, w), L, np.float32), np.zeros((h, w, 2), np.float32)


def test_spread_moves_the_colour_to_the_hint_near_it_and_not_far_away():
    L, ab = _flat()
    asked = np.array([[40.0, 30.0]])
    out = hints.spread_ab(L, ab, np.array([[20, 32]]), asked)
    np.testing.assert_allclose(out[32, 20], asked[0], atol=1e-3)  # on the point: the asked colour
    assert np.linalg.norm(out[32, 26]) > 0.8 * 50  # near it: most of the way
    assert np.abs(out[:, 100:]).max() < 0.5  # 80+ px away (sigma 0.2 x 64 = 12.8 px): untouched
    assert (np.diff(np.linalg.norm(out[32, 20:100], axis=-1)) <= 1e-4).all()  # falls off with distance


def test_spread_falls_off_with_lightness_and_does_not_overshoot():
    L, ab = _flat()
    L[:, 30:] = 90.0  # a lightness edge 10 px right of the point
    out = hints.spread_ab(L, ab, np.array([[20, 32]]), np.array([[40.0, 30.0]]))
    left, right = np.linalg.norm(out[32, 15]), np.linalg.norm(out[32, 25 + 10])  # 5 and 15 px away
    # beyond the edge: exp(-40^2 / (2 x 16^2)) = 4% of what the same distance gets without it
    assert left > 45 and right < 0.05 * 50, (left, right)
    blind = hints.spread_ab(L, ab, np.array([[20, 32]]), np.array([[40.0, 30.0]]), sigma_l=float("inf"))
    assert np.linalg.norm(blind[32, 35]) > 20  # by distance alone it crosses the edge
    # Two points asking the same colour side by side: corrections average, never add up past it.
    two = hints.spread_ab(*_flat(), np.array([[20, 32], [24, 32]]), np.array([[40.0, 30.0]] * 2))
    assert np.linalg.norm(two, axis=-1).max() <= 50 + 1e-3


def test_spread_corrects_the_automatic_output_not_replaces_it():
    """The correction is relative: an output that already has the asked colour stays as it is."""
    L, ab = _flat()
    ab[:] = (40.0, 30.0)
    out = hints.spread_ab(L, ab, np.array([[20, 32]]), np.array([[40.0, 30.0]]))
    np.testing.assert_allclose(out, ab, atol=1e-4)
    assert np.array_equal(hints.spread_ab(L, ab, np.zeros((0, 2)), np.zeros((0, 2))), ab)


# ---------------------------------------------------------------- obedience
def test_hint_obedience():
    L = np.full((32, 32), 60.0, np.float32)
    lab = np.stack([L, np.full_like(L, 30.0), np.full_like(L, -20.0)], -1)
    rgb = color.lab_to_rgb(lab)
    grey = color.lab_to_rgb(np.stack([L, L * 0, L * 0], -1))
    xy = np.array([[10, 10], [0, 31]])  # one inside, one at a corner (its window cut)
    asked = np.array([[30.0, -20.0]] * 2)
    assert metrics.hint_obedience(rgb, L, xy, asked) < 0.5
    far = metrics.hint_obedience(grey, L, xy, asked)
    assert far > 10
    # the reference value: skimage's CIEDE2000 between the asked colour and grey at L 60
    from skimage.color import deltaE_ciede2000

    want = deltaE_ciede2000(np.array([60.0, 30.0, -20.0]), color.rgb_to_lab(grey[:1, :1])[0, 0].astype(np.float64))
    assert far == pytest.approx(float(want), abs=0.05)
    assert np.isnan(metrics.hint_obedience(rgb, L, np.zeros((0, 2)), np.zeros((0, 2))))


# ---------------------------------------------------------------- tinct evaluate --hints
@pytest.fixture(scope="module")
def hint_ckpt(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("hintev") / "hint.pt"
    checkpoint.save(path, wire(create_model("effunet_bins313", pretrained=False, hints=True)).eval(), {"size": 64})
    return path


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hintphotos")
    for i, (w, h) in enumerate([(80, 64), (64, 64), (72, 96)]):
        make_photo(w, h, seed=i).save(folder / f"p{i}.png")
    return folder


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_evaluate_hints_end_to_end(hint_ckpt, tiny_checkpoint, photos, tmp_path, capsys):
    out = tmp_path / "rep"
    rc = main(["evaluate", "--data", str(photos), "--crop", "64", "--model", str(hint_ckpt), "--model", "spread:gray",
               "--model", str(tiny_checkpoint), "--model", "gray", "--hints", "1,5", "--reference", "self",
               "--out", str(out), "-q"])
    assert rc == 0, capsys.readouterr().err
    rows = _rows(out / "metrics.csv")
    names = list(dict.fromkeys(r["model"] for r in rows))
    h, t = str(hint_ckpt), str(tiny_checkpoint)
    assert names == [f"{h} @ 0 hints", f"{h} @ 1 hint", f"{h} @ 5 hints", f"{h} @ reference self",
                     "spread:gray @ 0 hints", "spread:gray @ 1 hint", "spread:gray @ 5 hints",
                     f"{t} @ 0 hints", f"{t} @ 1 hint", f"{t} @ 5 hints", f"{t} @ reference self", "gray @ 0 hints"]
    assert len(rows) == 3 * len(names)
    by = {(r["photo"], r["model"]): r for r in rows}
    for photo in ("p0.png", "p1.png", "p2.png"):
        assert by[(photo, f"{h} @ 0 hints")]["hint_de00"] == "nan"
        assert int(by[(photo, f"{h} @ 5 hints")]["hints"]) == 5
        assert by[(photo, f"{h} @ reference self")]["reference_self"] == "1"
        sp = by[(photo, "spread:gray @ 5 hints")]
        assert float(sp["hint_de00"]) < float(sp["hint_de00_auto"])  # the baseline obeys its points
        assert float(sp["psnr"]) > float(by[(photo, "spread:gray @ 0 hints")]["psnr"])  # true colours help grey
        # the wired hint model pushes toward each point's colour, so it obeys better than without hints
        hm = by[(photo, f"{h} @ 5 hints")]
        assert float(hm["hint_de00"]) < float(hm["hint_de00_auto"])
        # a bin model without hint inputs follows the points without them (spread on its working grid)
        tm = by[(photo, f"{t} @ 5 hints")]
        assert float(tm["hint_de00"]) < float(tm["hint_de00_auto"]) and by[(photo, f"{t} @ reference self")]["psnr"] != "nan"
    summary = json.loads((out / "summary.json").read_text())
    sec = summary["hints"]
    assert sec["counts"] == [0, 1, 5] and sec["reference"] == "self"
    assert [e["row"] for e in sec["models"]["spread:gray"]] == names[4:7]
    assert sec["models"]["spread:gray"][2]["vs_no_hints"]["psnr"]["diff"] > 0
    md = (out / "summary.md").read_text()
    assert "## Colour hints" in md and "gray takes no hints: reported without hints only" in md
    assert f"{t} takes no" not in md
    assert "spread:gray takes no reference" in md
    assert (out / "hints.png").stat().st_size > 1000
    assert "p0000_m7.jpg" in (out / "gallery.html").read_text()  # every row has its thumbnails


def test_evaluate_hints_is_deterministic_and_plain_runs_are_unchanged(photos, tmp_path):
    args = ["evaluate", "--data", str(photos), "--crop", "48", "--model", "spread:mean-ab", "--hints", "0,3", "-q"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    a = (tmp_path / "a" / "metrics.csv").read_bytes()
    assert a == (tmp_path / "b" / "metrics.csv").read_bytes()
    assert main([*args[:-3], "-q", "--out", str(tmp_path / "plain")]) == 0  # without --hints: one row per model
    plain = _rows(tmp_path / "plain" / "metrics.csv")
    assert {r["model"] for r in plain} == {"spread:mean-ab"} and "hints" not in plain[0]
    assert not (tmp_path / "plain" / "hints.png").exists()
    hinted = {(r["photo"], r["model"]): r for r in _rows(tmp_path / "a" / "metrics.csv")}
    for r in plain:  # the no-hints row of a hinted run measures exactly what the plain run does
        assert r["psnr"] == hinted[(r["photo"], "spread:mean-ab @ 0 hints")]["psnr"]


@pytest.mark.parametrize("args, says", [
    (["--hints", "1,x"], "comma-separated whole numbers"),
    (["--hints", "-1"], "0 to 1000"),
    (["--reference", "other.jpg"], "invalid choice"),
    (["--model", "spread:"], "spread: takes one model"),
    (["--model", "spread:spread:gray"], "spread: takes one model"),
])
def test_evaluate_hints_bad_options(photos, tmp_path, capsys, args, says):
    base = ["evaluate", "--data", str(photos), "--out", str(tmp_path / "r"), "-q"]
    if "--model" not in args:
        base += ["--model", "gray"]
    try:
        rc = main([*base, *args])
    except SystemExit as e:  # argparse's usage errors
        rc = e.code
    assert rc == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err


# ---------------------------------------------------------------- two shapes
def _gray_rgb(im: Image.Image) -> np.ndarray:
    return color.grey(np.asarray(im.convert("RGB"), dtype=np.float32) / 255)


def test_two_shapes_photo_is_what_it_says():
    photo, a, b, (fx, fy) = two_shapes_photo()
    lab = color.rgb_to_lab(np.asarray(photo, dtype=np.float32) / 255)
    assert a.sum() > 1000 and b.sum() > 1000 and not (a & b).any()
    assert abs(lab[a][:, 0].mean() - lab[b][:, 0].mean()) > 40  # their lightness tells them apart
    assert a[int(fy * 128), int(fx * 128)]


@pytest.mark.parametrize("base", ["gray", "tiny"])
def test_two_shapes_with_the_spread_baseline(base, tiny_colorizer):
    """The baseline respects lightness edges, so a point on one shape leaves the other alone,
    whatever automatic output it corrects (grey, or a random network's colours)."""
    auto = _gray_rgb if base == "gray" else (lambda im: np.asarray(tiny_colorizer.colorize(im), np.float32) / 255)
    result = check_two_shapes(lambda im, pts: hints.spread_rgb(auto(im), pts))
    assert result.passed, str(result)


def test_two_shapes_with_the_bundled_default():
    """What a user gets: ``tinct colorize --hint`` with the bundled model, which takes no hint
    inputs and follows the point by spreading it on its working grid (Colorizer.colorize)."""
    col = Colorizer.load("default")
    result = check_two_shapes(lambda im, pts: col.colorize(im, hints=pts))
    assert result.passed, str(result)


def test_two_shapes_check_can_fail():
    """Spread by distance alone, the same point leaks into the other shape: the check sees it."""
    result = check_two_shapes(lambda im, pts: hints.spread_rgb(_gray_rgb(im), pts, sigma_l=float("inf")))
    assert result.moved_a >= 10 and result.leak_b > MAX_LEAK and not result.passed, str(result)


def _trained_hint_model() -> str | None:
    if os.environ.get("TINCT_HINT_MODEL"):
        return os.environ["TINCT_HINT_MODEL"]
    if "default-hints" in BUNDLED and bundled_installed("default-hints"):
        return "default-hints"
    return None


@pytest.mark.skipif(_trained_hint_model() is None,
                    reason="no trained hint model: set TINCT_HINT_MODEL=PATH (a hint checkpoint or run folder), "
                           "or install the bundled default-hints")
def test_two_shapes_with_the_trained_hint_model():
    col = Colorizer.load(_trained_hint_model())
    result = check_two_shapes(lambda im, pts: col.colorize(im, hints=pts))
    assert result.passed, str(result)
