"""The colour-variety terms of a bin model's task (``task.terms.histogram`` and
``task.terms.variety``, issue 23): their values on known cases, their gradients, and the
total loss they add in a recipe."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from tinct import color, config, tasks
from tinct.models import create_model
from tinct.tasks.terms import hue_variety
from tinct.train import run_recipe

from test_train import FAST, photos  # noqa: F401  (the fixture)

ROOT = Path(__file__).resolve().parents[1]


def test_hue_variety_of_known_colourings():
    """One hue everywhere: 0; two opposite hues of equal chroma: 1; neutral: 0; the same
    value at any chroma."""
    one = torch.zeros(1, 2, 8, 8)
    one[:, 0] = 30
    two = one.clone()
    two[:, 0, :, 4:] = -30
    mixed = torch.zeros(1, 2, 8, 8)
    mixed[:, 0, :, :4], mixed[:, 1, :, 4:] = 20, 20  # a and b halves: 1 - |(10, 10)| / 20
    v = hue_variety(torch.cat([one, two, torch.zeros(1, 2, 8, 8), mixed, 3 * mixed]))
    assert v[0].item() == pytest.approx(0, abs=1e-3) and v[1].item() == pytest.approx(1, abs=1e-3)
    assert v[2].item() == pytest.approx(0, abs=1e-3)
    assert v[3].item() == pytest.approx(1 - 2**0.5 / 2, abs=1e-3) and v[4].item() == pytest.approx(v[3].item(), abs=1e-3)
    x = torch.zeros(2, 2, 4, 4, requires_grad=True)  # neutral: finite gradients (no 0/0)
    hue_variety(x).sum().backward()
    assert torch.isfinite(x.grad).all()


def _task(**terms):
    overrides = ["task.class_weights=none", "model.init=null", *(f"task.terms.{k}={v}" for k, v in terms.items())]
    cfg = config.load(ROOT / "recipes" / "default" / "4-variety.yaml", overrides)
    model = create_model(cfg.model.name, pretrained=False)
    return tasks.build(cfg.task, cfg.optim, model, 10, cfg.model.temperature, None)


def test_histogram_term_vanishes_on_the_true_histogram_and_pulls_towards_it():
    """KL(true || predicted histogram) is 0 when the mean predicted distribution is the
    photo's true histogram, positive when not, and its gradient lowers it."""
    task = _task(histogram=1.0, variety=0, l1=0, semantic=0)
    ab = torch.zeros(2, 2, 4, 4)
    ab[:, 0, :, :2], ab[:, 1, :, 2:] = 40, -40
    soft = color.soft_encode(ab, task.centers)
    batch = {"lab": torch.cat([torch.full((2, 1, 16, 16), 50.0), torch.zeros(2, 2, 16, 16)], 1)}
    exact = torch.log(soft.clamp_min(1e-12))  # softmax(log soft) = soft
    _, parts = task.terms(torch.tensor(0.0), exact, batch, color.normalize_ab(ab), soft)
    assert parts["hist"].item() == pytest.approx(0, abs=1e-5)
    logits = torch.zeros(2, soft.shape[1], 4, 4, requires_grad=True)  # uniform: far from the truth
    loss, parts = task.terms(torch.tensor(0.0), logits, batch, color.normalize_ab(ab), soft)
    assert parts["hist"].item() > 1.0
    loss.backward()
    with torch.no_grad():
        _, after = task.terms(torch.tensor(0.0), logits - 10 * logits.grad, batch, color.normalize_ab(ab), soft)
    assert after["hist"].item() < parts["hist"].item()


def test_variety_recipe_adds_its_terms_to_the_loss(photos, tmp_path):  # noqa: F811
    """recipes/default/4-variety.yaml trains; each step's logged loss is the CE plus the
    recipe's weighted terms (5 L1 + semantic + histogram + 2 variety)."""
    out = tmp_path / "run"
    run_recipe(ROOT / "recipes" / "default" / "4-variety.yaml",
               [*FAST, "data.scale=[1.0,1.0]", "task.terms.teacher_size=64", "train.threads=1"], str(photos / "train"), str(photos / "val"), out)
    with open(out / "train.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["step"] for r in rows] == ["1", "2"]
    for r in rows:
        p = {k: float(r[k]) for k in ("loss", "ce", "l1", "sem", "hist", "variety")}
        assert p["hist"] > 0 and p["variety"] >= 0
        assert p["loss"] == pytest.approx(p["ce"] + 5 * p["l1"] + p["sem"] + p["hist"] + 2 * p["variety"], rel=1e-4)
