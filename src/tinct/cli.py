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

from .cli_parser import build_parser, train_options
from .errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE, describe, one_line


def _error(message: str, code: int = EXIT_USAGE) -> int:
    """Print one ``tinct: error:`` line (no traceback) and return the exit code."""
    print(f"tinct: error: {one_line(message)}", file=sys.stderr)
    return code


def _say(line: str, write=None) -> None:
    """One line to stderr (through the progress bar's ``write`` when given), control characters escaped."""
    (write or (lambda text, file: print(text, file=file)))(one_line(line), file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    commands = {"colorize": cmd_colorize, "restore": cmd_restore, "models": cmd_models, "export": cmd_export, "calibrate": cmd_calibrate,
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
    from .batch import PlanError, colorize_files, plan_colorize

    if args.ray is not None:
        return cmd_colorize_ray(args)
    try:
        plan = plan_colorize(args.inputs, args.output, args.format, recursive=args.recursive, shard_spec=args.shard,
                             overwrite=args.overwrite)
    except PlanError as e:
        return _plan_error(e)
    colorizer, hints = _colorizer_and_hints(args, plan)
    if colorizer is None:
        return EXIT_USAGE
    restorer = None if args.restore is None else _restorer(args.damage_model, args.restore, args.backend, args.max_memory_gb)
    if isinstance(restorer, int):
        return restorer
    bar = _start_progress(plan, args.quiet)
    progress = _photo_progress(bar)
    result = colorize_files(colorizer, plan.jobs, size=args.size, saturation=args.saturation, temperature=args.temperature,
                            max_pixels=int(args.max_megapixels * 1e6), workers=args.workers or 2,
                            batch_size=args.batch_size, on_progress=progress, hints=hints, hints_dir=args.hints_dir,
                            out_dir=plan.out_dir, restorer=restorer)
    bar.close()
    return _summary(plan, result.done, result.failures)


def cmd_colorize_ray(args) -> int:
    """``tinct colorize ... --ray [ADDRESS]``: the same jobs, run by Ray (tinct.cluster, docs/SCALE.md)."""
    from .batch import PlanError, prepare_hints
    from .cluster import driver, storage
    from .cluster.worker import Settings
    from .colorizer import BUNDLED

    driver.require_ray()
    started = driver.started_ns()
    try:
        plan, jobs = storage.plan_run(args.inputs, args.output, args.format, recursive=args.recursive,
                                      shard_spec=args.shard, overwrite=args.overwrite)
    except PlanError as e:
        return _plan_error(e)
    if args.hints_dir and isinstance(plan.out_dir, storage.Ref):
        return _error("--hints-dir with --ray needs local folders (or file paths every worker can read), not URIs")
    if args.model in BUNDLED and not (args.hint or args.hints or args.reference):
        # Nothing to check here: each worker loads the bundled model (a second load in the
        # driver cost ~1.2 s of the 2 cores while Ray started, docs/SCALE.md).
        hints = prepare_hints(None, plan, None, None, None, args.hints_dir, args.hint_size, _say)
    else:  # a model file, or hints: load it here to check both before any worker starts
        colorizer, hints = _colorizer_and_hints(args, plan)
        if colorizer is None:
            return EXIT_USAGE
        del colorizer  # each worker loads its own
    seconds = driver.connect(None if args.ray == "local" else args.ray, num_cpus=args.ray_cpus)
    settings = Settings(model=driver.model_reference(args.model), backend=args.backend,
                        device="cuda" if args.worker_gpus else "cpu", size=args.size, saturation=args.saturation,
                        temperature=args.temperature, max_pixels=int(args.max_megapixels * 1e6),
                        max_memory=int(args.max_memory_gb * 1e9), batch_size=args.batch_size, hints=hints,
                        hints_dir=args.hints_dir, out_dir=str(plan.out_dir), started_ns=started)
    if not args.quiet:
        _say(f"Ray {'started' if args.ray == 'local' else 'joined'} in {seconds:.1f} s")
    bar = _start_progress(plan, args.quiet)
    failed = 0

    def progress(src: str, error: str | None) -> None:
        nonlocal failed
        if error:
            failed += 1
            _say(f"failed {error}", bar.write)
        bar.set_postfix_str(f"{failed} failed", refresh=False)
        bar.update(1)

    result = driver.run(jobs, settings, workers=args.workers, worker_cpus=args.worker_cpus,
                        worker_gpus=args.worker_gpus, task_photos=args.ray_batch, on_result=progress)
    bar.close()
    where = driver.write_failures(plan.out_dir, [*plan.missing, *plan.refused, *result.failures])
    if plan.missing or plan.refused or result.failures:
        _say(f"failures listed in {where}")
    return _summary(plan, result.done, result.failures)


def _plan_error(e) -> int:
    for line in e.problems:
        print(f"tinct: error: {one_line(line)}", file=sys.stderr)
    return _error(str(e))


def _colorizer_and_hints(args, plan):
    """The colorizer of ``--model`` with ``--max-memory-gb``, and the run's shared hints;
    (None, None) after printing why the model cannot be loaded."""
    from .backends import BackendError
    from .batch import prepare_hints
    from .checkpoint import CheckpointError
    from .colorizer import Colorizer

    try:
        colorizer = Colorizer.load(args.model, device=args.device, backend=args.backend, precision=args.precision)
    except (CheckpointError, BackendError) as e:
        _error(f"cannot load model: {e}")
        return None, None
    colorizer.memory_budget = int(args.max_memory_gb * 1e9)
    hints = prepare_hints(colorizer, plan, args.hint, args.hints, args.reference, args.hints_dir, args.hint_size, _say)
    return colorizer, hints


def _start_progress(plan, quiet: bool):
    """The progress bar of a colorize run, with the skipped and refused inputs already counted."""
    bar = _progress(plan.total, quiet)
    for line in [] if quiet else plan.skipped:
        _say(f"skipped {line}", bar.write)
    for line in plan.refused:
        _say(f"failed {line}", bar.write)
    bar.update(len(plan.skipped) + len(plan.refused))
    return bar


def _photo_progress(bar):
    """The per-photo callback of a run's progress bar: the photo's name, and a line for each failure."""
    def progress(src: Path, error: str | None) -> None:
        bar.set_postfix_str(one_line(src.name[-30:]), refresh=False)
        if error:
            _say(f"failed {error}", bar.write)
        bar.update(1)

    return progress


def _summary(plan, done: int, failed: list[str], did: str = "colorized") -> int:
    failures = [*plan.missing, *plan.refused, *failed]
    for line in plan.missing:
        _say(f"failed {line}")
    summary = f"{done} {did}, {len(failures)} failed" + (f", {len(plan.skipped)} skipped" if plan.skipped else "")
    _say(summary + f"; outputs in {plan.out_dir}")
    return EXIT_FAILED if failures else EXIT_OK


def _restorer(model: str, steps: str | None, backend: str, max_memory_gb: float):
    """The Restorer of ``--restore``/``tinct restore``, or an exit code after its error line."""
    from .backends import BackendError
    from .checkpoint import CheckpointError
    from .restore import Restorer, RestoreError

    try:
        restorer = Restorer.load(model, steps, backend=backend)
    except RestoreError as e:
        return _error(str(e))
    except (CheckpointError, BackendError) as e:
        return _error(f"cannot load damage model: {e}")
    restorer.memory_budget = int(max_memory_gb * 1e9)
    return restorer


# --------------------------------------------------------------------- restore
def cmd_restore(args) -> int:
    from .batch import PlanError, plan_colorize, restore_files

    try:
        plan = plan_colorize(args.inputs, args.output, args.format, recursive=args.recursive, shard_spec=args.shard,
                             overwrite=args.overwrite, verb="restore")
    except PlanError as e:
        return _plan_error(e)
    restorer = _restorer(args.damage_model, args.steps, args.backend, args.max_memory_gb)
    if isinstance(restorer, int):
        return restorer
    bar = _start_progress(plan, args.quiet)
    result = restore_files(restorer, plan.jobs, max_pixels=int(args.max_megapixels * 1e6), workers=args.workers,
                           on_progress=_photo_progress(bar))
    bar.close()
    return _summary(plan, result.done, result.failures, f"restored ({', '.join(restorer.steps)})")


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
        if args.precision == "int8":
            from .int8_export import export_int8

            export_int8(args.model, args.output, args.calibration, args.calibration_photos)
            print(f"wrote {args.output} (int8, ONNX Runtime on a CPU)", file=sys.stderr)
            return EXIT_OK
        model, meta = load_model(resolve_model_path(args.model))
        export_onnx(model, meta, args.output, opset=args.opset)
    except (CheckpointError, FileNotFoundError) as e:
        return _error(f"cannot load model: {e}" if isinstance(e, CheckpointError) else str(e))
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
                      degradation=args.degrade, degrade_seed=args.degrade_seed, hint_counts=args.hints,
                      reference=args.reference, hint_seed=args.hint_seed)
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
    train_options(rest)
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
def cmd_video(args) -> int:
    from .backends import BackendError
    from .checkpoint import CheckpointError
    from .colorizer import Colorizer
    from .video import DEFAULT_SMOOTHING, VideoError, check_output, colorize_video

    try:
        check_output(args.input, args.output, args.overwrite)
        colorizer = Colorizer.load(args.model, device=args.device, backend=args.backend, precision=args.precision)
    except VideoError as e:
        return _error(str(e))
    except (CheckpointError, BackendError) as e:
        return _error(f"cannot load model: {e}")
    if args.scales:  # the network's passes a frame: fewer, faster (docs/VIDEO.md, "Speed")
        colorizer.scales = tuple(args.scales)
    if args.flip:
        colorizer.flip = args.flip == "on"
    smoothing = DEFAULT_SMOOTHING if args.smoothing is None else args.smoothing
    try:
        summary = colorize_video(args.input, args.output, colorizer, size=args.size, smoothing=smoothing, quiet=args.quiet)
    except VideoError as e:
        return _error(str(e), e.exit_code)
    print(f"{summary}; wrote {Path(args.output)}", file=sys.stderr)
    return EXIT_OK


# --------------------------------------------------------------------- serve
SERVE_FIELDS = ("max_job_mb", "header_timeout", "body_timeout", "max_connections", "allowed_hosts",
                "vote_interval", "votes_per_hour", "damage_model")  # ServeSettings fields set by flags of the same name


def cmd_serve(args) -> int:
    from .backends import BackendError
    from .checkpoint import CheckpointError

    try:
        from . import serve
    except ImportError as e:
        return _error(f"the server needs its dependencies ({e.name}); pip install -e .")
    try:
        fields = {k: getattr(args, k) for k in SERVE_FIELDS if getattr(args, k) is not None}
        settings = serve.ServeSettings(models=args.models or ["default"], host=args.host, port=args.port, db=Path(args.db),
                                       study_data=args.study_data, max_upload_mb=args.max_upload_mb,
                                       max_megapixels=args.max_megapixels, workers=args.workers, queue=args.queue,
                                       **fields)
        models = serve.load_models(settings.models, device=args.device, precision=args.precision)
    except ValueError as e:
        return _error(str(e))
    except (CheckpointError, BackendError) as e:
        return _error(f"cannot load model: {e}")
    serve.run(settings, models)
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
