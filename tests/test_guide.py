"""Guided colorization (issue 22), the user side: hint points parsed and validated, the
hints file, points rasterised onto the working grid, hints and a reference photo through
Colorizer.colorize and tinct colorize.

The hint network is an untrained one (never the weights being trained) with its hint
paths wired by hand (:func:`wire`): the local hint's ab goes straight through four
decoder channels into logits that favour the bins in the hint's direction, so a red hint
must turn the output red near the point and leave it exactly alone far away; the global
path gets random weights, so a reference changes the network's output.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from tinct import Colorizer, checkpoint, color, hints
from tinct.cli import main
from tinct.hints import Guide, Hint, HintError, parse_hint
from tinct.models import create_model

from conftest import make_photo


# ---------------------------------------------------------------- parsing
@pytest.mark.parametrize("text, x, y, colour", [
    ("120,340,#3050c0", 120, 340, "#3050c0"),
    ("0.5,0.2,red", 0.5, 0.2, "red"),
    (" 0 , 1.0 , SteelBlue ", 0.0, 1.0, "SteelBlue"),
    ("3,4,rgb(10, 200, 30)", 3, 4, "rgb(10, 200, 30)"),
    ("1.,0.,#35c", 1.0, 0.0, "#35c"),
])
def test_parse_hint(text, x, y, colour):
    h = parse_hint(text)
    assert (h.x, h.y, h.colour) == (x, y, colour)
    assert type(h.x) is type(x) and type(h.y) is type(y)


def test_a_hint_keeps_only_the_colours_ab():
    a, b = parse_hint("1,1,red").ab
    lab = color.rgb_to_lab(np.array([[[1.0, 0.0, 0.0]]], dtype=np.float32))[0, 0]
    assert a == pytest.approx(lab[1], abs=0.5) and b == pytest.approx(lab[2], abs=0.5)
    assert parse_hint("1,1,#808080").ab == pytest.approx((0, 0), abs=0.5)
    assert parse_hint("1,1,white").ab == pytest.approx(parse_hint("1,1,black").ab, abs=0.5)  # lightness dropped


@pytest.mark.parametrize("text, says", [
    ("120,340", "expected X,Y,COLOUR"),
    ("abc,3,red", "x 'abc' is not a number"),
    ("3,,red", "y '' is not a number"),
    ("0.5,1.5,red", "y 1.5 is outside [0, 1]"),
    ("-3,4,red", "x -3 is negative"),
    ("0.5,3,red", "y 3.0 is outside [0, 1]"),
    ("1,2,reddish", "unknown colour 'reddish'"),
    ("1,2,#12345", "unknown colour '#12345'"),
    ("nan,0.5,red", "x nan is outside"),
])
def test_parse_hint_errors_name_the_bad_part(text, says):
    with pytest.raises(HintError, match=None) as e:
        parse_hint(text)
    assert says in str(e.value) and repr(text) in str(e.value)


def test_hint_validation():
    with pytest.raises(HintError, match="size"):
        Hint(1, 2, "red", size=0)
    with pytest.raises(HintError, match="both pixels"):
        Hint(0, 0.5, "red")
    with pytest.raises(HintError, match="x must be a number"):
        Hint(True, 2, "red")
    with pytest.raises(HintError, match="outside the 10x8 photo"):
        Hint(10, 2, "red").position(8, 10)
    assert Hint(9, 7, "red").position(8, 10) == (0.95, 0.9375)
    with pytest.raises(HintError, match="at most 1000"):
        Guide([Hint(0.5, 0.5, "red")] * 10_000)
    assert isinstance(HintError("x"), ValueError)


# ---------------------------------------------------------------- the hints file
def test_hints_file_round_trip(tmp_path):
    g = Guide([Hint(0.5, 0.2, "#ff0000", 7), Hint(0.1, 0.9, "navy")], point_size=3)
    path = tmp_path / "photo.hints.json"
    hints.save_hints(path, g)
    data = json.loads(path.read_text())
    assert data["version"] == 1 and data["units"] == "relative" and data["reference"] is None
    back = hints.load_hints(path)
    assert back.points == g.points and back.point_size == 3 and back.reference is None
    # pixels stay pixels; mixed points need the photo's size to become fractions
    px = Guide([Hint(120, 34, "red")])
    assert hints.from_json(hints.to_json(px)).points == px.points
    with pytest.raises(HintError, match="mix"):
        hints.to_json(Guide([Hint(120, 34, "red"), Hint(0.5, 0.5, "red")]))
    mixed = hints.to_json(Guide([Hint(99, 49, "red"), Hint(0.5, 0.5, "red")]), photo_size=(100, 50))
    assert mixed["points"][0]["x"] == 0.995 and mixed["units"] == "relative"
    # a JavaScript editor writes 1.0 as 1: the file's units decide, not the number's look
    assert hints.from_json({"version": 1, "points": [{"x": 1, "y": 0, "color": "red"}]}).points == [Hint(1.0, 0.0, "red")]


def test_hints_file_reference(tmp_path):
    make_photo(64, 48).save(tmp_path / "ref.png")
    (tmp_path / "h.json").write_text(json.dumps({"version": 1, "points": [], "reference": "ref.png"}))
    g = hints.load_hints(tmp_path / "h.json")
    assert g.reference.shape == (hints.GLOBAL_DIM,) and g.reference[-1] == 1
    assert g.reference[:-1].sum() == pytest.approx(1.0, abs=1e-4)
    hints.save_hints(tmp_path / "d.json", g)  # written as the distribution: the file stands alone
    again = hints.load_hints(tmp_path / "d.json")
    assert torch.allclose(again.reference, g.reference, atol=1e-5)
    with pytest.raises(HintError, match="form field: reference must be null or a distribution here"):
        hints.from_text('{"version": 1, "reference": "ref.png"}', "form field")
    with pytest.raises(HintError, match="form field: not JSON"):
        hints.from_text("{", "form field")


@pytest.mark.parametrize("content, says", [
    ("{not json", "not JSON"),
    ("[1, 2]", "expected a JSON object"),
    ('{"version": 2, "points": []}', "version must be 1"),
    ('{"version": 1, "points": {}}', "points must be a list"),
    ('{"version": 1, "units": "cm", "points": []}', "units must be"),
    ('{"version": 1, "points": [{"x": 0.5, "colour": "red"}]}', "point 1 has no y"),
    ('{"version": 1, "points": [{"x": 0.5, "y": 0.5, "colour": "nope"}]}', "point 1: unknown colour 'nope'"),
    ('{"version": 1, "points": [{"x": 0.5, "y": 2, "colour": "red"}]}', "point 1: y 2.0 is outside [0, 1]"),
    ('{"version": 1, "units": "pixels", "points": [{"x": 1.5, "y": 2, "colour": "red"}]}', "not a whole number"),
    ('{"version": 1, "points": [], "reference": "missing.jpg"}', "missing.jpg"),
    ('{"version": 1, "points": [], "reference": {"distribution": [1, 2]}}', "distribution"),
    ('{"version": 1, "points": [], "point_size": 0}', "point_size"),
])
def test_bad_hints_files_name_the_file(tmp_path, content, says):
    path = tmp_path / "bad.hints.json"
    path.write_text(content)
    with pytest.raises(HintError) as e:
        hints.load_hints(path)
    assert str(path) in str(e.value) and says in str(e.value)


def test_missing_and_huge_hints_files(tmp_path):
    with pytest.raises(HintError, match="no such hints file"):
        hints.load_hints(tmp_path / "none.json")
    path = tmp_path / "many.json"
    path.write_text(json.dumps({"version": 1, "points": [{"x": 0.5, "y": 0.5, "colour": "red"}] * 10_000}))
    with pytest.raises(HintError, match="10000 points: at most 1000"):
        hints.load_hints(path)


def test_reference_must_be_a_colour_image(tmp_path):
    (tmp_path / "x.jpg").write_bytes(b"not an image")
    with pytest.raises(HintError, match="reference"):
        hints.reference_hint(tmp_path / "x.jpg")
    Image.new("L", (32, 32), 120).save(tmp_path / "grey.png")
    with pytest.raises(HintError, match="grey"):
        hints.reference_hint(tmp_path / "grey.png")


# ---------------------------------------------------------------- rasterising
@pytest.mark.parametrize("photo", [(64, 64), (480, 640), (640, 480), (37, 1001)])
@pytest.mark.parametrize("work", [(32, 32), (160, 224), (224, 160), (64, 1024)])
@pytest.mark.parametrize("size", [1, 4, 5])
def test_the_centre_lands_at_the_centre(photo, work, size):
    local = Guide([Hint(0.5, 0.5, "red")], point_size=size).local(photo, work)
    assert local.shape == (3, *work)
    ys, xs = torch.nonzero(local[2], as_tuple=True)
    assert len(ys) == size * size
    assert abs(xs.float().mean() + 0.5 - work[1] / 2) <= 0.5 and abs(ys.float().mean() + 0.5 - work[0] / 2) <= 0.5
    a, b = (color.normalize_ab(v) for v in parse_hint("0,0,red").ab)
    assert torch.allclose(local[0][local[2] > 0], torch.tensor(a)) and torch.allclose(local[1][local[2] > 0], torch.tensor(b))


def test_pixel_points_map_onto_the_grid_and_stay_inside():
    # photo 200 x 100 (W x H) onto a 64 x 128 grid: pixel (150, 25) -> grid (96.3, 16.2)
    local = Guide([Hint(150, 25, "red", 1), Hint(199, 99, "blue", 3), Hint(0.0, 0.0, "lime", 4)]).local((100, 200), (64, 128))
    assert local[2, 16, 96] == 1
    assert local[2, 61:64, 125:128].all() and local[2].sum() == 1 + 9 + 16  # moved inside at the edges
    assert local[2, 0:4, 0:4].all()


# ---------------------------------------------------------------- the API
def wire(model: torch.nn.Module, gain: float = 25.0) -> torch.nn.Module:
    """Wire an untrained hint network's local path by hand: the hint map's (a, b) reach
    four decoder channels (relu of +-a, +-b) at 1/4 resolution, which the head turns into
    logits ``gain * (a_n, b_n) . centre_q``: the bins in the hint's direction win. The
    decoder's own output on those channels is zeroed, so without hints they are silent.
    The global path gets random weights (large: an untrained decoder damps it)."""
    enc = model.hint_encoder
    with torch.no_grad():
        for conv in (enc.stem[0], enc.stem[2], *enc.project):
            conv.weight.zero_()
            conv.bias.zero_()
        for k, (ch, sign) in enumerate(((0, 1), (0, -1), (1, 1), (1, -1))):
            enc.stem[0].weight[k, ch, 1, 1] = sign
            enc.stem[2].weight[k, k, 1, 1] = 1.0
            enc.project[0].weight[k, k] = 1.0
        bn = model.up4.body[1][1]
        bn.weight[:4] = 0
        bn.bias[:4] = 0
        c = torch.from_numpy(color.bin_centers("313")).float() / color.AB_NORM  # (313, 2)
        model.head.weight[:, :4, 0, 0] = gain * torch.stack([c[:, 0], -c[:, 0], c[:, 1], -c[:, 1]], 1)
        model.hint_global.weight.normal_(0, 50.0)
    return model


@pytest.fixture(scope="module")
def hint_model():
    torch.manual_seed(0)
    return wire(create_model("effunet_bins313", pretrained=False, hints=True)).eval()


@pytest.fixture(scope="module")
def hint_checkpoint(hint_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("hint") / "hint.pt"
    checkpoint.save(path, hint_model, {"size": 64})
    return path


def _ab(im: Image.Image) -> np.ndarray:
    return color.rgb_to_lab(np.asarray(im.convert("RGB"), dtype=np.float32) / 255)[..., 1:]


def _mean_ab(ab: np.ndarray, cx: float, cy: float, r: float, inside: bool = True) -> np.ndarray:
    yy, xx = np.mgrid[:ab.shape[0], :ab.shape[1]]
    near = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
    return ab[near if inside else ~near].mean(0)


RED = np.array(parse_hint("0,0,red").ab) / np.linalg.norm(parse_hint("0,0,red").ab)


@pytest.mark.parametrize("meta", [{"size": 64}, {"size": 64, "flip": True}, {"size": 64, "scales": [1.0, 0.75]}],
                         ids=["plain", "flip", "multiscale"])
def test_a_red_hint_turns_the_point_red_and_nothing_far_away(hint_model, meta):
    col = Colorizer(hint_model, meta)
    photo = make_photo(128, 96, seed=3)
    base = _ab(col.colorize(photo))
    cx, cy = 0.25 * 128, 0.5 * 96
    out = _ab(col.colorize(photo, hints=[Hint(0.25, 0.5, "red")]))
    gain = (_mean_ab(out, cx, cy, 5) - _mean_ab(base, cx, cy, 5)) @ RED
    assert gain > 15, gain  # toward red, in Lab units
    # far away (incl. the mirrored place a badly flipped hint map would reach) stays as it was
    far = np.abs(out - base)[:, 64:].mean()
    assert far < 0.5, far
    # a pixel hint at the same place does the same; a blue one pushes the other way
    same = _ab(col.colorize(photo, hints=["32,48,red"]))
    assert np.abs(same - out).mean() < 1.0
    blue = _ab(col.colorize(photo, hints=[Hint(0.25, 0.5, "blue")]))
    assert (_mean_ab(blue, cx, cy, 5) - _mean_ab(base, cx, cy, 5)) @ RED < -5


def test_no_hints_is_the_zero_map_and_a_reference_reaches_the_network(hint_model, tmp_path):
    col = Colorizer(hint_model, {"size": 64, "flip": True})
    photo = make_photo(96, 64, seed=1)
    base = col.colorize(photo)
    assert np.array_equal(np.asarray(base), np.asarray(col.colorize(photo, hints=[])))
    make_photo(64, 64, seed=5).save(tmp_path / "ref.png")
    seen = []

    class Spy:
        name, net = "torch", col.net

        def __call__(self, x, local=None, glob=None):
            seen.append((local, glob))
            return self.net(x, local, glob)

    col.net = Spy()
    by_ref = col.colorize(photo, reference=tmp_path / "ref.png")
    (local, glob), _ = seen  # two passes (flip), each with the reference
    assert not local.any() and torch.equal(glob[0], hints.reference_hint(tmp_path / "ref.png"))
    assert not np.array_equal(np.asarray(by_ref), np.asarray(base))
    same = col.colorize(photo, reference=Image.open(tmp_path / "ref.png"))
    assert np.array_equal(np.asarray(by_ref), np.asarray(same))
    L = torch.full((1, 1, 64, 96), 50.0)
    assert (col.predict_raw(L, None, glob) - col.predict_raw(L)).abs().max() > 1e-3


def test_guides_per_photo_in_one_batch(hint_model):
    col = Colorizer(hint_model, {"size": 64})
    photos = [make_photo(96, 64, seed=s) for s in (1, 2)]
    alone = [col.colorize(photos[0], hints=["0.5,0.5,red"]), col.colorize(photos[1])]
    both = col.colorize_many(photos, guides=[hints.guide(["0.5,0.5,red"]), None])
    for a, b in zip(alone, both):
        assert np.abs(np.asarray(a, dtype=int) - np.asarray(b, dtype=int)).max() <= 1


def test_a_model_without_hint_inputs_follows_points_and_a_reference(tiny_colorizer):
    """A bin model that takes no hints follows them without: its output is corrected by the
    points (spread on the working grid) and its distributions shifted to the reference's palette."""
    photo = make_photo(96, 64)
    plain = tiny_colorizer.colorize(photo)
    assert np.array_equal(np.asarray(plain), np.asarray(tiny_colorizer.colorize(photo, hints=None)))
    pointed = tiny_colorizer.colorize(photo, hints=[Hint(0.5, 0.5, "#3050c0")])  # inside the gamut at the photo's L
    blue = np.array(hints.colour_ab("#3050c0"))
    near = lambda im: float(np.linalg.norm(_ab(im)[30:35, 46:51].reshape(-1, 2).mean(0) - blue))  # noqa: E731
    assert near(pointed) < 8 < near(plain)
    # the reference: the network's logits shifted (tests/test_palette.py), then decoded and rendered as usual
    ref = make_photo(40, 40, seed=5)
    shifted = tiny_colorizer.colorize(photo, reference=ref)
    col = tiny_colorizer
    L = col.luminance(col.read_photo(photo).pixels)
    raw = hints.palette_shift(col.predict_raw_averaged([L], None, 1)[0], hints.reference_hint(ref)[:-1], col.temperature,
                              col.log_prior, col.prior_power)
    assert np.array_equal(np.asarray(shifted), np.asarray(col.render(L, col.decode(raw[None])[0])))
    assert not np.array_equal(np.asarray(shifted), np.asarray(plain))


def test_pixel_points_are_pixels_of_the_photo_not_of_the_working_grid(tiny_colorizer):
    """A model without hint inputs spreads points on its working grid (64 px short side here):
    a pixel point of a 240 x 160 photo is placed where the same relative point is, and a pixel
    beyond the working grid but inside the photo is accepted."""
    photo = make_photo(240, 160, seed=2)
    plain, blue = _ab(tiny_colorizer.colorize(photo)), np.array(hints.colour_ab("#3050c0"))
    for x, y in ((200, 120), (30, 10)):
        by_pixel = tiny_colorizer.colorize(photo, hints=[Hint(x, y, "#3050c0")])
        by_fraction = tiny_colorizer.colorize(photo, hints=[Hint((x + 0.5) / 240, (y + 0.5) / 160, "#3050c0")])
        assert np.array_equal(np.asarray(by_pixel), np.asarray(by_fraction))
        gap = lambda ab: float(np.linalg.norm(ab[y - 2:y + 3, x - 2:x + 3].reshape(-1, 2).mean(0) - blue))  # noqa: E731
        assert gap(_ab(by_pixel)) < gap(plain) - 15  # the colour moved to the point, not elsewhere


def test_a_model_without_a_distribution_refuses_a_reference(tmp_path):
    path = tmp_path / "ab.pt"
    checkpoint.save(path, create_model("shallow_ab"), {"size": 64})
    col = Colorizer.load(path)
    photo = make_photo(64, 48)
    with pytest.raises(HintError, match="cannot follow a reference palette"):
        col.colorize(photo, reference=torch.zeros(hints.GLOBAL_DIM))
    col.colorize(photo, hints=[Hint(0.5, 0.5, "red")])  # points: any model


def test_hint_models_run_on_torch(hint_checkpoint):
    from tinct.backends import BackendError, export_onnx

    assert Colorizer.load(hint_checkpoint, backend="auto").backend == "torch"
    with pytest.raises(BackendError, match="torch backend"):
        Colorizer.load(hint_checkpoint, backend="onnx")
    model, meta = checkpoint.load_model(hint_checkpoint)
    with pytest.raises(BackendError, match="hint model cannot be exported"):
        export_onnx(model, meta, "unused.onnx")


# ---------------------------------------------------------------- the CLI
def _run(capsys, *argv) -> tuple[int, str]:
    code = main(["colorize", *map(str, argv), "-q"])
    return code, capsys.readouterr().err


def test_cli_hints_end_to_end(hint_checkpoint, tiny_checkpoint, tmp_path, capsys):
    make_photo(128, 96, seed=3).convert("L").save(tmp_path / "p.png")
    code, err = _run(capsys, tmp_path / "p.png", "--model", hint_checkpoint, "-o", tmp_path / "base.png")
    assert code == 0, err
    code, err = _run(capsys, tmp_path / "p.png", "--model", hint_checkpoint, "--hint", "0.25,0.5,red",
                     "--hint", "100,20,#3050c0", "-o", tmp_path / "hinted.png")
    assert code == 0, err
    base, hinted = _ab(Image.open(tmp_path / "base.png")), _ab(Image.open(tmp_path / "hinted.png"))
    assert (_mean_ab(hinted, 32, 48, 5) - _mean_ab(base, 32, 48, 5)) @ RED > 15
    # the same points from a hints file give the same image
    hints.save_hints(tmp_path / "h.json", Guide([Hint(0.25, 0.5, "red"), Hint(100, 20, "#3050c0")]), photo_size=(128, 96))
    code, err = _run(capsys, tmp_path / "p.png", "--model", hint_checkpoint, "--hints", tmp_path / "h.json",
                     "-o", tmp_path / "file.png")
    assert code == 0, err
    assert np.abs(np.asarray(Image.open(tmp_path / "file.png"), dtype=int)
                  - np.asarray(Image.open(tmp_path / "hinted.png"), dtype=int)).max() <= 1
    make_photo(64, 64, seed=5).save(tmp_path / "ref.png")
    code, err = _run(capsys, tmp_path / "p.png", "--model", hint_checkpoint, "--reference", tmp_path / "ref.png",
                     "-o", tmp_path / "ref-out.png")
    assert code == 0, err


@pytest.mark.parametrize("value, says", [("0.5,0.5,blurple", "unknown colour 'blurple'"), ("0.5", "expected X,Y,COLOUR")])
def test_cli_bad_hint_is_a_usage_error(tmp_path, capsys, value, says):
    with pytest.raises(SystemExit) as e:
        main(["colorize", str(tmp_path / "p.png"), "--hint", value])
    assert e.value.code == 2 and says in capsys.readouterr().err


@pytest.mark.parametrize("args, code, says", [
    (["--hint", "5000,10,red"], 1, "outside the 64x48 photo"),
    (["--hints", "missing.json"], 2, "no such hints file"),
    (["--reference", "nothing.jpg"], 2, "reference"),
    (["--hint-size", "100", "--hint", "1,1,red"], 2, "point size"),
])
def test_cli_bad_hints_are_clear_errors(hint_checkpoint, tmp_path, capsys, args, code, says):
    make_photo(64, 48).save(tmp_path / "p.png")
    got, err = _run(capsys, tmp_path / "p.png", "--model", hint_checkpoint, "-o", tmp_path / "o.png", *args)
    assert got == code and says in err and "Traceback" not in err


def test_cli_hints_for_a_model_without_hint_inputs(tiny_checkpoint, tmp_path, capsys):
    make_photo(64, 48).save(tmp_path / "p.png")
    code, err = _run(capsys, tmp_path / "p.png", "--model", tiny_checkpoint, "--hint", "0.5,0.5,#3050c0", "-o", tmp_path / "o.png")
    assert code == 0, err
    ab = _ab(Image.open(tmp_path / "o.png"))[22:27, 30:35].reshape(-1, 2).mean(0)
    assert np.linalg.norm(ab - np.array(hints.colour_ab("#3050c0"))) < 8
    checkpoint.save(tmp_path / "ab.pt", create_model("shallow_ab"), {"size": 64})
    make_photo(32, 32, seed=3).save(tmp_path / "ref.png")
    code, err = _run(capsys, tmp_path / "p.png", "--model", tmp_path / "ab.pt", "--reference", tmp_path / "ref.png",
                     "-o", tmp_path / "o2.png")
    assert code == 2 and "cannot follow a reference palette" in err and "Traceback" not in err
    assert not (tmp_path / "o2.png").exists()


def test_cli_per_photo_hints_files_in_a_folder(hint_checkpoint, tmp_path, capsys):
    photos = tmp_path / "photos"
    (photos / "sub").mkdir(parents=True)
    for name in ("a.png", "b.png", "sub/c.png"):
        make_photo(128, 96, seed=3).convert("L").save(photos / name)
    hints.save_hints(photos / "a.hints.json", Guide([Hint(0.25, 0.5, "red")]))  # beside the photo
    hints.save_hints(photos / "sub" / "c.hints.json", Guide([Hint(0.25, 0.5, "red")]))
    code, err = _run(capsys, photos, "-r", "--model", hint_checkpoint, "--hints-dir", photos, "-o", tmp_path / "out")
    assert code == 0, err
    a, b, c = (_ab(Image.open(tmp_path / "out" / n)) for n in ("a.png", "b.png", "sub/c.png"))
    assert (_mean_ab(a, 32, 48, 5) - _mean_ab(b, 32, 48, 5)) @ RED > 15  # b has no file: no hints
    assert np.abs(a - c).mean() < 0.5
    # a bad file fails its photo alone (exit 1), naming the file
    (photos / "b.hints.json").write_text("{oops")
    code, err = _run(capsys, photos, "-r", "--model", hint_checkpoint, "--hints-dir", photos, "-o", tmp_path / "out2")
    assert code == 1 and "b.hints.json: not JSON" in err and "2 colorized, 1 failed" in err
    # a hints dir with no file for any photo warns
    code, err = _run(capsys, photos / "sub", "--model", hint_checkpoint, "--hints-dir", tmp_path, "-o", tmp_path / "out3")
    assert code == 0 and "no photo has a hints file" in err
