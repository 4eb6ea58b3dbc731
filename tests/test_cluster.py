"""`tinct colorize --ray`: the same outputs and promises as the single-machine command, on a
local Ray instance of 2 CPUs (tinct.cluster, docs/SCALE.md).

The Ray tests share one instance per module (its start-up is seconds); the test that kills
a worker runs the real command in a child process, with its own instance, and is slow.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import make_photo
from tinct.cli import main

SRC = Path(__file__).resolve().parents[1] / "src"


def _env(**more) -> dict:
    return dict(os.environ, PYTHONPATH=str(SRC) + os.pathsep + os.environ.get("PYTHONPATH", ""), **more)


def _photos(folder: Path, n: int, w: int = 64, h: int = 48, bad: bool = True) -> list[str]:
    """``n`` good photos (grey JPEGs and colour PNGs, one in a sub-folder) and, with ``bad``,
    three broken files; returns the broken files' names."""
    (folder / "sub").mkdir(parents=True)
    for i in range(n):
        photo = make_photo(w + 3 * i, h + 2 * i, seed=i)
        if i % 2:
            photo.save(folder / f"c{i:02d}.png")
        else:
            photo.convert("L").save(folder / ("sub" if i == 0 else "") / f"g{i:02d}.jpg")
    if not bad:
        return []
    good = (folder / "g02.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (folder / "text.png").write_text("this is not an image\n")
    (folder / "zero.jpg").write_bytes(b"")
    return ["truncated.jpg", "text.png", "zero.jpg"]


def _pixels(folder: Path) -> dict[str, np.ndarray]:
    return {str(p.relative_to(folder)): np.asarray(Image.open(p)).astype(np.int16) for p in sorted(folder.rglob("*.png"))}


def _failures_csv(folder: Path) -> list[dict]:
    with open(folder / "failures.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.rglob("*") if p.name.endswith(".tmp")]


# ----------------------------------------------------------------- without Ray running
def test_single_machine_path_does_not_import_ray(tmp_path, tiny_checkpoint):
    """The plain command, run through, never imports Ray (nor tinct.cluster)."""
    src = tmp_path / "in"
    _photos(src, 2, bad=False)
    code = ("import sys; from tinct.cli import main; import tinct.batch; "
            f"rc = main(['colorize', {str(src)!r}, '-r', '-o', {str(tmp_path / 'out')!r}, '--model', "
            f"{str(tiny_checkpoint)!r}, '-q']); "
            "bad = sorted(m for m in sys.modules if m == 'ray' or m.startswith(('ray.', 'tinct.cluster'))); "
            "print(rc, bad); sys.exit(rc or bool(bad))")
    run = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert len(list((tmp_path / "out").rglob("*.png"))) == 2


def test_without_ray_says_how_to_install(tmp_path, tiny_checkpoint):
    """``sys.modules['ray'] = None`` makes ``import ray`` fail as if it were not installed."""
    src = tmp_path / "in"
    _photos(src, 1, bad=False)
    code = ("import sys; sys.modules['ray'] = None; from tinct.cli import main; "
            f"sys.exit(main(['colorize', {str(src)!r}, '-o', {str(tmp_path / 'out')!r}, '--ray']))")
    run = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tinct: error: --ray needs Ray")
    assert "pip install 'tinct[ray]'" in lines[0] and "Traceback" not in run.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("address", ["photos", "s3://bucket"])
def test_ray_address_that_looks_like_an_input_is_a_usage_error(address, capsys):
    with pytest.raises(SystemExit) as e:
        main(["colorize", "--ray", address, "x.jpg"])
    assert e.value.code == 2
    assert "put --ray after the inputs" in capsys.readouterr().err


def test_plan_uris_keeps_the_plain_plans_rules(tmp_path):
    """file:// inputs and outputs: the same jobs, skips and refusals as plan_colorize."""
    from tinct.batch import plan_colorize
    from tinct.cluster.storage import plan_uris

    src, out = tmp_path / "in", tmp_path / "out"
    _photos(src, 5)
    (src / ".hidden.jpg").write_bytes((src / "g02.jpg").read_bytes())
    out.mkdir()
    Image.new("RGB", (4, 4)).save(out / "c01.png")  # done already
    for recursive in (False, True):
        plain = plan_colorize([str(src)], out, recursive=recursive, shard_spec="1/2")
        uris = plan_uris([src.as_uri()], out.as_uri(), recursive=recursive, shard_spec="1/2")
        assert [(str(s), str(d)) for s, d in plain.jobs] == [(s.path, d.path) for s, d in uris.jobs]
        assert [str(s) for s, _ in uris.jobs] == [Path(s).as_uri() for s, _ in plain.jobs]
        assert len(uris.skipped) == len(plain.skipped)
    refused = plan_uris([src.as_uri()], src.as_uri(), fmt="jpg")
    assert any("would replace an input" in line for line in refused.refused)
    assert plan_uris([(tmp_path / "nothing").as_uri(), src.as_uri()], out.as_uri()).missing[0].endswith(
        "no such file or folder")


def test_unknown_scheme_is_one_line(tmp_path, capsys):
    pytest.importorskip("ray")  # (without it, --ray stops earlier: test_without_ray_says_how_to_install)
    code = main(["colorize", "nosuchscheme://bucket/photos", "-o", str(tmp_path / "out"), "--ray"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("tinct: error: nosuchscheme://bucket/photos")


def test_stale_temporaries_of_the_outputs_only_are_removed(tmp_path):
    from tinct.cluster.storage import ref_of, remove_stale_temporaries
    from tinct.io import temporary_prefix

    (tmp_path / f"{temporary_prefix('a.png')}k3j9x0qz.tmp").write_bytes(b"half")
    (tmp_path / f"{temporary_prefix('other.png')}k3j9x0qz.tmp").write_bytes(b"someone else's")
    (tmp_path / "a.png.tmp").write_bytes(b"not ours either")
    assert remove_stale_temporaries([ref_of(tmp_path / "a.png")]) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.png.k3j9x0qz.tmp", "a.png.tmp"]


def test_failures_csv_rows_and_worker_count():
    from tinct.cluster.driver import failures_table
    from tinct.cluster.worker import worker_size

    text = failures_table(["/a/b, c.jpg: empty file (0 bytes)", "odd line"]).decode()
    rows = list(csv.DictReader(text.splitlines()))
    assert rows == [{"input": "/a/b, c.jpg", "reason": "empty file (0 bytes)"}, {"input": "", "reason": "odd line"}]
    one = [{"CPU": 16.0}]
    assert worker_size(one, None, None, 0) == (1, 16.0)  # by default a worker per node, with all its CPUs
    assert worker_size(one, None, 1, 0) == (16, 1) and worker_size(one, None, 3, 0) == (5, 3)
    assert worker_size(one, 4, None, 0) == (4, 4.0) and worker_size(one, 32, None, 0) == (32, 1.0)
    assert worker_size([{"CPU": 8.0}, {"CPU": 16.0}], None, None, 0) == (3, 8.0)  # the smallest node's size
    assert worker_size([{"CPU": 16.0, "GPU": 2.0}], None, None, 0.5) == (4, 1.0)
    assert worker_size([{"CPU": 0.0}, {"CPU": 8.0}], None, None, 0) == (1, 8.0)  # a head with --num-cpus=0 takes none
    for nodes, workers, cpus, gpus in (([{"CPU": 2.0}], None, 4, 0), ([{"CPU": 8.0}, {"CPU": 8.0}], 1, None, 0),
                                       ([{"CPU": 16.0}], None, None, 1)):
        with pytest.raises(ValueError, match="no node can hold a worker"):  # else the run would wait for ever
            worker_size(nodes, workers, cpus, gpus)


def test_batches_cover_every_job_once_and_shrink_at_the_end():
    from tinct.cluster.driver import chunked

    jobs = list(range(203))
    for workers in (1, 2, 5):
        sizes = [len(c) for c in chunked(jobs, 16, workers)]
        assert [j for c in chunked(jobs, 16, workers) for j in c] == jobs
        assert max(sizes) == 16
        if workers == 1:
            assert sizes[:-1] == [16] * 12  # one worker: nobody to wait for at the end
        else:
            assert sizes[-2 * workers:] == [1] * (2 * workers) and sizes == sorted(sizes, reverse=True)


# ----------------------------------------------------------------- on a local Ray instance
@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    os.environ.setdefault("RAY_worker_niceness", "0")  # as tinct's own local instance (tinct.cluster.driver.connect)
    ray.init(num_cpus=2, object_store_memory=300_000_000, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_same_outputs_failures_listed_and_rerun_skips(ray_local, tmp_path, tiny_checkpoint, capsys):
    src = tmp_path / "in"
    bad = _photos(src, 9)
    plain, on_ray = tmp_path / "plain", tmp_path / "ray"
    common = ["-r", "--model", str(tiny_checkpoint), "-q"]
    assert main(["colorize", str(src), "-o", str(plain), *common]) == 1
    capsys.readouterr()
    assert main(["colorize", str(src), "-o", str(on_ray), *common, "--ray", "--ray-batch", "3"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "9 colorized, 3 failed" in err

    a, b = _pixels(plain), _pixels(on_ray)
    assert sorted(a) == sorted(b) and len(a) == 9 and "sub/g00.png" in b  # the layout kept
    assert max(int(np.abs(a[k] - b[k]).max()) for k in a) <= 1
    rows = _failures_csv(on_ray)
    assert sorted(Path(r["input"]).name for r in rows) == sorted(bad)
    assert all(r["reason"] for r in rows)
    for name in bad:
        assert sum(line.startswith("failed ") and name in line for line in err.splitlines()) == 1
    assert not _leftovers(on_ray)

    done = {p: p.stat().st_mtime_ns for p in on_ray.rglob("*.png")}
    assert main(["colorize", str(src), "-o", str(on_ray), *common, "--ray"]) == 1
    err = capsys.readouterr().err
    assert "0 colorized, 3 failed, 9 skipped" in err
    assert {p: p.stat().st_mtime_ns for p in on_ray.rglob("*.png")} == done
    assert len(_failures_csv(on_ray)) == 3  # this run's failures: the broken files, again


@pytest.mark.slow
def test_file_uris_in_and_out(ray_local, tmp_path, tiny_checkpoint, capsys):
    src = tmp_path / "in"
    bad = _photos(src, 5)
    plain, on_ray = tmp_path / "plain", tmp_path / "ray"
    assert main(["colorize", str(src), "-o", str(plain), "--model", str(tiny_checkpoint), "-q"]) == 1
    code = main(["colorize", src.as_uri(), "-o", on_ray.as_uri(), "--model", str(tiny_checkpoint), "-q", "--ray",
                 "--format", "png"])
    err = capsys.readouterr().err
    assert code == 1 and "4 colorized, 3 failed" in err  # g00 is in sub/, not searched without -r
    a, b = _pixels(plain), _pixels(on_ray)
    assert sorted(a) == sorted(b) and len(b) == 4
    assert max(int(np.abs(a[k] - b[k]).max()) for k in a) <= 1
    rows = _failures_csv(on_ray)
    assert sorted(r["input"] for r in rows) == sorted((src / name).as_uri() for name in bad)
    assert any("empty file" in r["reason"] for r in rows) and any("not an image" in r["reason"] for r in rows)
    assert not _leftovers(on_ray)


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                children.setdefault(int((p / "stat").read_text().rsplit(")", 1)[1].split()[1]), []).append(int(p.name))
            except (OSError, ValueError, IndexError):
                continue
    found, todo = [], [pid]
    while todo:
        for kid in children.get(todo.pop(), []):
            found.append(kid)
            todo.append(kid)
    return found


def _ray_workers(pid: int) -> list[int]:
    """The processes of the actors colorizing under the command ``pid`` (Ray names them ray::ColorizeBatch)."""
    found = []
    for kid in _descendants(pid):
        try:
            if b"ray::ColorizeBatch" in Path(f"/proc/{kid}/cmdline").read_bytes():
                found.append(kid)
        except OSError:
            continue
    return found


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the worker processes through /proc")
def test_worker_killed_mid_run_every_photo_done_once(tmp_path, tiny_checkpoint):
    pytest.importorskip("ray")
    src, out = tmp_path / "in", tmp_path / "out"
    bad = _photos(src, 20, w=900, h=700)  # big enough that a batch takes a few seconds
    # 23 files, 2 workers, at most 12 a batch (5, 4, 3 ... as they shrink), two batches given
    # to each worker. The workers are killed once 4 outputs exist, when a batch at work has
    # written some of its photos, so it is retried. Ray may start the second actor late (it did
    # on a loaded CI machine): then the one running worker is killed, the same test of a retry.
    cmd = [sys.executable, "-m", "tinct", "colorize", str(src), "-r", "-o", str(out), "--model", str(tiny_checkpoint),
           "-q", "--backend", "torch", "--ray", "--ray-cpus", "2", "--workers", "2", "--ray-batch", "12"]
    proc = subprocess.Popen(cmd, env=_env(OMP_NUM_THREADS="1"), stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 600
        while len(list(out.rglob("*.png"))) < 4 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        workers = _ray_workers(proc.pid)
        if proc.poll() is not None or not workers:
            proc.kill()
            pytest.fail(f"the run ended (or had no worker: {workers}) before the kill:\n{proc.communicate()[1][-3000:]}")
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
        before = {p.name: p.stat().st_ino for p in out.rglob("*.png")}
        assert len(before) < 20
        err = proc.communicate(timeout=600)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, err
    assert "20 colorized, 3 failed" in err and "Traceback" not in err
    outputs = sorted(p.name for p in out.rglob("*.png"))
    assert len(outputs) == 20
    for p in out.rglob("*.png"):
        Image.open(p).load()  # whole files
    assert not _leftovers(out)
    assert sorted(Path(r["input"]).name for r in _failures_csv(out)) == sorted(bad)
    # Outputs written before the kill were not written again by the retried batch (a rewrite
    # through a temporary and a rename gives a new inode).
    after = {p.name: p.stat().st_ino for p in out.rglob("*.png")}
    assert {name: after[name] for name in before} == before


def test_a_worker_that_cannot_load_the_model_says_why():
    from tinct.cluster.worker import ColorizeBatch, Settings

    assert ColorizeBatch(Settings(model="default")).ready() == ""
    why = ColorizeBatch(Settings(model="/no/such/model.pt")).ready()
    assert "/no/such/model.pt" in why and "\n" not in why  # the driver raises RayRunError with it: one line
