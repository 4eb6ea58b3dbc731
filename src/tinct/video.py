"""Video colorization: frames in order, colour steadied along optical flow, audio kept.

    decode (PyAV) -> L -> working size -> network -> ab (low res)
        -> blend with the previous frame's ab warped along optical flow (reset at shot changes)
        -> upsample ab -> Lab(full-resolution L, ab) -> sRGB -> encode (PyAV)

Optical flow lives in :mod:`tinct.flow`; the flicker metric that tuned the smoothing in
:mod:`tinct.metrics`. Definitions and figures: ``docs/VIDEO.md``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from .colorizer import Colorizer
from .errors import EXIT_FAILED, EXIT_USAGE, TinctError, describe
from .flow import grey_u8, is_shot_change, optical_flow, warp
from .io import atomic_write

DEFAULT_SMOOTHING = 0.7  # weight of the motion-compensated history; tuned on bikes.mp4 (docs/VIDEO.md)
CONFIDENCE_SIGMA = 5.0  # L units: warp error at which a pixel's history weight falls to 1/e
CRF = "18"  # x264/VP9 constant quality: visually near-lossless, so the colours survive encoding


class VideoError(TinctError):
    """An input or output video problem; the message names the file and the reason.

    ``exit_code``: 1 for a bad input or an output that cannot be written, 2 for a usage error.
    """

    def __init__(self, message: str, exit_code: int = EXIT_FAILED):
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class OutputFormat:
    muxer: str  # FFmpeg container name
    video: str  # video encoder
    audio: str  # audio encoder, for tracks the container cannot take as they are
    audio_copy: frozenset[str] | None  # audio codecs copied without re-encoding; None: all


_MP4_AUDIO = frozenset({"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"})
FORMATS = {
    ".mp4": OutputFormat("mp4", "libx264", "aac", _MP4_AUDIO),
    ".mov": OutputFormat("mov", "libx264", "aac", _MP4_AUDIO | {"pcm_s16le", "pcm_s24le"}),
    ".mkv": OutputFormat("matroska", "libx264", "aac", None),
    ".webm": OutputFormat("webm", "libvpx-vp9", "libopus", frozenset({"opus", "vorbis"})),
}


def output_format(path: str | Path) -> OutputFormat:
    """The container and encoders for an output file name, chosen by its extension.

    Raises:
        VideoError: the extension is not one of :data:`FORMATS`.
    """
    ext = Path(path).suffix.lower()
    if ext not in FORMATS:
        raise VideoError(f"{path}: unsupported output extension {ext or '(none)'!r}; use one of {', '.join(FORMATS)}",
                         EXIT_USAGE)
    return FORMATS[ext]


def check_output(src: str | Path, dst: str | Path, overwrite: bool = False) -> OutputFormat:
    """The format of ``dst``, once it is known that ``dst`` may be written.

    Raises:
        VideoError: an unsupported extension, ``dst`` is the input, or ``dst`` exists and
            not ``overwrite``.
    """
    fmt = output_format(dst)
    src, dst = Path(src), Path(dst)
    if dst.exists() and src.exists() and dst.resolve() == src.resolve():
        raise VideoError(f"-o {dst} would replace the input; choose another output", EXIT_USAGE)
    if dst.exists() and not overwrite:
        raise VideoError(f"{dst} exists (use --overwrite to replace it)", EXIT_USAGE)
    return fmt


# ----------------------------------------------------------------- temporal smoothing
class TemporalSmoother:
    """Motion-compensated recursive filter on the predicted ab.

    ab_out(t) = ab(t) + w * (warp(ab_out(t-1)) - ab(t)), w = strength * exp(-(e / sigma)^2),
    where e is the per-pixel error of the warped previous L; w = 0 where the flow points
    outside the frame, and the history is dropped at shot changes. Flow is DIS (OpenCV,
    fast preset) on the working-size L; ab is smoothed at the network's output resolution,
    each of its pixels taking the smallest w of the working-size pixels it covers (so an
    object's edge never drags colour along from the wrong side).

    Args:
        strength: history weight in [0, 1); 0 gives per-frame colorization.
    """

    def __init__(self, strength: float):
        if not 0 <= strength < 1:
            raise ValueError(f"smoothing must be in [0, 1), got {strength}")
        self.strength = strength
        self.dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
        self.shot_changes = 0
        self.L_prev: np.ndarray | None = None  # (hh, ww)
        self.ab_prev: np.ndarray | None = None  # (h, w, 2)

    def __call__(self, L: np.ndarray, ab: np.ndarray) -> np.ndarray:
        """Smooth one frame.

        Args:
            L: working-size luminance ``(hh, ww)`` float32 in [0, 100].
            ab: predicted chroma ``(2, h, w)`` float32 in Lab units (h, w may be smaller).

        Returns:
            the smoothed ab, ``(2, h, w)``.
        """
        ab = np.ascontiguousarray(ab.transpose(1, 2, 0))  # (h, w, 2)
        L_prev, ab_prev = self.L_prev, self.ab_prev
        self.L_prev = L
        if self.strength > 0 and L_prev is not None and L_prev.shape == L.shape:
            flow = optical_flow(grey_u8(L), grey_u8(L_prev), self.dis)  # (hh, ww, 2)
            L_warped, inside = warp(L_prev, flow)
            if is_shot_change(L, L_warped, inside):
                self.shot_changes += 1
            else:
                weight = self.strength * np.exp(-((L - L_warped) / CONFIDENCE_SIGMA) ** 2) * inside
                h, w = ab.shape[:2]
                scale = np.array([w / L.shape[1], h / L.shape[0]], np.float32)
                flow_ab = cv2.resize(flow, (w, h), interpolation=cv2.INTER_AREA) * scale
                weight = _min_pool(weight.astype(np.float32), (h, w))  # trust history only where all of it agrees
                ab_warped, _ = warp(ab_prev, flow_ab)
                ab = ab + weight[..., None] * (ab_warped - ab)
        self.ab_prev = ab
        return ab.transpose(2, 0, 1)


def _min_pool(x: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Shrink ``(H, W)`` to ``shape`` keeping each cell's minimum."""
    return -F.adaptive_max_pool2d(-torch.from_numpy(x)[None], shape)[0].numpy()


class FrameColorizer:
    """Colorize the frames of one video, in order (the smoothing keeps state).

    Args:
        colorizer: a loaded :class:`tinct.Colorizer`.
        size: working size (short side the network sees); None: the model's own.
        smoothing: :class:`TemporalSmoother` strength; 0: every frame on its own.
    """

    def __init__(self, colorizer: Colorizer, size: int | None = None, smoothing: float = DEFAULT_SMOOTHING):
        self.colorizer, self.size = colorizer, size
        self.smoother = TemporalSmoother(smoothing)

    def predict(self, rgb: np.ndarray) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
        """uint8 RGB ``(H, W, 3)`` -> full L ``(H, W)``, working-size L ``(hh, ww)``, raw ab ``(2, h, w)``."""
        L = Colorizer.luminance(rgb)
        col = self.colorizer
        L_small = Colorizer.resize(L[None, None], col.working_shape(*L.shape, col.working_sizes(self.size)[0]))
        ab = col.predict_ab_batched([L], self.size, None, 1)[0]  # every scale, as tinct colorize does
        return L, L_small[0, 0].numpy(), ab.numpy()

    def compose(self, L: torch.Tensor, ab: np.ndarray) -> np.ndarray:
        """Full L ``(H, W)`` + low-res ab ``(2, h, w)`` -> uint8 RGB ``(H, W, 3)``, as ``tinct colorize`` composes."""
        return np.asarray(self.colorizer.render(L, torch.from_numpy(np.ascontiguousarray(ab))))

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """uint8 RGB frame (colour or grey) -> colorized uint8 RGB frame of the same size."""
        L, L_small, ab = self.predict(rgb)
        return self.compose(L, self.smoother(L_small, ab))


# ----------------------------------------------------------------- reading and writing
def _reason(e: Exception) -> str:
    return getattr(e, "strerror", None) or str(e)


def open_video(path: str | Path):
    """Open a video file for reading with PyAV.

    Raises:
        VideoError: missing, empty, not a video FFmpeg can read, or without a video stream.
    """
    path = Path(path)
    if not path.is_file():
        raise VideoError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
    if path.stat().st_size == 0:
        raise VideoError(f"{path}: empty file (0 bytes)")
    try:
        # Metadata that is not UTF-8 (an old camera's title) is read with replacement characters.
        container = av.open(str(path), metadata_errors="replace")
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as e:
        raise VideoError(f"{path}: cannot read video, truncated or not a video ({_reason(e)})") from None
    if not container.streams.video:
        container.close()
        raise VideoError(f"{path}: has no video stream")
    cc = container.streams.video[0].codec_context
    if cc is None or not cc.width or not cc.height:
        container.close()
        raise VideoError(f"{path}: its video stream has no frames FFmpeg can decode (no codec or no picture size)")
    return container


def read_frames(path: str | Path) -> Iterator[np.ndarray]:
    """The frames of a video's first video stream, as uint8 RGB ``(H, W, 3)``."""
    with open_video(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            for frame in container.decode(stream):
                yield frame.to_ndarray(format="rgb24")
        except av.FFmpegError as e:
            raise VideoError(f"{path}: damaged or truncated video ({_reason(e)})") from None


@dataclass
class VideoSummary:
    frames: int
    seconds: float  # wall-clock time of the whole job
    audio_streams: int
    shot_changes: int

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else float("nan")

    def __str__(self) -> str:
        """The one-line account ``tinct video`` prints."""
        return (f"{self.frames} frames in {self.seconds:.1f} s ({self.fps:.1f} frames/s), {self.shot_changes} shot "
                f"changes, {self.audio_streams} audio streams kept")


def colorize_video(src: str | Path, dst: str | Path, colorizer: Colorizer, size: int | None = None,
                   smoothing: float = DEFAULT_SMOOTHING, quiet: bool = False) -> VideoSummary:
    """Colorize a video file into ``dst``, keeping frame rate, resolution, timestamps and audio.

    The output is written to a temporary file beside ``dst`` and renamed over it only when
    complete, so a failure leaves no partial ``dst``.

    Args:
        src: any container/codec FFmpeg decodes; the first video stream is colorized and
            every audio stream is kept (copied, or re-encoded when ``dst``'s container
            cannot hold it).
        dst: output file; its extension picks the format (:data:`FORMATS`).
        colorizer, size, smoothing: as for :class:`FrameColorizer`.
        quiet: no progress bar.

    Raises:
        VideoError: unreadable, damaged or truncated input, or the output cannot be written.
    """
    src, dst = Path(src), Path(dst)
    fmt = output_format(dst)
    frames = FrameColorizer(colorizer, size, smoothing)
    start = time.perf_counter()
    with open_video(src) as container:
        counts: dict[str, int] = {}
        try:
            atomic_write(dst, lambda tmp: counts.update(_transcode(container, src, tmp, fmt, frames, quiet)))
        except VideoError:
            raise
        except (av.FFmpegError, OSError) as e:  # reading errors are VideoErrors already: this is the output
            raise VideoError(f"{dst}: cannot write video ({_reason(e)}); if the disk is fine, {src} may be "
                             "damaged (its timestamps or audio packets)") from None
        except Exception as e:  # out of memory, or the model's output refused, while colorizing a frame
            found = describe(e, src, "colorizing a frame")
            if found is None:
                raise
            raise VideoError(found[0]) from None
    return VideoSummary(counts["frames"], time.perf_counter() - start, counts["audio"], frames.smoother.shot_changes)


def _transcode(container, src: Path, tmp: str, fmt: OutputFormat, colorize: Callable[[np.ndarray], np.ndarray],
               quiet: bool) -> dict[str, int]:
    vin = container.streams.video[0]
    vin.thread_type = "AUTO"
    ain = list(container.streams.audio)
    rate = vin.average_rate or vin.guessed_rate or Fraction(25)
    width, height = vin.codec_context.width, vin.codec_context.height
    with av.open(tmp, "w", format=fmt.muxer) as out:
        vout = out.add_stream(fmt.video, rate=rate, options={"crf": CRF} | ({"b": "0"} if fmt.video == "libvpx-vp9" else {}))
        vout.width, vout.height = width, height
        vout.pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"  # 4:2:0 needs even sides
        if vin.time_base:
            vout.codec_context.time_base = vin.time_base  # keep the input's timestamps exactly
        audio = {s.index: _audio_stream(out, s, fmt) for s in ain}
        expected = vin.frames or (round(float(vin.duration * vin.time_base * rate)) if vin.duration else None)
        bar = tqdm(total=expected, unit="frame", disable=quiet, file=sys.stderr, dynamic_ncols=True, leave=False)
        n, end_time = 0, 0.0
        for packet in _demux(container, src, vin, *ain):
            if packet.pts is not None:
                end_time = max(end_time, float((packet.pts + (packet.duration or 0)) * packet.time_base))
            if packet.stream.index != vin.index:
                aout, copy = audio[packet.stream.index]
                if copy:
                    if packet.dts is not None:
                        packet.stream = aout
                        out.mux(packet)
                else:
                    for frame in _decode(packet, src):
                        out.mux(aout.encode(frame))
                continue
            for frame in _decode(packet, src):
                if (frame.width, frame.height) != (width, height):
                    raise VideoError(f"{src}: damaged video: a frame of {frame.width}x{frame.height} in a "
                                     f"{width}x{height} stream")
                new = av.VideoFrame.from_ndarray(colorize(_rgb(frame, src)), format="rgb24")
                if frame.pts is not None:
                    new.pts, new.time_base = frame.pts, frame.time_base
                else:
                    new.pts, new.time_base = n, 1 / rate
                out.mux(vout.encode(new))
                n += 1
                bar.update(1)
        bar.close()
        if n == 0:
            raise VideoError(f"{src}: no frame could be decoded")
        _check_complete(src, container, vin, n, end_time, float(1 / rate))
        out.mux(vout.encode())
        for aout, copy in audio.values():
            if not copy:
                out.mux(aout.encode())
    return {"frames": n, "audio": len(audio)}


def _audio_stream(out, stream, fmt: OutputFormat):
    """Output stream for one input audio stream, and whether its packets are copied as they are."""
    if fmt.audio_copy is None or stream.codec_context.name in fmt.audio_copy:
        return out.add_stream_from_template(stream), True
    cc = stream.codec_context
    rate = 48000 if fmt.audio == "libopus" else cc.sample_rate
    layout = cc.layout.name
    if layout.endswith("channels"):  # channel order unspecified (e.g. raw PCM): the usual layout for that count
        layout = {1: "mono", 2: "stereo", 6: "5.1", 8: "7.1"}.get(cc.channels, layout)
    return out.add_stream(fmt.audio, rate=rate, layout=layout), False


def _demux(container, src: Path, *streams) -> Iterator:
    try:
        yield from container.demux(*streams)
    except av.FFmpegError as e:
        raise VideoError(f"{src}: damaged or truncated video ({_reason(e)})") from None


def _decode(packet, src: Path) -> list:
    try:
        return packet.decode()
    except av.FFmpegError as e:
        raise VideoError(f"{src}: damaged or truncated video ({_reason(e)})") from None


def _rgb(frame, src: Path) -> np.ndarray:
    try:
        return frame.to_ndarray(format="rgb24")
    except (av.FFmpegError, ValueError) as e:
        raise VideoError(f"{src}: damaged video: a frame cannot be converted ({_reason(e)})") from None


def _check_complete(src: Path, container, stream, n: int, end_time: float, frame_time: float) -> None:
    """Raise when the packets read stop short of what the file declares: its end is missing.

    ``end_time`` is the latest packet end over all streams read, in seconds.
    """
    if stream.frames and n < stream.frames - max(2, stream.frames // 100):
        raise VideoError(f"{src}: truncated or damaged: only {n} of {stream.frames} frames decode")
    if container.duration:
        declared = container.duration / av.time_base  # the longest stream's length
        covered = end_time - (container.start_time or 0) / av.time_base
        if covered < declared - max(3 * frame_time, 0.02 * declared):
            raise VideoError(f"{src}: truncated or damaged: its streams end at {covered:.1f} s of {declared:.1f} s")
