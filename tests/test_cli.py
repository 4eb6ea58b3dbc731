"""`tinct colorize` and `tinct models` through the real command-line entry point."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tinct.cli import main
from conftest import make_photo


def _digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def mixed_folder(tmp_path):
    """3 good photos and 3 broken files: truncated JPEG, text renamed .png, zero bytes."""
    src = tmp_path / "in"
    src.mkdir()
    make_photo(64, 48, seed=1).convert("L").save(src / "a.jpg")
    make_photo(50, 70, seed=2).save(src / "b.png")
    make_photo(33, 33, seed=3).convert("L").save(src / "c.tif")
    full = src / "a.jpg"
    (src / "truncated.jpg").write_bytes(full.read_bytes()[: len(full.read_bytes()) // 3])
    (src / "text.png").write_text("this is not an image\n")
    (src / "zero.jpg").write_bytes(b"")
    return src


def test_folder_with_broken_files(mixed_folder, tmp_path, tiny_checkpoint, capsys):
    before = _digests(mixed_folder)
    out = tmp_path / "out"
    code = main(["colorize", str(mixed_folder), "-o", str(out), "--model", str(tiny_checkpoint)])
    err = capsys.readouterr().err
    assert code == 1
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png", "c.png"]
    for name, size in [("a.png", (64, 48)), ("b.png", (50, 70)), ("c.png", (33, 33))]:
        assert Image.open(out / name).size == size
    failures = [line for line in err.splitlines() if line.startswith("failed ")]
    assert len(failures) == 3
    assert any("truncated.jpg" in f and "truncated" in f.split(":", 1)[1] for f in failures)
    assert any("text.png" in f and "not an image" in f for f in failures)
    assert any("zero.jpg" in f and "empty file" in f for f in failures)
    assert "Traceback" not in err
    assert "3 colorized, 3 failed" in err
    assert _digests(mixed_folder) == before  # no input touched


def test_all_good_exit_zero_and_no_overwrite(tmp_path, tiny_checkpoint, capsys):
    src = tmp_path / "p.jpg"
    make_photo(40, 40).save(src)
    out = tmp_path / "out"
    args = ["colorize", str(src), "-o", str(out), "--model", str(tiny_checkpoint)]
    assert main(args) == 0
    result = out / "p.png"
    result.write_bytes(b"keep me")
    assert main(args) == 0  # existing output is skipped, not replaced
    assert result.read_bytes() == b"keep me"
    assert "exists (use --overwrite" in capsys.readouterr().err
    assert main(args + ["--overwrite"]) == 0
    assert Image.open(result).size == (40, 40)


def test_never_overwrites_an_input(tmp_path, tiny_checkpoint, capsys):
    src = tmp_path / "same.png"
    make_photo(20, 20).save(src)
    before = src.read_bytes()
    code = main(["colorize", str(src), "-o", str(tmp_path), "--model", str(tiny_checkpoint), "--overwrite"])
    assert code == 1
    assert "would replace an input" in capsys.readouterr().err
    assert src.read_bytes() == before


def test_glob_recursive_and_single_file_output(tmp_path, tiny_checkpoint):
    (tmp_path / "d" / "sub").mkdir(parents=True)
    make_photo(20, 20).save(tmp_path / "d" / "x.jpg")
    make_photo(20, 20).save(tmp_path / "d" / "sub" / "y.jpg")
    out = tmp_path / "o1"
    assert main(["colorize", str(tmp_path / "d" / "*.jpg"), "-o", str(out), "--model", str(tiny_checkpoint)]) == 0
    assert [p.name for p in out.iterdir()] == ["x.png"]
    out = tmp_path / "o2"
    assert main(["colorize", str(tmp_path / "d"), "-r", "-o", str(out), "--model", str(tiny_checkpoint), "--format", "jpg"]) == 0
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.jpg")) == ["sub/y.jpg", "x.jpg"]
    single = tmp_path / "named.jpg"
    assert main(["colorize", str(tmp_path / "d" / "x.jpg"), "-o", str(single), "--model", str(tiny_checkpoint)]) == 0
    assert Image.open(single).format == "JPEG"


@pytest.mark.parametrize("argv", [
    ["colorize"],
    ["colorize", "x.jpg", "--size", "7"],
    ["colorize", "x.jpg", "--saturation", "-1"],
    ["frobnicate"],
])
def test_usage_errors_exit_2(argv):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2


def test_nothing_to_do_and_bad_model_exit_2(tmp_path, capsys):
    assert main(["colorize", str(tmp_path / "missing.jpg")]) == 2
    img = tmp_path / "p.png"
    make_photo(8, 8).save(img)
    assert main(["colorize", str(img), "--model", str(tmp_path / "nope.pt")]) == 2
    err = capsys.readouterr().err
    assert "no such file" in err and "cannot load model" in err and "Traceback" not in err


def test_models_lists_default_and_architecture(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "default" in out and "effunet_bins313" in out


def test_console_script_runs(tmp_path):
    """The installed `tinct` entry point (what users type) colorizes with the bundled model."""
    src = tmp_path / "g.png"
    make_photo(48, 32).convert("L").save(src)
    exe = Path(sys.executable).with_name("tinct")
    r = subprocess.run([str(exe), "colorize", str(src), "-o", str(tmp_path / "out")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert Image.open(tmp_path / "out" / "g.png").size == (48, 32)


# ---------------------------------------------------------------- tinct serve's flags
SERVE_FLAGS = {"--max-job-mb": ("max_job_mb", "1800", 1800.0), "--header-timeout": ("header_timeout", "4", 4.0),
               "--body-timeout": ("body_timeout", "30", 30.0), "--max-connections": ("max_connections", "50", 50),
               "--vote-interval": ("vote_interval", "0.5", 0.5), "--votes-per-hour": ("votes_per_hour", "100", 100)}


def _serve_settings(monkeypatch, tmp_path, *flags: str):
    """The ServeSettings ``tinct serve FLAGS`` would run with (models and the server stubbed out)."""
    serve = pytest.importorskip("tinct.serve")
    seen = []
    monkeypatch.setattr(serve, "load_models", lambda specs, **options: {})
    monkeypatch.setattr(serve, "run", lambda settings, models: seen.append(settings))
    assert main(["serve", "--db", str(tmp_path / "votes.sqlite"), *flags]) == 0
    return seen[0]


def test_serve_limit_flags_reach_serve_settings(monkeypatch, tmp_path):
    flags = [x for flag, (_, text, _) in SERVE_FLAGS.items() for x in (flag, text)]
    settings = _serve_settings(monkeypatch, tmp_path, *flags, "--allowed-host", "a.example", "--allowed-host", "b.example")
    for flag, (field, _, value) in SERVE_FLAGS.items():
        assert getattr(settings, field) == value, flag
    assert settings.allowed_hosts == ["a.example", "b.example"]


def test_serve_flags_default_to_serve_settings_and_say_so(monkeypatch, tmp_path, capsys):
    from tinct.serve import ServeSettings

    settings, defaults = _serve_settings(monkeypatch, tmp_path), ServeSettings()
    for field, _, _ in SERVE_FLAGS.values():
        assert getattr(settings, field) == getattr(defaults, field), field
    assert settings.allowed_hosts == []
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag, (field, _, _) in SERVE_FLAGS.items():
        assert flag in text and f"(default {getattr(defaults, field):g})" in text, flag
    assert "--allowed-host HOST" in text


def test_serve_flag_out_of_range_is_a_usage_error(monkeypatch, tmp_path, capsys):
    serve = pytest.importorskip("tinct.serve")
    monkeypatch.setattr(serve, "run", lambda settings, models: pytest.fail("must not serve"))
    assert main(["serve", "--db", str(tmp_path / "v.sqlite"), "--max-connections", "3"]) == 2  # <= workers + queue
    assert "max_connections must exceed workers + queue" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["serve", "--body-timeout", "0"])
