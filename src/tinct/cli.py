"""The ``tinct`` command: parses arguments and calls the modules that do the work.

Exit codes: 0 all went well, 1 some inputs failed, 2 usage error (bad options, nothing
to do, a model that cannot be loaded). Every failure that reaches :func:`main` becomes one
``tinct: error:`` line with its exit code through :func:`tinct.errors.describe`; only a bug
in tinct shows a traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .batch import add_hint_options
from .errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE, describe, one_line


def _error(message: str, code: int = EXIT_USAGE) -> int:
    """Print one ``tinct: error:`` line (no traceback) and return the exit code."""
    print(f"tinct: error: {one_line(message)}", file=sys.stderr)
    return code


def _say(line: str, write=None) -> None:
    """One line to stderr (through the progress bar's ``write`` when given), control characters escaped."""
    (write or (lambda text, file: print(text, file=file)))(one_line(line), file=sys.stderr)


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
    c.add_argument("--max-memory-gb", type=_positive_float, default=2.4,
                   help="refuse an image whose colorization would need more memory, judged from its header "
                        "and the working size (default 2.4)")
    c.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no 'skipped' lines")
    _backend_option(c)
    c.add_argument("--workers", type=_positive_int, default=2, help="threads decoding and encoding beside the network (default 2)")
    c.add_argument("--batch-size", type=_positive_int, default=4, help="photos of the same working shape per forward pass (default 4)")
    c.add_argument("--shard", metavar="i/n", default=None,
                   help="only the i-th of n equal shares of the inputs (sorted by path), for splitting a folder "
                        "across processes or machines, e.g. --shard 2/4")
    add_hint_options(c)

    x = sub.add_parser("export", help="export a model to ONNX (for the onnx backend or other runtimes)",
                       description="Write the network as ONNX (opset %d, dynamic batch, height and width) with tinct's "
                                   "decoding settings in its metadata; tinct colorize --model FILE.onnx runs it. "
                                   "Details: docs/PERFORMANCE.md." % 18)
    x.add_argument("--model", default="default", help="bundled model name, checkpoint file or run folder (default: default)")
    x.add_argument("-o", "--output", required=True, metavar="FILE.onnx", help="where to write the ONNX file")
    x.add_argument("--opset", type=int, default=18, help="ONNX opset (default 18)")

    sub.add_parser("models", help="list bundled models and trainable architectures")

    e = sub.add_parser("evaluate", help="compare colorizers on the same photos (metrics, plots, gallery)",
                       description="Grey each photo, colorize it with every model, compare with the original. "
                                   "Writes metrics.csv, timing.csv, summary.md/.json (with every model's paired "
                                   "difference from the first), plots and gallery.html. "
                                   "Metric definitions: docs/EVALUATION.md.")
    e.add_argument("--data", required=True, metavar="DIR", help="folder of colour photos (searched recursively)")
    e.add_argument("--model", dest="models", action="append", required=True, metavar="MODEL",
                   help="bundled model name, checkpoint file, run folder, or a baseline: gray (ab = 0), "
                        "mean-ab (constant training-set mean chroma); repeat for several, the first being "
                        "the reference the others are compared with")
    e.add_argument("--size", type=_size, default=None, help="working size for checkpoint models (default: each model's own)")
    e.add_argument("--crop", type=_size, default=None, metavar="N",
                   help="resize the short side to N and centre-crop NxN first (quality targets use 256)")
    e.add_argument("--limit", type=_positive_int, default=None, metavar="K", help="only the first K photos, sorted by path")
    e.add_argument("--out", default="eval_report", metavar="REPORT_DIR", help="report folder (default: eval_report/)")
    e.add_argument("--degrade", default=None, metavar="NAME", help="degrade the grey input first: old-print (the truth stays clean)")
    e.add_argument("--degrade-seed", type=int, default=0, metavar="N", help="seed of --degrade (default 0)")
    e.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    k = sub.add_parser("calibrate", help="choose a model's decoding on validation photos and write it into the checkpoint",
                       description="Sweep working size, scales, flip, temperature and chroma gain on validation photos; "
                                   "choose the most accurate setting (PSNR) whose colourfulness is within --max-dcf of "
                                   "the originals'; --out writes the model with that decoding as its defaults.")
    k.add_argument("model", metavar="MODEL", help="checkpoint file, run folder or bundled model name")
    k.add_argument("--data", required=True, metavar="DIR", help="validation photos (never the training photos)")
    k.add_argument("--crop", type=_size, default=256, metavar="N", help="resize the short side to N, centre-crop NxN (256)")
    k.add_argument("--limit", type=_positive_int, default=None, metavar="K", help="about K photos spread over the folder")
    k.add_argument("--sizes", type=_size, nargs="+", default=None, help="working sizes (default: the model's own)")
    k.add_argument("--temperatures", type=float, nargs="+", default=None, help="annealed-mean temperatures")
    k.add_argument("--flip", type=int, choices=[0, 1], nargs="+", default=None, help="flip averaging off (0) / on (1)")
    k.add_argument("--scales", type=_scale_set, nargs="+", default=None,
                   help="multi-scale sets, each comma-separated multipliers of the working size, e.g. 1 0.8,1.4")
    k.add_argument("--gains", type=float, nargs="+", default=None, help="chroma gains")
    k.add_argument("--prior-powers", type=float, nargs="+", default=None,
                   help="prior corrections: logits minus P x log(training ab prior) (bin models; 0 = off)")
    k.add_argument("--prior-data", default=None, metavar="DIR", help="training photos to estimate the ab prior from "
                                                                      "(default: the model's own ab_prior)")
    k.add_argument("--prior-side", type=_size, default=144, metavar="N", help="their squares' side, as trained (144)")
    k.add_argument("--max-chroma-gap", type=float, default=None, metavar="F",
                   help="also require median chroma within F (e.g. 0.1) of the originals'")
    k.add_argument("--maximize", choices=["psnr", "variety"], default="psnr", help="what the chosen setting maximises (psnr)")
    k.add_argument("--max-dcf", type=float, default=5.0, help="colourfulness distance allowed from the originals' (5)")
    k.add_argument("--top1", action="store_true", help="also measure semantic agreement (an ImageNet classifier's top-1)")
    k.add_argument("--out", default=None, metavar="FILE", help="write the calibrated model here (.safetensors or .pt)")

    s = sub.add_parser("serve", help="web page, REST API and the 'which one is real?' study",
                       description="Serve the colorize page (/), the REST API (/api, docs at /docs) and the study "
                                   "(/study, /study/results). Details: docs/SERVE.md.")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    s.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    s.add_argument("--model", dest="models", action="append", metavar="[NAME=]MODEL",
                   help="bundled model name, checkpoint file or run folder, optionally named; repeat for several, "
                        "the first is the default (default: default)")
    s.add_argument("--db", default="tinct-serve/study.sqlite", help="study votes, SQLite; image cache beside it "
                                                                   "(default: tinct-serve/study.sqlite)")
    s.add_argument("--study-data", metavar="DIR", default=None, help="folder of colour photos for the study")
    s.add_argument("--max-upload-mb", type=_positive_float, default=25, help="largest upload, 413 above (default 25)")
    s.add_argument("--max-megapixels", type=_positive_float, default=40, help="largest image, 413 above (default 40)")
    s.add_argument("--workers", type=_positive_int, default=1, help="colorizations run at once (default 1)")
    s.add_argument("--queue", type=int, default=4, help="requests that may wait for a worker; more get 503 (default 4)")
    # Limits (docs/SERVE.md): None leaves ServeSettings' default, which the help states.
    s.add_argument("--max-job-mb", type=_positive_float, help="memory one colorization may need, model and runtimes "
                   "included, estimated from the header before decoding; 413 above (default 2200)")
    s.add_argument("--header-timeout", type=_positive_float, metavar="S",
                   help="seconds for a request's line and headers to arrive, then the connection is closed (default 10)")
    s.add_argument("--body-timeout", type=_positive_float, metavar="S",
                   help="seconds for a request's body to arrive after its headers, then 408 (default 60)")
    s.add_argument("--max-connections", type=_positive_int, help="connections served at once, 503 beyond; "
                   "must exceed --workers + --queue (default 100)")
    s.add_argument("--allowed-host", dest="allowed_hosts", action="append", metavar="HOST",
                   help="a Host name accepted besides localhost and --host (400 for others); repeat for several, "
                        "'*' accepts any")
    s.add_argument("--vote-interval", type=_non_negative_float, metavar="S",
                   help="seconds between two votes of one study session, 429 sooner (default 1)")
    s.add_argument("--votes-per-hour", type=_positive_int, help="votes one study session may cast in any hour, "
                   "429 beyond (default 300)")

    v = sub.add_parser("video", help="colorize a video without flicker, keeping frame rate and audio",
                       description="Colorize a video (any container/codec FFmpeg reads). Frame rate, resolution, "
                                   "timestamps and audio are kept; colour is smoothed along optical flow so it does not "
                                   "flicker. The output appears only when complete. Details: docs/VIDEO.md.")
    v.add_argument("input", metavar="INPUT", help="video file")
    v.add_argument("-o", "--output", required=True, metavar="OUTPUT",
                   help="output file; its extension picks the format: .mp4/.mov/.mkv (H.264), .webm (VP9)")
    v.add_argument("--model", default="default", help="bundled model name, checkpoint file or run folder (default: default)")
    v.add_argument("--size", type=_size, default=None, help="working size: short side the network sees (default: the model's)")
    v.add_argument("--smoothing", type=_smoothing, default=None, metavar="S",
                   help="weight of the previous frames' colour, 0 (each frame alone) to below 1 (steadier); "
                        "default: the value tuned in docs/VIDEO.md")
    v.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    v.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    _backend_option(v)

    t = sub.add_parser("train", help="train a network from a YAML recipe (recipes/*.yaml)",
                       description="Train from a recipe; key.sub=value overrides apply on top and the resolved "
                                   "configuration is saved in the run folder. Under `torchrun --nproc_per_node=N -m tinct "
                                   "train ...` it trains with DistributedDataParallel. Recipes: docs/RECIPES.md.")
    t.add_argument("recipe", metavar="RECIPE.yaml", help="training recipe")
    _train_options(t)
    # Everything after the recipe, options included, lands here; cmd_train sorts it out.
    t.add_argument("overrides", nargs=argparse.REMAINDER, metavar="key=value",
                   help="recipe overrides, e.g. train.steps=30 optim.lr=3e-4")
    return p


def _scale_set(text: str) -> tuple[float, ...]:
    try:
        scales = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not all(v > 0 for v in scales):
        raise argparse.ArgumentTypeError(f"scales must be positive, got {text!r}")
    return scales


def _backend_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=["auto", "onnx", "torch"], default="auto",
                   help="where the network runs: onnx (ONNX Runtime), torch, or auto: onnx when installed (default)")


def _train_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", metavar="DIR", help="training photos (any folder tree); sets data.train")
    p.add_argument("--val-data", metavar="DIR", help="validation photos; sets data.val (default: hold out data.val_split)")
    p.add_argument("--out", metavar="RUN_DIR", help="run folder for checkpoints and logs (default: runs/<recipe name>)")
    p.add_argument("--resume", action="store_true", help="continue the run in RUN_DIR from its last.pt")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    commands = {"colorize": cmd_colorize, "models": cmd_models, "export": cmd_export, "calibrate": cmd_calibrate,
                "evaluate": cmd_evaluate, "serve": cmd_serve, "train": cmd_train, "video": cmd_video}
    if args.command not in commands:  # pragma: no cover
        parser.error(f"unknown command {args.command}")
    try:
        return commands[args.command](args)
    except Exception as e:  # the one place a failure becomes a line and an exit code
        found = describe(e, doing=f"running tinct {args.command}")
        if found is None:
            raise  # a bug in tinct: its traceback is what is needed to fix it
        return _error(*found)


# --------------------------------------------------------------------- colorize
def cmd_colorize(args) -> int:
    from .backends import BackendError
    from .batch import PlanError, colorize_files, plan_colorize, prepare_hints
    from .checkpoint import CheckpointError
    from .colorizer import Colorizer

    try:
        plan = plan_colorize(args.inputs, args.output, args.format, recursive=args.recursive, shard_spec=args.shard,
                             overwrite=args.overwrite)
    except PlanError as e:
        for line in e.problems:
            print(f"tinct: error: {line}", file=sys.stderr)
        return _error(str(e))
    try:
        colorizer = Colorizer.load(args.model, backend=args.backend)
    except (CheckpointError, BackendError) as e:
        return _error(f"cannot load model: {e}")
    colorizer.memory_budget = int(args.max_memory_gb * 1e9)
    hints = prepare_hints(colorizer, plan, args.hint, args.hints, args.reference, args.hints_dir, args.hint_size, _say)

    bar = _progress(plan.total, args.quiet)
    for line in [] if args.quiet else plan.skipped:
        _say(f"skipped {line}", bar.write)
    for line in plan.refused:
        _say(f"failed {line}", bar.write)
    bar.update(len(plan.skipped) + len(plan.refused))

    def progress(src: Path, error: str | None) -> None:
        bar.set_postfix_str(one_line(src.name[-30:]), refresh=False)
        if error:
            _say(f"failed {error}", bar.write)
        bar.update(1)

    result = colorize_files(colorizer, plan.jobs, size=args.size, saturation=args.saturation, temperature=args.temperature,
                            max_pixels=int(args.max_megapixels * 1e6), workers=args.workers,
                            batch_size=args.batch_size, on_progress=progress, hints=hints, hints_dir=args.hints_dir,
                            out_dir=plan.out_dir)
    bar.close()
    failures = [*plan.missing, *plan.refused, *result.failures]
    for line in plan.missing:
        _say(f"failed {line}")
    summary = f"{result.done} colorized, {len(failures)} failed" + (f", {len(plan.skipped)} skipped" if plan.skipped else "")
    _say(summary + f"; outputs in {plan.out_dir}")
    return EXIT_FAILED if failures else EXIT_OK


def _progress(total: int, quiet: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="img", disable=quiet or total <= 1, file=sys.stderr, dynamic_ncols=True)


# --------------------------------------------------------------------- models
def cmd_models(args) -> int:
    from .colorizer import BUNDLED, bundled_installed
    from .models import describe, list_models

    print("Bundled models (tinct colorize --model NAME):")
    for name, (_, text) in BUNDLED.items():
        state = "" if bundled_installed(name) else "  [weights missing from this install]"
        print(f"  {name:<22} {text}{state}")
    print("\nArchitectures (trainable; a checkpoint of any works with --model PATH):")
    for name in list_models():
        print(f"  {name:<22} {describe(name)}")
    return EXIT_OK


# --------------------------------------------------------------------- export
def cmd_export(args) -> int:
    from .backends import BackendError, export_onnx
    from .checkpoint import CheckpointError, load_model
    from .colorizer import resolve_model_path

    if Path(args.output).suffix.lower() != ".onnx":
        return _error(f"-o {args.output}: the output of tinct export is an .onnx file")
    try:
        model, meta = load_model(resolve_model_path(args.model))
        export_onnx(model, meta, args.output, opset=args.opset)
    except CheckpointError as e:
        return _error(f"cannot load model: {e}")
    except BackendError as e:
        return _error(str(e), EXIT_FAILED)
    print(f"wrote {args.output} (opset {args.opset}; input L_n: batch x 1 x H x W, H and W multiples of "
          f"{model.spec.stride})", file=sys.stderr)
    return EXIT_OK


# --------------------------------------------------------------------- evaluate
def cmd_evaluate(args) -> int:
    from .checkpoint import CheckpointError
    from .evaluate import UsageError, run

    try:
        results = run(args.data, args.models, args.out, size=args.size, crop=args.crop, limit=args.limit, quiet=args.quiet,
                      degradation=args.degrade, degrade_seed=args.degrade_seed)
    except UsageError as e:
        return _error(str(e))
    except CheckpointError as e:
        return _error(f"cannot load model: {e}")
    for line in results.failures:
        _say(f"failed {line}")
    print(f"{len(results.photos)} photos evaluated, {len(results.failures)} failed; report in {args.out}/summary.md, "
          f"gallery in {args.out}/gallery.html", file=sys.stderr)
    return EXIT_FAILED if results.failures else EXIT_OK


def cmd_calibrate(args) -> int:
    from .calibrate import run
    from .checkpoint import CheckpointError
    from .io import ImageError

    try:
        run(args.model, args.data, args.crop, args.limit, args.sizes, args.temperatures,
            None if args.flip is None else [bool(f) for f in args.flip], args.scales, args.gains, args.max_dcf,
            args.top1, args.out, prior_powers=args.prior_powers, prior_data=args.prior_data, prior_side=args.prior_side,
            max_chroma_gap=args.max_chroma_gap, maximize=args.maximize)
    except (FileNotFoundError, ImageError) as e:
        return _error(str(e))
    except CheckpointError as e:
        return _error(f"cannot load model: {e}")
    return EXIT_OK


# --------------------------------------------------------------------- train
def cmd_train(args) -> int:
    from .checkpoint import CheckpointError
    from .config import ConfigError
    from .train import TrainingError, run_recipe

    # Options given after the recipe arrive inside args.overrides; parse them out.
    rest = argparse.ArgumentParser(prog="tinct train", add_help=False)
    _train_options(rest)
    rest.add_argument("overrides", nargs="*")
    more = rest.parse_intermixed_args(args.overrides)
    for key in ("data", "val_data", "out"):
        setattr(args, key, getattr(more, key) or getattr(args, key))
    args.resume, args.overrides = args.resume or more.resume, more.overrides
    bad = [o for o in args.overrides if "=" not in o]
    if bad:
        return _error(f"expected key=value overrides after the recipe, got {' '.join(bad)}")
    try:
        summary = run_recipe(args.recipe, args.overrides, args.data, args.val_data, args.out, args.resume)
    except (ConfigError, CheckpointError) as e:  # a recipe or a checkpoint that cannot be used: usage, 2
        return _error(str(e))
    except TrainingError as e:
        return _error(str(e), EXIT_FAILED)
    if summary.get("val_loss_last") is not None:
        print(f"val loss {summary['val_loss_first']:.4g} -> {summary['val_loss_last']:.4g}", file=sys.stderr)
    return EXIT_OK


# --------------------------------------------------------------------- video
def _smoothing(text: str) -> float:
    v = float(text)
    if not 0 <= v < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return v


def cmd_video(args) -> int:
    from .backends import BackendError
    from .checkpoint import CheckpointError
    from .colorizer import Colorizer
    from .video import DEFAULT_SMOOTHING, VideoError, check_output, colorize_video

    try:
        check_output(args.input, args.output, args.overwrite)
        colorizer = Colorizer.load(args.model, backend=args.backend)
    except VideoError as e:
        return _error(str(e))
    except (CheckpointError, BackendError) as e:
        return _error(f"cannot load model: {e}")
    smoothing = DEFAULT_SMOOTHING if args.smoothing is None else args.smoothing
    try:
        summary = colorize_video(args.input, args.output, colorizer, size=args.size, smoothing=smoothing, quiet=args.quiet)
    except VideoError as e:
        return _error(str(e), e.exit_code)
    print(f"{summary}; wrote {Path(args.output)}", file=sys.stderr)
    return EXIT_OK


# --------------------------------------------------------------------- serve
SERVE_LIMITS = ("max_job_mb", "header_timeout", "body_timeout", "max_connections", "allowed_hosts",
                "vote_interval", "votes_per_hour")  # ServeSettings fields set by flags of the same name


def cmd_serve(args) -> int:
    from .checkpoint import CheckpointError

    try:
        from . import serve
    except ImportError as e:
        return _error(f"the server needs its dependencies ({e.name}); pip install -e .")
    try:
        limits = {k: getattr(args, k) for k in SERVE_LIMITS if getattr(args, k) is not None}
        settings = serve.ServeSettings(models=args.models or ["default"], host=args.host, port=args.port, db=Path(args.db),
                                       study_data=args.study_data, max_upload_mb=args.max_upload_mb,
                                       max_megapixels=args.max_megapixels, workers=args.workers, queue=args.queue,
                                       **limits)
        models = serve.load_models(settings.models)
    except ValueError as e:
        return _error(str(e))
    except CheckpointError as e:
        return _error(f"cannot load model: {e}")
    serve.run(settings, models)
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
