"""The ``tinct`` command: parses arguments and calls the modules that do the work.

Exit codes: 0 all went well, 1 some inputs failed, 2 usage error (bad options, nothing
to do, a model that cannot be loaded).
"""

from __future__ import annotations

import argparse
import glob
import sys
from pathlib import Path

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _positive_float(text: str) -> float:
    v = float(text)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return v


def _non_negative_float(text: str) -> float:
    v = float(text)
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return v


def _positive_int(text: str) -> int:
    v = int(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return v


def _size(text: str) -> int:
    v = int(text)
    if not 32 <= v <= 4096:
        raise argparse.ArgumentTypeError(f"must be between 32 and 4096, got {text}")
    return v


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tinct", description="Automatic image colorization.")
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("colorize", help="colorize photos (files, folders, globs)",
                       description="Colorize photos. Outputs go to OUT_DIR/<stem>.png; inputs are never modified.")
    c.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or glob patterns")
    c.add_argument("-o", "--output", default="colorized", metavar="OUT",
                   help="output folder (default: colorized/), or a .png/.jpg file name for a single input")
    c.add_argument("--model", default="default", help="bundled model name, checkpoint file or run folder (default: default)")
    c.add_argument("--size", type=_size, default=None, help="working size: short side the network sees (default: the model's)")
    c.add_argument("--saturation", type=_non_negative_float, default=1.0, help="scale the predicted colour (default 1.0)")
    c.add_argument("--temperature", type=_positive_float, default=None, help="annealed-mean temperature for distribution models")
    c.add_argument("--format", choices=["png", "jpg"], default="png", help="output format when writing to a folder")
    c.add_argument("-r", "--recursive", action="store_true", help="descend into sub-folders of folder inputs")
    c.add_argument("--overwrite", action="store_true", help="replace existing outputs (inputs are never replaced)")
    c.add_argument("--max-megapixels", type=_positive_float, default=180, help="refuse larger images (default 180)")
    c.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    sub.add_parser("models", help="list bundled models and trainable architectures")

    e = sub.add_parser("evaluate", help="compare colorizers on the same photos (metrics, plots, gallery)",
                       description="Grey each photo, colorize it with every model, compare with the original. "
                                   "Writes metrics.csv, timing.csv, summary.md/.json, plots and gallery.html. "
                                   "Metric definitions: docs/EVALUATION.md.")
    e.add_argument("--data", required=True, metavar="DIR", help="folder of colour photos (searched recursively)")
    e.add_argument("--model", dest="models", action="append", required=True, metavar="MODEL",
                   help="bundled model name, checkpoint file, run folder, or a baseline: gray (ab = 0), "
                        "mean-ab (constant training-set mean chroma); repeat for several")
    e.add_argument("--size", type=_size, default=None, help="working size for checkpoint models (default: each model's own)")
    e.add_argument("--crop", type=_size, default=None, metavar="N",
                   help="resize the short side to N and centre-crop NxN first (quality targets use 256)")
    e.add_argument("--limit", type=_positive_int, default=None, metavar="K", help="only the first K photos, sorted by path")
    e.add_argument("--out", default="eval_report", metavar="REPORT_DIR", help="report folder (default: eval_report/)")
    e.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "colorize":
        return cmd_colorize(args)
    if args.command == "models":
        return cmd_models()
    if args.command == "evaluate":
        return cmd_evaluate(args)
    parser.error(f"unknown command {args.command}")  # pragma: no cover
    return EXIT_USAGE


# --------------------------------------------------------------------- colorize
def expand_inputs(specs: list[str], recursive: bool) -> tuple[list[tuple[Path, Path]], list[str]]:
    """Files to colorize, each with its path relative to the output folder, and problems.

    A folder contributes its images (sub-folders with ``recursive``), keeping their
    relative layout in the output; a glob contributes what it matches.
    """
    from .io import INPUT_EXTS

    found: list[tuple[Path, Path]] = []
    problems: list[str] = []
    for spec in specs:
        path = Path(spec)
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            files = sorted(f for f in path.glob(pattern) if f.is_file() and f.suffix.lower() in INPUT_EXTS)
            if not files:
                problems.append(f"{spec}: folder has no images" + ("" if recursive else " (use --recursive for sub-folders)"))
            found += [(f, f.relative_to(path)) for f in files]
        elif path.exists():
            found.append((path, Path(path.name)))
        elif glob.has_magic(spec):
            files = sorted(Path(f) for f in glob.glob(spec, recursive=recursive) if Path(f).is_file())
            if not files:
                problems.append(f"{spec}: pattern matches no files")
            found += [(f, Path(f.name)) for f in files]
        else:
            problems.append(f"{spec}: no such file or folder")
    return found, problems


def plan_outputs(inputs: list[tuple[Path, Path]], output: str, fmt: str) -> list[tuple[Path, Path]]:
    """Pair each input with its output path."""
    out = Path(output)
    if out.suffix.lower() in (".png", ".jpg", ".jpeg") and len(inputs) == 1:
        return [(inputs[0][0], out)]
    return [(src, out / rel.with_suffix("." + fmt)) for src, rel in inputs]


def cmd_colorize(args) -> int:
    from .checkpoint import CheckpointError
    from .colorizer import Colorizer
    from .io import ImageError, load_image, save_image

    inputs, problems = expand_inputs(args.inputs, args.recursive)
    out = Path(args.output)
    if out.suffix.lower() in (".png", ".jpg", ".jpeg") and len(inputs) > 1:
        print(f"tinct: error: -o {args.output} names a file, but there are {len(inputs)} inputs; give a folder", file=sys.stderr)
        return EXIT_USAGE
    if not inputs:
        for line in problems:
            print(f"tinct: error: {line}", file=sys.stderr)
        print("tinct: error: nothing to colorize", file=sys.stderr)
        return EXIT_USAGE
    try:
        colorizer = Colorizer.load(args.model)
    except CheckpointError as e:
        print(f"tinct: error: cannot load model: {e}", file=sys.stderr)
        return EXIT_USAGE

    jobs = plan_outputs(inputs, args.output, args.format)
    input_paths = {src.resolve() for src, _ in jobs}
    failures = [*problems]
    skipped, done, seen_outputs = 0, 0, set()
    bar = _progress(len(jobs), args.quiet)
    for src, dst in jobs:
        bar.set_postfix_str(src.name[-30:], refresh=False)
        try:
            target = dst.resolve()
            if target in input_paths:
                raise ImageError(f"{src}: output {dst} would replace an input; choose another -o")
            if target in seen_outputs:
                raise ImageError(f"{src}: output {dst} is already written by another input with the same name")
            seen_outputs.add(target)
            if dst.exists() and not args.overwrite:
                skipped += 1
                bar.write(f"skipped {src}: {dst} exists (use --overwrite to replace it)", file=sys.stderr)
                continue
            photo = load_image(src, max_pixels=int(args.max_megapixels * 1e6))
            result = colorizer.colorize(photo, size=args.size, saturation=args.saturation, temperature=args.temperature)
            save_image(result, dst)
            done += 1
        except ImageError as e:
            failures.append(str(e))
            bar.write(f"failed {e}", file=sys.stderr)
        except MemoryError:
            failures.append(f"{src}: out of memory (try a smaller --size or --max-megapixels)")
            bar.write(f"failed {failures[-1]}", file=sys.stderr)
        finally:
            bar.update(1)
    bar.close()
    for line in problems:
        print(f"failed {line}", file=sys.stderr)
    summary = f"{done} colorized, {len(failures)} failed" + (f", {skipped} skipped" if skipped else "")
    summary += f"; outputs in {out if out.suffix.lower() not in ('.png', '.jpg', '.jpeg') else out.parent}"
    print(summary, file=sys.stderr)
    return EXIT_FAILED if failures else EXIT_OK


def _progress(total: int, quiet: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="img", disable=quiet or total <= 1, file=sys.stderr, dynamic_ncols=True)


# --------------------------------------------------------------------- models
def cmd_models() -> int:
    from .colorizer import BUNDLED, bundled_path
    from .models import describe, list_models

    print("Bundled models (tinct colorize --model NAME):")
    for name, (_, text) in BUNDLED.items():
        state = "" if bundled_path(name).is_file() else "  [weights missing from this install]"
        print(f"  {name:<22} {text}{state}")
    print("\nArchitectures (trainable; a checkpoint of any works with --model PATH):")
    for name in list_models():
        print(f"  {name:<22} {describe(name)}")
    return EXIT_OK


# --------------------------------------------------------------------- evaluate
def cmd_evaluate(args) -> int:
    from .checkpoint import CheckpointError
    from .evaluate import UsageError, run

    try:
        results = run(args.data, args.models, args.out, size=args.size, crop=args.crop, limit=args.limit, quiet=args.quiet)
    except UsageError as e:
        print(f"tinct: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except CheckpointError as e:
        print(f"tinct: error: cannot load model: {e}", file=sys.stderr)
        return EXIT_USAGE
    for line in results.failures:
        print(f"failed {line}", file=sys.stderr)
    print(f"{len(results.photos)} photos evaluated, {len(results.failures)} failed; report in {args.out}/summary.md, "
          f"gallery in {args.out}/gallery.html", file=sys.stderr)
    return EXIT_FAILED if results.failures else EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
