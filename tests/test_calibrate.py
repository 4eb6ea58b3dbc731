"""`tinct calibrate`: sweeps decoding settings on photos, chooses by its stated rule, and
writes the chosen decoding into the checkpoint that then colorizes with it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_photo

from tinct import Colorizer, calibrate, checkpoint
from tinct.cli import main
from tinct.decode import decode_ab, decoding_prior
from tinct.models import create_model


@pytest.fixture(scope="module")
def val(tmp_path_factory):
    root = tmp_path_factory.mktemp("val")
    for i in range(3):
        make_photo(80, 64, seed=40 + i).save(root / f"v{i}.png")
    return root


def test_choose_follows_the_rule():
    rows = [{"psnr": 25.0, "cf": 20.0}, {"psnr": 24.0, "cf": 38.0}, {"psnr": 23.0, "cf": 41.0}, {"psnr": 22.0, "cf": 43.0}]
    assert calibrate.choose(rows, cf_truth=42.0, max_dcf=5.0)["psnr"] == 24.0  # most accurate of the colourful enough
    assert calibrate.choose(rows, cf_truth=42.0, max_dcf=1.5)["psnr"] == 23.0
    far = [{"psnr": 25.0, "cf": 10.0}, {"psnr": 24.0, "cf": 12.0}]
    assert calibrate.choose(far, cf_truth=42.0, max_dcf=5.0)["psnr"] == 24.0  # none close: the closest in CF


def test_sweep_measures_each_setting(tiny_checkpoint, val):
    """More chroma gain, more colourfulness: the sweep really decodes with each setting."""
    col = Colorizer.load(tiny_checkpoint, backend="torch")
    truths = [np.asarray(make_photo(64, 64, seed=s), dtype=np.float32) / 255 for s in (1, 2)]
    grid = calibrate.settings([64], [0.38], [False], [(1.0,)], [1.0, 3.0])
    rows = calibrate.sweep(col, truths, grid)
    assert [r["chroma_gain"] for r in rows] == [1.0, 3.0]
    assert rows[1]["cf"] > rows[0]["cf"] > 0


def test_cli_calibrate_writes_the_chosen_decoding(tiny_checkpoint, val, tmp_path, capsys):
    out = tmp_path / "calibrated.safetensors"
    argv = ["calibrate", str(tiny_checkpoint), "--data", str(val), "--crop", "64", "--sizes", "64", "--flip", "0", "1",
            "--scales", "1", "0.8,1.4", "--gains", "1.0", "2.5", "--max-dcf", "1000", "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    chosen = [line for line in printed.splitlines() if line.endswith("<- chosen")]
    assert len(chosen) == 1 and len([ln for ln in printed.splitlines() if ln[:2] == "64"]) == 8  # 2 x 2 x 2 settings
    psnrs = [float(ln.split()[6]) for ln in printed.splitlines() if ln[:2] == "64"]
    assert float(chosen[0].split()[6]) == max(psnrs)  # every setting within --max-dcf 1000: the best PSNR
    meta = checkpoint.read(out)["meta"]
    fields = chosen[0].split()
    assert meta["flip"] == bool(int(fields[2])) and meta["chroma_gain"] == float(fields[4])
    assert meta["scales"] == [float(v) for v in fields[3].split(",")] and meta["size"] == 64
    assert meta["calibration"]["photos"] == 3 and "highest PSNR" in meta["calibration"]["rule"]
    col = Colorizer.load(out, backend="torch")
    assert (col.flip, col.chroma_gain, list(col.scales)) == (meta["flip"], meta["chroma_gain"], meta["scales"])
    assert checkpoint.read(out)["state_dict"].keys() == checkpoint.read(tiny_checkpoint)["state_dict"].keys()


def test_cli_calibrate_reports_missing_data(tiny_checkpoint, tmp_path, capsys):
    assert main(["calibrate", str(tiny_checkpoint), "--data", str(tmp_path / "nowhere")]) == 2
    assert "nowhere" in capsys.readouterr().err


def test_choose_under_a_chroma_constraint_and_for_variety():
    rows = [{"psnr": 25.0, "cf": 40.0, "chroma": 10.0, "variety": 0.05},
            {"psnr": 24.0, "cf": 41.0, "chroma": 16.5, "variety": 0.08},
            {"psnr": 23.0, "cf": 42.0, "chroma": 17.0, "variety": 0.12}]
    assert calibrate.choose(rows, 42.0, 5.0, chroma_truth=17.0, max_chroma_gap=0.1)["psnr"] == 24.0
    assert calibrate.choose(rows, 42.0, 5.0, chroma_truth=17.0, max_chroma_gap=0.1, maximize="variety")["psnr"] == 23.0
    assert calibrate.choose(rows, 42.0, 5.0)["psnr"] == 25.0  # no chroma constraint: as before
    with pytest.raises(ValueError):
        calibrate.choose(rows, 42.0, 5.0, maximize="cf")


# ----------------------------------------------------------------- prior-corrected decoding
def test_decoding_prior_is_a_positive_distribution():
    counts = np.zeros(313)
    counts[:10] = np.arange(1, 11)
    p = decoding_prior(counts)
    assert p.shape == (313,) and p.min() > 0 and p.sum() == pytest.approx(1.0)
    assert p[9] > p[0] > p[200]  # frequent bins keep more weight; bins never seen still have some


def test_prior_power_divides_the_distribution_by_the_prior():
    spec = create_model("effunet_bins313", pretrained=False).spec
    y = torch.randn(2, 313, 4, 5)
    base = decode_ab(y, spec, 0.38)
    assert torch.equal(decode_ab(y, spec, 0.38, log_prior=torch.zeros(313), prior_power=0.0), base)
    flat = torch.full((313,), -np.log(313.0))
    assert torch.allclose(decode_ab(y, spec, 0.38, log_prior=flat, prior_power=0.5), base, atol=1e-5)  # uniform: no change
    # A prior heavy on one bin pulls the decoded colour away from that bin's centre.
    k = 150
    heavy = torch.full((313,), -8.0)
    heavy[k] = 0.0
    y = torch.zeros(1, 313, 1, 1)
    y[0, k] = 3.0
    centre = torch.from_numpy(calibrate_centres()[k]).view(1, 2, 1, 1)
    d0 = (decode_ab(y, spec, 1.0) - centre).norm()
    d1 = (decode_ab(y, spec, 1.0, log_prior=heavy, prior_power=0.5) - centre).norm()
    assert d1 > d0
    with pytest.raises(ValueError, match="prior"):
        decode_ab(y, spec, 1.0, prior_power=0.5)


def calibrate_centres():
    from tinct import color

    return color.bin_centers("313")


def test_sweep_over_prior_powers_reuses_the_network_and_reports_variety(tiny_checkpoint):
    col = Colorizer.load(tiny_checkpoint, backend="torch")
    col.log_prior = torch.from_numpy(np.log(decoding_prior(np.arange(313.0) ** 2))).float()
    truths = [np.asarray(make_photo(64, 64, seed=s), dtype=np.float32) / 255 for s in (1, 2)]
    grid = calibrate.settings([64], [0.38], [False], [(1.0,)], [1.0], prior_powers=[0.0, 0.6])
    rows = calibrate.sweep(col, truths, grid)
    assert [r["prior_power"] for r in rows] == [0.0, 0.6]
    assert rows[0]["psnr"] != rows[1]["psnr"] and all(0 <= r["variety"] <= 1 and r["chroma"] >= 0 for r in rows)


def test_cli_calibrate_prior_powers(tiny_checkpoint, val, tmp_path, capsys):
    argv = ["calibrate", str(tiny_checkpoint), "--data", str(val), "--crop", "64", "--sizes", "64", "--flip", "0",
            "--gains", "1.0", "--prior-powers", "0", "0.5"]
    assert main(argv) == 2 and "--prior-data" in capsys.readouterr().err  # the tiny model carries no prior
    out = tmp_path / "prior.safetensors"
    assert main(argv + ["--prior-data", str(val), "--prior-side", "64", "--max-dcf", "1000", "--maximize", "variety",
                        "--max-chroma-gap", "100", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "median variety" in printed and "variety chroma" in printed
    chosen = next(ln for ln in printed.splitlines() if ln.endswith("<- chosen")).split()
    meta = checkpoint.read(out)["meta"]
    assert meta["prior_power"] == float(chosen[5]) and "median variety" in meta["calibration"]["rule"]
    col = Colorizer.load(out, backend="torch")
    assert col.prior_power == meta["prior_power"]
    if meta["prior_power"]:
        assert len(meta["ab_prior"]) == 313 and col.log_prior.shape == (313,)


def test_colorizer_decodes_with_the_checkpoints_prior(tmp_path, tiny_checkpoint):
    model, meta = checkpoint.load_model(tiny_checkpoint)
    prior = decoding_prior(np.arange(313.0) ** 2)
    path = tmp_path / "p.safetensors"
    checkpoint.save(path, model, meta | {"prior_power": 0.5, "ab_prior": prior.tolist()})
    col, base = Colorizer.load(path, backend="torch"), Colorizer.load(tiny_checkpoint, backend="torch")
    y = torch.randn(1, 313, 4, 4)
    expected = decode_ab(y, col.spec, 0.38, log_prior=torch.from_numpy(np.log(prior)).float(), prior_power=0.5)
    assert torch.allclose(col.decode(y), expected) and not torch.allclose(col.decode(y), base.decode(y))
    checkpoint.save(path, model, meta | {"prior_power": 0.5})
    with pytest.raises(ValueError, match="ab_prior"):
        Colorizer.load(path, backend="torch")
