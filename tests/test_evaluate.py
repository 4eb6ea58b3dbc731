"""tinct evaluate: inputs, baselines, reports, determinism, end to end through the CLI."""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from conftest import make_photo
from tinct import checkpoint, color, evaluate, metrics, report
from tinct.cli import main
from tinct.io import Photo


def _write_photos(folder: Path) -> None:
    """Three small colourful photos, one in a sub-folder, of different shapes."""
    (folder / "sub").mkdir(parents=True)
    for i, (w, h) in enumerate([(56, 40), (48, 48), (40, 64)]):
        make_photo(w, h, seed=i).save(folder / ("sub" if i == 2 else "") / f"photo{i}.png")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    _write_photos(folder)
    return folder


@pytest.fixture
def tiny_model(tiny_checkpoint) -> Path:
    """effunet_bins313 with random weights, working size 64 (conftest)."""
    return tiny_checkpoint


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# ----------------------------------------------------------------- inputs and baselines
def test_load_truth_crops_to_a_centre_square(data):
    truth = evaluate.load_truth(data / "photo0.png", crop=32)
    assert truth.shape == (32, 32, 3) and truth.dtype == np.float32
    assert evaluate.load_truth(data / "photo0.png").shape == (40, 56, 3)


def test_gray_input_keeps_lightness_and_has_no_colour(data):
    truth = evaluate.load_truth(data / "photo1.png")
    L = color.rgb_to_lab(truth)[..., 0]
    gray = color.grey(truth)
    assert (gray[..., 0] == gray[..., 1]).all() and (gray[..., 1] == gray[..., 2]).all()
    np.testing.assert_allclose(color.rgb_to_lab(gray)[..., 0], L, atol=0.05)
    np.testing.assert_array_equal(gray, color.neutral_from_l(L))


def test_baselines(data):
    truth = evaluate.load_truth(data / "photo1.png")
    gray = Photo(color.grey(truth), None, "p", True)
    models = evaluate.load_models(["gray", "mean-ab"])
    out_gray, out_mean = models["gray"](gray), models["mean-ab"](gray)
    assert metrics.colourfulness(out_gray) == 0.0  # the gray baseline has CF 0
    ab = color.rgb_to_lab(out_mean)[..., 1:]
    np.testing.assert_allclose(np.median(ab.reshape(-1, 2), 0), evaluate.MEAN_AB, atol=1.5)
    for out in (out_gray, out_mean):  # 8-bit steps, like every model's output
        np.testing.assert_array_equal(out * 255, np.round(out * 255))


def test_load_models_rejects_duplicates_and_missing_checkpoints(tmp_path):
    with pytest.raises(evaluate.UsageError, match="twice"):
        evaluate.load_models(["gray", "gray"])
    with pytest.raises(checkpoint.CheckpointError):
        evaluate.load_models([str(tmp_path / "nope.pt")])


# ----------------------------------------------------------------- summaries
def _results_with_perfect_model() -> report.Results:
    res = report.Results(models=["perfect", "other"], photos=["a.png", "b.png"], pids=["p0000", "p0001"])
    for photo in res.photos:
        for m, psnr in (("perfect", math.inf), ("other", 20.0)):
            row = {"photo": photo, "model": m, "psnr": psnr, "ssim": 1.0 if m == "perfect" else 0.5,
                   "auc_ab": 1.0, "cf": 10.0, "cf_gt": 10.0, "dcf": 0.0, "ciede2000": 0.0,
                   "hist_intersection": 1.0, "top1": 1, "top1_gt": 1, "top1_agree": 1, "top1_conf_gt": 0.5,
                   "variety": 0.1, "variety_gt": 0.2, "chroma": 15.0, "chroma_gt": 16.0}
            res.rows.append(row)
    res.seconds = {"perfect": [0.01, 0.02], "other": [0.03, 0.03]}
    res.frechet = {"perfect": 0.0, "other": 3.0}
    return res


def test_summary_caps_infinite_psnr_and_marks_the_best():
    summary = report.summarize(_results_with_perfect_model())
    assert summary["models"]["perfect"]["psnr"]["mean"] == report.PSNR_CAP
    assert summary["models"]["perfect"]["psnr"]["ci95"] == [report.PSNR_CAP, report.PSNR_CAP]
    assert summary["best"]["psnr"] == ["perfect"] and summary["best"]["frechet"] == ["perfect"]
    assert summary["best"]["auc_ab"] == ["perfect", "other"]  # ties are all marked
    assert "cf" not in summary["best"]  # colourfulness has no better direction
    md = report.summary_markdown(summary)
    assert "| perfect | **100.00** [100.00, 100.00]" in md
    json.dumps(report._json_safe(summary), allow_nan=False)


def test_bootstrap_interval_is_deterministic_and_brackets_the_mean():
    v = np.random.default_rng(0).normal(5, 1, 50)
    lo, hi = report.bootstrap_ci(v)
    assert lo < v.mean() < hi and (lo, hi) == report.bootstrap_ci(v)
    assert report.bootstrap_ci(np.array([2.0])) == (2.0, 2.0)


# ----------------------------------------------------------------- end to end
def test_cli_evaluate_end_to_end(data, tiny_model, tmp_path):
    out = tmp_path / "report"
    models = ["gray", "mean-ab", str(tiny_model)]
    argv = ["evaluate", "--data", str(data), "--out", str(out), "-q"]
    for m in models:
        argv += ["--model", m]
    assert main(argv) == 0
    for name in ("metrics.csv", "timing.csv", "summary.md", "summary.json", "bars.png", "boxes.png", "gallery.html"):
        assert (out / name).is_file(), name

    rows = _read_csv(out / "metrics.csv")
    assert [(r["photo"], r["model"]) for r in rows] == [(p, m) for p in ("photo0.png", "photo1.png", "sub/photo2.png")
                                                        for m in models]
    for r in rows:
        assert 0 <= float(r["auc_ab"]) <= 1 and -1 <= float(r["ssim"]) <= 1 and r["top1_agree"] in ("0", "1")
        assert float(r["dcf"]) == pytest.approx(abs(float(r["cf"]) - float(r["cf_gt"])), abs=1e-5)
        if r["model"] == "gray":
            assert float(r["cf"]) == 0.0 and float(r["variety"]) == 0.0  # neutral: no variety (docs/EVALUATION.md)
        assert 0 <= float(r["variety"]) <= 1 and 0 <= float(r["variety_gt"]) <= 1 and float(r["chroma"]) >= 0
    for p in ("photo0.png", "photo1.png", "sub/photo2.png"):  # the original's confidence: one value per photo
        confs = {r["top1_conf_gt"] for r in rows if r["photo"] == p}
        assert len(confs) == 1 and 0 < float(confs.pop()) <= 1
    assert len(_read_csv(out / "timing.csv")) == 9

    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["models"]) == models and summary["n_photos"] == 3
    md = (out / "summary.md").read_text()
    assert all(f"| {m} |" in md for m in models)
    assert "## Medians over photos" in md and "| originals |" in md
    med = summary["medians"]
    gt = [float(r["variety_gt"]) for r in rows if r["model"] == "gray"]
    assert med["<originals>"]["variety"]["median"] == pytest.approx(float(np.median(gt)))
    assert med["gray"]["variety"]["median"] == 0.0 and set(summary["originals"]) == {"cf", "variety", "chroma"}
    assert "variety" in summary["paired"]["models"]["mean-ab"]

    # The gallery shows every model's output for every photo, by relative paths that exist.
    page = (out / "gallery.html").read_text()
    srcs = set(re.findall(r'src="([^"]+)"', page))
    for i in range(3):
        expected = {f"gallery/p{i:04d}_{k}.jpg" for k in ("input", "truth", "m0", "m1", "m2")}
        assert expected <= srcs
    assert all(not s.startswith("/") and (out / s).is_file() for s in srcs)


def test_evaluate_is_deterministic(data, tiny_model, tmp_path):
    outs = []
    for k in range(2):
        out = tmp_path / f"run{k}"
        argv = ["evaluate", "--data", str(data), "--crop", "32", "--out", str(out), "-q",
                "--model", "gray", "--model", "mean-ab", "--model", str(tiny_model)]
        assert main(argv) == 0
        outs.append(out)
    assert (outs[0] / "metrics.csv").read_bytes() == (outs[1] / "metrics.csv").read_bytes()
    rows = _read_csv(outs[0] / "metrics.csv")
    assert len(rows) == 9
    s0, s1 = (json.loads((o / "summary.json").read_text()) for o in outs)
    for m in s0["models"]:  # everything but the runtime repeats exactly
        for col in s0["models"][m]:
            if col != "ms_per_photo":
                assert s0["models"][m][col] == s1["models"][m][col]


@pytest.mark.parametrize("argv, message", [
    (["--model", "gray"], "no photos"),
    (["--model", "gray", "--model", "gray"], "twice"),
    (["--model", "missing.pt"], "cannot load model"),
])
def test_cli_evaluate_usage_errors(tmp_path, capsys, argv, message):
    empty = tmp_path / "empty"
    empty.mkdir()
    if "no photos" not in message:
        _write_photos(empty)
    assert main(["evaluate", "--data", str(empty), "--out", str(tmp_path / "r"), "-q", *argv]) == 2
    assert message in capsys.readouterr().err


def test_cli_evaluate_missing_folder(tmp_path, capsys):
    assert main(["evaluate", "--data", str(tmp_path / "nope"), "--model", "gray"]) == 2
    assert "no such folder" in capsys.readouterr().err


def test_unreadable_photo_is_reported_not_fatal(tmp_path, capsys):
    data = tmp_path / "d"
    _write_photos(data)
    (data / "broken.jpg").write_bytes(b"not a jpeg")
    assert main(["evaluate", "--data", str(data), "--model", "gray", "--out", str(tmp_path / "r"), "-q"]) == 1
    assert "broken.jpg" in capsys.readouterr().err
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["n_photos"] == 3 and len(summary["failures"]) == 1


def test_agreement_by_confidence_splits_top1_agreement():
    """Four photos, two under and two over confidence 0.4: per model, the per-bin means of
    top1_agree with their counts, read from metrics.csv text as from Results rows."""
    rows = []
    for photo, conf, a, b in (("p0", 0.1, 0, 1), ("p1", 0.3, 1, 1), ("p2", 0.5, 1, 0), ("p3", 1.0, 1, 1)):
        rows += [{"photo": photo, "model": "A", "top1_agree": str(a), "top1_conf_gt": str(conf)},
                 {"photo": photo, "model": "B", "top1_agree": b, "top1_conf_gt": conf}]
    split = report.agreement_by_confidence(rows, [0, 0.4, 1])
    assert split == {"A": [(0.5, 2), (1.0, 2)], "B": [(1.0, 2), (0.5, 2)]}
    assert report.agreement_by_confidence(rows, [0, 0.2, 0.9, 1])["A"][2] == (1.0, 1)  # the last bin holds 1
    assert math.isnan(report.agreement_by_confidence(rows, [0, 0.05, 1])["A"][0][0])  # an empty bin


def test_paired_differences_resample_photos():
    """B - A per photo, with an interval that brackets the mean difference; a model that is
    better on every photo gets an interval above 0, marked in summary.md."""
    res = report.Results(models=["A", "B"], photos=[f"p{i}" for i in range(20)])
    rng = np.random.default_rng(1)
    for photo in res.photos:
        base = {c: float(rng.normal(20, 3)) for c in report.METRIC_COLUMNS}
        for m, shift in (("A", 0.0), ("B", 0.5 + rng.uniform(0, 0.1))):
            res.rows.append({"photo": photo, "model": m, **{c: v + shift for c, v in base.items()}})
    res.seconds = {"A": [0.01] * 20, "B": [0.01] * 20}
    d = report.paired_differences(res, "A", "B")["psnr"]
    assert d["b"] - d["a"] == pytest.approx(d["diff"]) and 0.5 < d["diff"] < 0.6
    assert 0.5 <= d["ci95"][0] < d["diff"] < d["ci95"][1] <= 0.6
    assert d == report.paired_differences(res, "A", "B")["psnr"]  # fixed seed
    summary = report.summarize(res)
    assert summary["paired"]["reference"] == "A" and list(summary["paired"]["models"]) == ["B"]
    md = report.summary_markdown(summary)
    assert "## Paired differences from A" in md and "| B | **+0.5" in md


# ----------------------------------------------------------------- degraded inputs
def test_grey_input_degraded_is_seeded_per_photo(data):
    truth = evaluate.load_truth(data / "photo1.png")
    clean = evaluate.grey_input(truth, "photo1.png")
    assert clean.dtype == np.float32 and clean.ndim == 3  # unchanged without a degradation
    a = evaluate.grey_input(truth, "photo1.png", "old-print", seed=0)
    assert a.dtype == np.uint8 and a.shape == truth.shape[:2]
    assert np.array_equal(a, evaluate.grey_input(truth, "photo1.png", "old-print", seed=0))
    assert not np.array_equal(a, evaluate.grey_input(truth, "photo1.png", "old-print", seed=1))
    assert not np.array_equal(a, evaluate.grey_input(truth, "other.png", "old-print", seed=0))


def test_cli_evaluate_degrade(data, tmp_path, capsys):
    """--degrade changes what the models see, not the truth; a bad name is a usage error."""
    runs = {}
    for name, extra in (("clean", []), ("old", ["--degrade", "old-print", "--degrade-seed", "3"])):
        out = tmp_path / name
        assert main(["evaluate", "--data", str(data), "--out", str(out), "-q", "--model", "gray", *extra]) == 0
        runs[name] = _read_csv(out / "metrics.csv")
    for c, o in zip(runs["clean"], runs["old"]):
        assert c["cf_gt"] == o["cf_gt"] and c["variety_gt"] == o["variety_gt"]  # the same truth
        assert o["psnr"] != c["psnr"] and o["ssim"] != c["ssim"]  # another input
    cfg = json.loads((tmp_path / "old" / "summary.json").read_text())["config"]
    assert cfg["degrade"] == "old-print" and cfg["degrade_seed"] == 3
    assert main(["evaluate", "--data", str(data), "--out", str(tmp_path / "x"), "-q", "--model", "gray",
                 "--degrade", "new-print"]) == 2
    assert "old-print" in capsys.readouterr().err
