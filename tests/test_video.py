"""`tinct video`: containers, audio, truncated files, temporal smoothing and the flicker metric."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest
from PIL import Image

from tinct import color
from tinct.cli import main
from tinct.metrics import MotionEstimator, flicker, lab_of, video_flicker
from tinct.video import FrameColorizer, TemporalSmoother, read_frames


def shapes_frames(n: int, w: int = 64, h: int = 48, seed: int = 0) -> list[np.ndarray]:
    """Moving coloured shapes over a textured background, uint8 RGB frames."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    background = np.stack([40 + 30 * np.sin(x / 5.0), 90 + 40 * np.cos(y / 4.0), 150 + 50 * np.sin((x + y) / 7.0)], -1)
    background += rng.normal(0, 3, (h, w, 3))
    frames = []
    for i in range(n):
        f = background.copy()
        f[8:24, 4 + 2 * i:20 + 2 * i] = (230, 40, 30)  # red square moving right
        f[((x - (w - 12 - i)) ** 2 + (y - (12 + i)) ** 2) < 36] = (40, 200, 60)  # green disc moving down-left
        frames.append(np.clip(f, 0, 255).astype(np.uint8))
    return frames


def write_clip(path, frames, fps=12, audio: str | None = "aac", pix_fmt="yuv420p", faststart=False):
    """Encode frames (H.264) and a 440 Hz tone as long as the picture."""
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w", options={"movflags": "faststart"} if faststart else {}) as out:
        v = out.add_stream("libx264", rate=fps)
        v.width, v.height, v.pix_fmt = w, h, pix_fmt
        a = out.add_stream(audio, rate=44100, layout="mono") if audio else None
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            out.mux(v.encode(frame))
        out.mux(v.encode())
        if a:
            t = np.arange(44100 * len(frames) // fps) / 44100
            tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            for k in range(0, len(tone), 1024):
                chunk = av.AudioFrame.from_ndarray(tone[None, k:k + 1024], format="flt", layout="mono")
                chunk.sample_rate, chunk.pts = 44100, k
                out.mux(a.encode(chunk))
            out.mux(a.encode())


def probe(path) -> dict:
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        frames = sum(1 for _ in c.decode(v))
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        audio = [(s.codec_context.name, sum(f.samples for f in c.decode(s)) / s.codec_context.sample_rate)
                 for s in c.streams.audio]
        return {"frames": frames, "rate": v.average_rate, "size": (v.codec_context.width, v.codec_context.height),
                "codec": v.codec_context.name, "audio": audio}


@pytest.mark.parametrize("src_name, audio, dst_name", [("in.mp4", "aac", "out.mp4"), ("in.mkv", "pcm_s16le", "out.mp4"),
                                                       ("in.mp4", "aac", "out.mkv")])
def test_video_keeps_rate_size_and_audio(tmp_path, tiny_checkpoint, capsys, src_name, audio, dst_name):
    src, dst = tmp_path / src_name, tmp_path / dst_name
    write_clip(src, shapes_frames(24), fps=12, audio=audio)
    assert main(["video", str(src), "-o", str(dst), "--model", str(tiny_checkpoint), "-q"]) == 0
    assert "Traceback" not in capsys.readouterr().err
    got, want = probe(dst), probe(src)
    assert got["frames"] == want["frames"] == 24
    assert float(got["rate"]) == pytest.approx(12, rel=1e-3)  # Matroska keeps times in ms: 11.998 from mkv
    assert got["size"] == (64, 48) and got["codec"] == "h264"
    assert len(got["audio"]) == 1
    assert got["audio"][0][1] == pytest.approx(want["audio"][0][1], abs=0.1)  # seconds of sound
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([src_name, dst_name])  # no temporary left
    colours = [lab_of(f)[..., 1:] for f in read_frames(dst)]
    assert max(float(np.abs(ab).mean()) for ab in colours) > 1  # colorized, not grey


def test_fewer_passes_a_frame_is_the_same_video_as_that_colorizer_gives(tmp_path):
    from tinct import Colorizer
    from tinct.video import FrameColorizer

    src, dst = tmp_path / "in.mp4", tmp_path / "out.mp4"
    write_clip(src, shapes_frames(4), audio=None, pix_fmt="yuv444p")
    assert main(["video", str(src), "-o", str(dst), "-q", "--scales", "0.8", "--flip", "off", "--smoothing", "0"]) == 0
    col = Colorizer.load("default")  # the bundled model: its scales and flip change its output (random weights' barely)
    own = FrameColorizer(col, smoothing=0.0)
    col_one = Colorizer.load("default")
    col_one.scales, col_one.flip = (0.8,), False
    one = FrameColorizer(col_one, smoothing=0.0)
    for got, rgb in zip(read_frames(dst), read_frames(src)):
        to_one = np.abs(got.astype(int) - one(rgb).astype(int)).mean()
        to_own = np.abs(got.astype(int) - own(rgb).astype(int)).mean()
        assert to_one < 5 and to_own > 3 * to_one, (to_one, to_own)  # one pass (H.264 loses ~3), not the model's four (~15 away)


def test_video_odd_size_without_audio(tmp_path, tiny_checkpoint):
    src, dst = tmp_path / "odd.mp4", tmp_path / "odd_out.mp4"
    write_clip(src, [f[:45, :63] for f in shapes_frames(6)], audio=None, pix_fmt="yuv444p")
    assert main(["video", str(src), "-o", str(dst), "--model", str(tiny_checkpoint), "-q", "--smoothing", "0.5"]) == 0
    got = probe(dst)
    assert got["frames"] == 6 and got["size"] == (63, 45) and got["audio"] == []


@pytest.mark.parametrize("name, faststart", [("cut.mp4", False), ("cut_faststart.mp4", True), ("cut.mkv", False)])
def test_truncated_video_one_line_error(tmp_path, tiny_checkpoint, capsys, name, faststart):
    full = tmp_path / ("full" + name[3:])
    write_clip(full, shapes_frames(40), audio="pcm_s16le" if name.endswith("mkv") else "aac", faststart=faststart)
    src = tmp_path / name
    data = full.read_bytes()
    src.write_bytes(data[: len(data) // 2])
    full.unlink()
    dst = tmp_path / "out.mp4"
    assert main(["video", str(src), "-o", str(dst), "--model", str(tiny_checkpoint), "-q"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"tinct: error: {src}: ")
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no output, no temporary


def test_video_usage_errors(tmp_path, tiny_checkpoint, capsys):
    src = tmp_path / "in.mp4"
    write_clip(src, shapes_frames(4), audio=None)
    assert main(["video", str(src), "-o", str(tmp_path / "out.gif"), "--model", str(tiny_checkpoint)]) == 2
    assert main(["video", str(src), "-o", str(src), "--model", str(tiny_checkpoint)]) == 2
    assert main(["video", str(tmp_path / "missing.mp4"), "-o", str(tmp_path / "o.mp4"), "--model", str(tiny_checkpoint)]) == 1
    (tmp_path / "text.mp4").write_text("not a video\n")
    assert main(["video", str(tmp_path / "text.mp4"), "-o", str(tmp_path / "o.mp4"), "--model", str(tiny_checkpoint)]) == 1
    err = capsys.readouterr().err
    assert "unsupported output extension" in err and "would replace the input" in err
    assert "missing.mp4: no such file" in err and "text.mp4: cannot read video" in err
    assert "Traceback" not in err
    with pytest.raises(SystemExit) as e:
        main(["video", str(src), "-o", str(tmp_path / "o.mp4"), "--smoothing", "1"])
    assert e.value.code == 2


def test_no_smoothing_is_per_frame(tiny_colorizer):
    frames = shapes_frames(4)
    video = FrameColorizer(tiny_colorizer, smoothing=0.0)
    for f in frames:
        assert np.array_equal(video(f), FrameColorizer(tiny_colorizer, smoothing=0.0)(f))


# ----------------------------------------------------------------- smoothing, on known colours
def _lab_sequence(n: int, seed: int = 0):
    """Working-size L (96x128), true ab at 1/4 size, and noisy per-frame predictions of it."""
    rng = np.random.default_rng(seed)
    frames = [lab_of(f) for f in shapes_frames(n, w=128, h=96, seed=seed)]
    L = [f[..., 0] for f in frames]
    true_ab = [np.ascontiguousarray(np.stack([Image.fromarray(f[..., c]).resize((32, 24), Image.BILINEAR)
                                              for c in (1, 2)]).astype(np.float32)) for f in frames]
    noisy = [ab + rng.normal(0, 4, (2, 1, 1)).astype(np.float32) + rng.normal(0, 3, ab.shape).astype(np.float32)
             for ab in true_ab]
    return L, true_ab, noisy


def _flicker_of(L, ab_frames) -> float:
    estimate = MotionEstimator()
    full = [np.ascontiguousarray(np.stack([np.asarray(Image.fromarray(c).resize((128, 96), Image.BILINEAR))
                                           for c in ab]), dtype=np.float32).transpose(1, 2, 0) for ab in ab_frames]
    values = [flicker(full[t - 1], full[t], estimate(L[t - 1], L[t])) for t in range(1, len(L))]
    return float(np.mean([v for v in values if v is not None]))


def test_smoothing_lowers_flicker_and_keeps_moving_colours():
    L, true_ab, noisy = _lab_sequence(16)
    smoother = TemporalSmoother(0.7)
    smoothed = [smoother(l, ab) for l, ab in zip(L, noisy)]
    assert _flicker_of(L, smoothed) < 0.6 * _flicker_of(L, noisy)
    assert smoother.shot_changes == 0
    # Inside the moving red square (rows 8..24, columns 4+2t..20+2t at 128x96; at 1/4 size,
    # its interior away from the edges), colour follows the square: closer to the truth than
    # the noisy prediction, so no trail of background colour.
    t = len(L) - 1
    rows, cols = slice(3, 5), slice((4 + 2 * t) // 4 + 1, (20 + 2 * t) // 4 - 1)

    def err(ab):
        return float(np.abs(ab[:, rows, cols] - true_ab[t][:, rows, cols]).mean())

    assert err(smoothed[t]) < err(noisy[t])
    assert float(smoothed[t][0, rows, cols].mean()) > 40  # still red (a > 40)


def test_smoothing_resets_at_shot_change():
    L1, _, ab1 = _lab_sequence(5, seed=0)
    L2 = [np.ascontiguousarray(np.flipud(l)) * 0.5 + 40 for l in L1]  # another scene: other layout and tones
    ab2 = [np.full_like(a, -30.0) for a in ab1]
    smoother = TemporalSmoother(0.9)
    for l, ab in zip(L1, ab1):
        smoother(l, ab)
    assert np.array_equal(smoother(L2[0], ab2[0]), ab2[0])
    assert smoother.shot_changes == 1
    with pytest.raises(ValueError, match="smoothing"):
        TemporalSmoother(1.0)


def test_flicker_metric_is_motion_compensated():
    frames = shapes_frames(10, w=128, h=96)  # DIS needs some room: at 64x48 the motion bleeds into the background
    rng = np.random.default_rng(1)
    jitter = []
    for f in frames:  # the same frames with their colour shifted at random, frame by frame
        lab = lab_of(f)
        lab[..., 1:] += rng.normal(0, 6, 2).astype(np.float32)
        jitter.append(np.clip(color.lab_to_rgb(lab) * 255 + 0.5, 0, 255).astype(np.uint8))
    grey = [np.repeat(f.mean(-1, keepdims=True), 3, -1).astype(np.uint8) for f in frames]
    still = [frames[0]] * len(frames)  # colours that do not follow the motion
    got = video_flicker({"original": frames, "jitter": jitter, "grey": grey, "still": still}, reference=frames)
    assert got["original"] < 1.0  # moving shapes, steady colours: only flow error remains
    assert got["grey"] < 0.1
    assert got["jitter"] > 5 * got["original"]
    assert got["still"] > 1.5 * got["original"]


def test_metadata_not_utf8_and_stream_without_codec(tmp_path, tiny_checkpoint, capsys):
    good = tmp_path / "m.mkv"
    with av.open(str(good), "w") as out:
        out.metadata["title"] = "QQQQQQQQ"
        v = out.add_stream("libx264", rate=12)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        for i, rgb in enumerate(shapes_frames(4)):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            out.mux(v.encode(frame))
        out.mux(v.encode())
    data = good.read_bytes()
    latin = tmp_path / "latin.mkv"
    latin.write_bytes(data.replace(b"QQQQQQQQ", b"\xff\xfe\xe9QQQQQ"))  # not UTF-8
    assert main(["video", str(latin), "-o", str(tmp_path / "o.mp4"), "--model", str(tiny_checkpoint), "-q"]) == 0
    nocodec = tmp_path / "nocodec.mkv"
    nocodec.write_bytes(data.replace(b"V_MPEG4/ISO/AVC", b"V_QQQQQ/ISO/AVC"))
    assert main(["video", str(nocodec), "-o", str(tmp_path / "o2.mp4"), "--model", str(tiny_checkpoint), "-q"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "nocodec.mkv: its video stream has no frames FFmpeg can decode" in err
