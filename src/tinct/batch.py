"""Colorizing many files: which files go where, then decode ahead, run the network, encode behind.

:func:`plan_colorize` turns ``tinct colorize``'s inputs (files, folders, globs), ``-o``,
``--shard`` and ``--overwrite`` into (input, output) jobs, refusing any output that would
replace an input or another output. :func:`colorize_files` then runs the jobs.

Decoding and encoding (Pillow, which releases the GIL) run in worker threads while the
main thread runs the network, so a folder goes through at the network's pace rather
than at decode + network + encode. Photos whose working shapes match share a forward
pass. Lookahead is bounded (``workers + batch_size`` photos decoding or decoded, only
``workers`` once photos are large; two outputs waiting to be encoded), so a folder of huge
scans cannot fill the memory. One bad file fails alone: its error is recorded and the rest
go on: every failure (a damaged file, running out of memory, a full disk) becomes its one line
through :func:`tinct.errors.describe`, and a batch that fails is retried photo by photo.

Colour hints (docs/GUIDE.md): :func:`shared_guide` gathers the hints every photo gets
(``--hint``, ``--hints FILE``, ``--reference``); with ``--hints-dir DIR`` each photo also
gets the points of its own file, ``DIR/<its path under its input folder, without the
extension>.hints.json`` (:func:`hints_file_for`), read beside the photo's decoding.
"""

from __future__ import annotations

import argparse
import glob
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from PIL import Image

from .errors import describe
from .hints import DEFAULT_POINT_SIZE, Guide, Hint, HintError, guide, load_hints, parse_hint
from .io import INPUT_EXTS, OUTPUT_FORMATS, Photo, find_images, load_image, save_image

BATCH_PIXELS = 8_000_000  # photos colorized together; a bigger photo goes alone


@dataclass
class BatchResult:
    done: int = 0
    failures: list[str] = field(default_factory=list)


class PlanError(ValueError):
    """``tinct colorize`` cannot start; ``problems`` lists the inputs that found nothing."""

    def __init__(self, message: str, problems: list[str] | None = None):
        super().__init__(message)
        self.problems = list(problems or [])


@dataclass
class Plan:
    """What ``tinct colorize`` will do with its inputs (one shard of them).

    Attributes:
        jobs: (input, output) pairs to colorize.
        missing: ``"SPEC: reason"`` for each input spec that found nothing.
        refused: ``"SRC: reason"`` for each input whose output must not be written.
        skipped: ``"SRC: DST exists ..."`` for each input whose output is kept, and
            ``"PATH: reason"`` for each image name in a folder that is not a file (a dangling
            symbolic link, a FIFO).
        out_dir: the folder the outputs go to.
    """

    jobs: list[tuple[Path, Path]]
    missing: list[str]
    refused: list[str]
    skipped: list[str]
    out_dir: Path

    @property
    def total(self) -> int:
        """Inputs in this shard: to colorize, refused or skipped."""
        return len(self.jobs) + len(self.refused) + len(self.skipped)


def names_a_file(output: str | Path) -> bool:
    """``-o`` names an image file (any image extension: .png, .jpg, .webp, .tif, ...) rather
    than a folder; only .png and .jpg can be written (:func:`plan_colorize` says so)."""
    suffix = Path(output).suffix.lower()
    return suffix in OUTPUT_FORMATS or suffix in INPUT_EXTS or suffix in Image.registered_extensions()


def expand_inputs(specs: list[str], recursive: bool,
                  odd: list[str] | None = None) -> tuple[list[tuple[Path, Path]], list[str]]:
    """Files to colorize, each with its path relative to the output folder, and problems.

    A folder contributes its images (sub-folders with ``recursive``), keeping their
    relative layout in the output; a glob contributes what it matches. ``odd`` gets a line
    for each image name in a folder that is not a file (see :func:`tinct.io.find_images`).
    """
    found: list[tuple[Path, Path]] = []
    problems: list[str] = []
    for spec in specs:
        path = Path(spec)
        if path.is_dir():
            files = find_images(path, recursive=recursive, skipped=odd)
            if not files:
                problems.append(f"{spec}: folder has no images" + ("" if recursive else " (use --recursive for sub-folders)"))
            found += [(f, f.relative_to(path)) for f in files]
        elif path.exists() or path.is_symlink():  # a dangling link fails with its reason
            found.append((path, Path(path.name)))
        elif glob.has_magic(spec):
            files = sorted(Path(f) for f in glob.glob(spec, recursive=recursive) if Path(f).is_file())
            if not files:
                problems.append(f"{spec}: pattern matches no files")
            found += [(f, Path(f.name)) for f in files]
        else:
            problems.append(f"{spec}: no such file or folder")
    return found, problems


def plan_outputs(inputs: list[tuple[Path, Path]], output: str | Path, fmt: str) -> list[tuple[Path, Path]]:
    """Pair each input with its output path: ``output`` itself for one input and an image
    name, else ``output/<relative path>.<fmt>``."""
    out = Path(output)
    if names_a_file(out) and len(inputs) == 1:
        return [(inputs[0][0], out)]
    return [(src, out / rel.with_suffix("." + fmt)) for src, rel in inputs]


def plan_colorize(specs: list[str], output: str | Path, fmt: str = "png", *, recursive: bool = False,
                  shard_spec: str | None = None, overwrite: bool = False, verb: str = "colorize") -> Plan:
    """The jobs of ``tinct colorize SPECS -o OUTPUT``: inputs found, sharded, paired with outputs.

    Inputs are sorted by their relative output path before sharding, so every machine splits
    the same folder the same way. An output that would replace an input, or one another
    input already writes, is refused; an existing output is skipped unless ``overwrite``.
    ``verb`` names the command's work in its messages (``tinct restore`` plans the same way).

    Raises:
        PlanError: ``output`` names a file but there are several inputs, a bad ``shard_spec``,
            or nothing to colorize.
    """
    odd: list[str] = []
    inputs, missing = expand_inputs(specs, recursive, odd)
    if names_a_file(output) and len(inputs) > 1:
        raise PlanError(f"-o {output} names a file, but there are {len(inputs)} inputs; give a folder")
    if names_a_file(output) and Path(output).suffix.lower() not in OUTPUT_FORMATS:
        raise PlanError(f"-o {output}: tinct writes .png or .jpg images, not {Path(output).suffix}; "
                        "name a .png or .jpg file, or a folder")
    try:
        inputs = shard(sorted(inputs, key=lambda job: str(job[1])), shard_spec)
    except ValueError as e:
        raise PlanError(str(e)) from None
    if not inputs:
        raise PlanError(f"nothing to {verb}" + (f" in shard {shard_spec}" if shard_spec and not missing else ""), missing)
    out = Path(output)
    plan = Plan([], missing, [], list(odd), out.parent if names_a_file(out) else out)
    input_paths, seen_outputs = {src.resolve() for src, _ in inputs}, set()
    for src, dst in plan_outputs(inputs, output, fmt):
        target = dst.resolve()
        if target in input_paths:
            plan.refused.append(f"{src}: output {dst} would replace an input; choose another -o")
        elif target in seen_outputs:
            plan.refused.append(f"{src}: output {dst} is already written by another input with the same name")
        elif dst.exists() and not overwrite:
            plan.skipped.append(f"{src}: {dst} exists (use --overwrite to replace it)")
        else:
            seen_outputs.add(target)
            plan.jobs.append((src, dst))
    return plan


def shard(items: list, spec: str | None) -> list:
    """The items of shard ``i/n`` (1-based): every n-th item from the i-th, in the given order.

    The caller sorts first, so the same folder splits the same way on every machine, and
    the n shards are disjoint, cover everything and differ in size by at most one.
    """
    if not spec:
        return items
    i, n = parse_shard(spec)
    return items[i - 1::n]


def parse_shard(spec: str) -> tuple[int, int]:
    try:
        i, n = (int(v) for v in spec.split("/"))
    except ValueError:
        raise ValueError(f"--shard must look like i/n (e.g. 2/4), got {spec!r}") from None
    if not 1 <= i <= n:
        raise ValueError(f"--shard i/n needs 1 <= i <= n, got {spec!r}")
    return i, n


def shared_guide(points=(), hints_file: str | Path | None = None, reference: str | Path | None = None,
                 point_size: int = DEFAULT_POINT_SIZE) -> Guide | None:
    """The hints every photo of a run gets: ``points`` (Hints), then a hints file's, and a
    reference photo (over the file's own reference); None when there are none.

    Raises:
        tinct.hints.HintError: a bad hints file or reference (the message names it).
    """
    shared = guide(points, reference, point_size)
    if hints_file is not None:
        ref = shared.reference
        shared = shared.merged(load_hints(hints_file))
        shared.reference = shared.reference if ref is None else ref
    return shared or None


def add_hint_options(p: argparse.ArgumentParser) -> None:
    """``tinct colorize``'s colour-hint options (declared here, beside the rules they state)."""
    g = p.add_argument_group("colour hints", "Points and a reference palette guide the colours, with any model (the default "
                             "follows points by spreading them and a reference by shifting its colour probabilities; a "
                             "model whose output is ab or RGB follows points only). Every photo of the run gets "
                             "--hint, --hints and --reference; with --hints-dir each photo also gets the points of its "
                             "own file. Details and the file format: docs/GUIDE.md.")
    g.add_argument("--hint", action="append", type=_hint, default=[], metavar="X,Y,COLOUR",
                   help="a point whose colour is known: pixels (120,340,#3050c0) or fractions of the width and height "
                        "(0.5,0.2,red); any CSS colour name or hex; its lightness stays the photo's. Repeat for more")
    g.add_argument("--hints", metavar="FILE.json", default=None, help="a hints file (as the web editor saves it)")
    g.add_argument("--reference", metavar="IMAGE", default=None,
                   help="a colour photo whose palette guides the whole result (over a hints file's own reference)")
    g.add_argument("--hints-dir", metavar="DIR", default=None,
                   help="per-photo hints files named after the photos: DIR/<path under its input folder without the "
                        "extension>.hints.json, e.g. DIR/photo.hints.json for photo.jpg; give the photos' own folder "
                        "for files beside them. A photo without one gets the shared hints only")
    g.add_argument("--hint-size", type=int, default=DEFAULT_POINT_SIZE, metavar="N",
                   help=f"side of each point's square, pixels of the network's input (default {DEFAULT_POINT_SIZE})")


def _hint(text: str) -> Hint:
    try:
        return parse_hint(text)
    except HintError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def prepare_hints(colorizer, plan: Plan, points, hints_file, reference, hints_dir, point_size: int,
                  say: Callable[[str], None]) -> Guide | None:
    """The shared hints of a run (:func:`shared_guide`), checked against the model; says
    when ``hints_dir`` holds no file for any photo.

    Raises:
        tinct.hints.HintError: bad hints, or a reference for a model that cannot follow one.
    """
    hints = shared_guide(points, hints_file, reference, point_size)
    if hints:
        colorizer.require_hints(reference=hints.reference is not None)
    if hints_dir and plan.jobs and not count_hints_files(plan.jobs, plan.out_dir, hints_dir):
        say(f"warning: no photo has a hints file in {hints_dir} (e.g. {plan.jobs[0][0].stem}.hints.json)")
    return hints


def hints_file_for(src: Path, dst: Path, out_dir: Path, hints_dir: str | Path) -> Path:
    """A photo's own hints file: ``hints_dir/<its path under its input folder, extension
    dropped>.hints.json`` (``photos/a/b.jpg`` given as ``photos`` -> ``hints_dir/a/b.hints.json``;
    the output's place under ``out_dir`` tells the sub-folders)."""
    try:
        sub = dst.relative_to(out_dir).parent
    except ValueError:
        sub = Path()
    return Path(hints_dir) / sub / f"{src.stem}.hints.json"


def count_hints_files(jobs: list[tuple[Path, Path]], out_dir: Path, hints_dir: str | Path) -> int:
    """How many of the jobs' photos have their own hints file in ``hints_dir``."""
    return sum(hints_file_for(src, dst, out_dir, hints_dir).is_file() for src, dst in jobs)


def colorize_files(colorizer, jobs: list[tuple[Path, Path]], *, size=None, saturation=1.0, temperature=None,
                   max_pixels: int, workers: int = 2, batch_size: int = 4,
                   on_progress: Callable[[Path, str | None], None] = lambda src, error: None,
                   hints: Guide | None = None, hints_dir: str | Path | None = None,
                   out_dir: Path | None = None, restorer=None) -> BatchResult:
    """Colorize ``(input, output)`` pairs; ``on_progress(src, error_or_None)`` after each file.

    Each image is refused from its header when over ``max_pixels`` or the colorizer's memory
    budget (:meth:`tinct.Colorizer.check_budget`), before it is decoded. ``hints`` guide
    every photo; with ``hints_dir``, each photo's own file (:func:`hints_file_for`, outputs
    under ``out_dir``) adds its points (a bad one fails that photo alone). With ``restorer``
    (a :class:`tinct.restore.Restorer`) each photo is restored first, in the decoding threads.
    """

    def check(w: int, h: int, mode: str) -> None:
        colorizer.check_budget((h, w), size, mode)
        if restorer is not None:
            restorer.check_budget((h, w), mode=mode)

    def load(src: Path, dst: Path) -> tuple[Photo, Guide | None]:
        photo = load_image(src, max_pixels, check=check)
        if restorer is not None:
            photo = restorer.restore_photo(photo)
        own = None
        if hints_dir is not None:
            path = hints_file_for(src, dst, out_dir or dst.parent, hints_dir)
            own = load_hints(path) if path.is_file() else None
        return photo, (hints or Guide()).merged(own) if hints or own else None

    def colorize(batch: list[tuple[Path, Path, Photo, Guide | None]]) -> list:
        """The outputs of a batch, or for a failing batch of several, photo by photo: an image
        or the failure's message for each."""
        try:
            guides = [g for *_, g in batch] if any(g for *_, g in batch) else None
            return colorizer.colorize_many([p for _, _, p, _ in batch], size, saturation, temperature, batch_size,
                                           guides=guides)
        except Exception as e:
            if describe(e) is None:
                raise
            if len(batch) == 1:
                return [describe(e, batch[0][0])[0]]
        return [colorize([job])[0] for job in batch]

    result = BatchResult()
    todo = deque(jobs)
    loading: deque[tuple[Path, Path, Future]] = deque()
    saving: deque[tuple[Path, Future]] = deque()

    def finish_saves(block: bool) -> None:
        while saving and (block or saving[0][1].done()):
            src, fut = saving.popleft()
            _settle(result, on_progress, src, fut, lambda e: f"{src}: cannot write output: {describe(e)[0]}")

    last_pixels = 0  # size of the latest decoded photo: big photos are decoded fewer at a time
    workers = max(1, workers)
    with ThreadPoolExecutor(workers, thread_name_prefix="tinct-io") as pool:
        while todo or loading:
            # Keep the decoders busy, within the pixel window.
            while todo and len(loading) < workers + (batch_size if last_pixels < 2_000_000 else 0):
                src, dst = todo.popleft()
                loading.append((src, dst, pool.submit(load, src, dst)))
            # The next decoded photos, in order, as one batch (what is decoded already, within BATCH_PIXELS).
            batch: list[tuple[Path, Path, Photo, Guide | None]] = []
            pixels = 0
            while loading and len(batch) < batch_size:
                src, dst, fut = loading[0]
                if batch and not fut.done():
                    break
                try:
                    photo, photo_guide = fut.result()
                except Exception as e:
                    if describe(e) is None:
                        raise
                    loading.popleft()
                    _fail(result, on_progress, src, describe(e, src, "decoding")[0])
                    continue
                n = last_pixels = photo.pixels.shape[0] * photo.pixels.shape[1]
                if batch and pixels + n > BATCH_PIXELS:
                    break
                loading.popleft()
                batch.append((src, dst, photo, photo_guide))
                pixels += n
            if not batch:
                continue
            images = colorize(batch)
            finish_saves(block=len(saving) >= 2)  # bound the outputs waiting to be encoded
            for (src, dst, *_), image in zip(batch, images):
                if isinstance(image, str):
                    _fail(result, on_progress, src, image)
                else:
                    saving.append((src, pool.submit(save_image, image, dst)))
            del batch, images  # the decoded photos can go while the outputs are encoded
        finish_saves(block=True)
    return result


def restore_files(restorer, jobs: list[tuple[Path, Path]], *, max_pixels: int, workers: int = 2,
                  on_progress: Callable[[Path, str | None], None] = lambda src, error: None) -> BatchResult:
    """``tinct restore``: restore ``(input, output)`` pairs with a :class:`tinct.restore.Restorer`,
    ``workers`` photos at a time (decode, restore, encode in each thread; OpenCV and the
    network release the GIL), reporting in the jobs' order. Each image is refused from its
    header when over ``max_pixels`` or the restorer's memory budget; one bad file fails alone."""

    def one(src: Path, dst: Path) -> None:
        photo = restorer.read_photo(src, max_pixels)
        out = restorer.restore(photo)
        del photo
        save_image(out, dst)

    result = BatchResult()
    todo = deque(jobs)
    running: deque[tuple[Path, Future]] = deque()
    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="tinct-restore") as pool:
        while todo or running:
            while todo and len(running) < max(1, workers):
                src, dst = todo.popleft()
                running.append((src, pool.submit(one, src, dst)))
            src, fut = running.popleft()
            _settle(result, on_progress, src, fut, lambda e: describe(e, src, "restoring")[0])
    return result


def _settle(result: BatchResult, on_progress, src: Path, fut, failed) -> None:
    """``src``'s finished work: counted done, or failed with ``failed(error)`` for an error
    tinct describes (anything else is a bug and propagates)."""
    try:
        fut.result()
        result.done += 1
        on_progress(src, None)
    except Exception as e:
        if describe(e) is None:
            raise
        _fail(result, on_progress, src, failed(e))


def _fail(result: BatchResult, on_progress, src: Path, message: str) -> None:
    result.failures.append(message)
    on_progress(src, message)
