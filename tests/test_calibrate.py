"""`tinct calibrate`: sweeps decoding settings on photos, chooses by its stated rule, and
writes the chosen decoding into the checkpoint that then colorizes with it."""

from __future__ import annotations

import numpy as np
import pytest

from tinct import Colorizer, calibrate, checkpoint
from tinct.cli import main

from conftest import make_photo


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
    psnrs = [float(ln.split()[5]) for ln in printed.splitlines() if ln[:2] == "64"]
    assert float(chosen[0].split()[5]) == max(psnrs)  # every setting within --max-dcf 1000: the best PSNR
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
