"""The ``tinct`` command's arguments: every subcommand and option, declared in one place.

:mod:`tinct.cli` parses with :func:`build_parser` and dispatches; the option types here
turn bad values into argparse's usage errors (exit code 2).
"""

from __future__ import annotations

import argparse

from .batch import add_hint_options


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


DEFAULT_PRECISION = "auto"  # of colorize, video and serve (the Python API's is fp32)


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
    c.add_argument("--workers", type=_positive_int, default=None,
                   help="threads decoding and encoding beside the network (default 2); with --ray: Ray workers, each "
                        "loading the model once (default: one per node, or the cluster's CPUs / --worker-cpus, or GPUs / --worker-gpus)")
    c.add_argument("--batch-size", type=_positive_int, default=4, help="photos of the same working shape per forward pass (default 4)")
    c.add_argument("--shard", metavar="i/n", default=None,
                   help="only the i-th of n equal shares of the inputs (sorted by path), for splitting a folder "
                        "across processes or machines, e.g. --shard 2/4")
    add_hint_options(c)
    r = c.add_argument_group("Ray", "Colorize on a Ray cluster, from a laptop to Kubernetes; INPUT and -o may also be "
                             "filesystem URIs (file://, s3://, gs://). Needs pip install 'tinct[ray]'. docs/SCALE.md.")
    r.add_argument("--ray", nargs="?", const="local", default=None, type=_ray_address, metavar="ADDRESS",
                   help="run on Ray: alone, a local Ray instance on this machine; 'auto', HOST:PORT or "
                        "ray://HOST:10001 joins a running cluster. Put it after the inputs (or write --ray=ADDRESS)")
    r.add_argument("--worker-cpus", type=_positive_float, default=None, metavar="N",
                   help="CPUs each Ray worker reserves, and the threads its network uses (default: a node's CPUs, "
                        "one worker per node; with --workers, the CPUs shared among them; 1 for GPU workers)")
    r.add_argument("--worker-gpus", type=_non_negative_float, default=0.0, metavar="N",
                   help="GPUs each Ray worker reserves, e.g. 1 or 0.5; > 0 runs the network on CUDA (default 0)")
    r.add_argument("--ray-cpus", type=_positive_int, default=None, metavar="N",
                   help="CPUs of the local Ray instance --ray starts (default: all of this machine's)")
    r.add_argument("--ray-batch", type=_positive_int, default=16, metavar="N",
                   help="photos per Ray task at most, the unit Ray retries when a worker dies (default 16)")

    c.add_argument("--restore", nargs="?", const="", default=None, metavar="STEPS",
                   help="restore each photo before colouring it: scratches (and dust, cracks, tears), grain, tone; "
                        "comma-separated, 'all', or none for scratches,grain (docs/RESTORE.md)")
    c.add_argument("--damage-model", default="default", metavar="MODEL",
                   help="damage-mask model of --restore: bundled name, checkpoint or run folder (default: default)")

    r = sub.add_parser("restore", help="remove scratches, dust, grain and fading from old photos (grey out)",
                       description="Restore old prints: damage (scratches, cracks, dust, torn corners) found by a small "
                                   "network and inpainted, film grain denoised, a faded tone stretched. Outputs are grey, "
                                   "OUT_DIR/<stem>.png; inputs are never modified. Details and figures: docs/RESTORE.md.")
    r.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or glob patterns")
    r.add_argument("-o", "--output", default="restored", metavar="OUT",
                   help="output folder (default: restored/), or a .png/.jpg file name for a single input")
    r.add_argument("--steps", default=None, metavar="STEPS",
                   help="comma-separated: scratches, grain, tone, or 'all' (default: scratches,grain)")
    r.add_argument("--damage-model", default="default", metavar="MODEL",
                   help="damage-mask model: bundled name, checkpoint or run folder (default: default)")
    r.add_argument("--format", choices=["png", "jpg"], default="png", help="output format when writing to a folder")
    r.add_argument("-r", "--recursive", action="store_true", help="descend into sub-folders of folder inputs")
    r.add_argument("--overwrite", action="store_true", help="replace existing outputs (inputs are never replaced)")
    r.add_argument("--max-megapixels", type=_positive_float, default=180, help="refuse larger images (default 180)")
    r.add_argument("--max-memory-gb", type=_positive_float, default=2.4,
                   help="refuse an image whose restoration would need more memory, judged from its header (default 2.4)")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no 'skipped' lines")
    _backend_option(r)
    r.add_argument("--workers", type=_positive_int, default=2, help="photos restored at once (default 2)")
    r.add_argument("--shard", metavar="i/n", default=None, help="only the i-th of n equal shares of the inputs (sorted by path)")

    x = sub.add_parser("export", help="export a model to ONNX (for the onnx backend or other runtimes)",
                       description="Write the network as ONNX (opset %d, dynamic batch, height and width) with tinct's "
                                   "decoding settings in its metadata; tinct colorize --model FILE.onnx runs it. "
                                   "Details: docs/PERFORMANCE.md." % 18)
    x.add_argument("--model", default="default", help="bundled model name, checkpoint file or run folder (default: default)")
    x.add_argument("-o", "--output", required=True, metavar="FILE.onnx", help="where to write the ONNX file")
    x.add_argument("--opset", type=int, default=18, help="ONNX opset (default 18)")
    x.add_argument("--precision", choices=["fp32", "int8"], default="fp32",
                   help="int8: quantized for ONNX Runtime on a CPU, with the model's shipped calibration ranges "
                        "or ranges measured on --calibration photos (default fp32)")
    x.add_argument("--calibration", metavar="DIR", default=None,
                   help="photos to measure the int8 ranges on (any photos like those you colorize; the network sees "
                        "only their lightness)")
    x.add_argument("--calibration-photos", type=_positive_int, default=64, metavar="N",
                   help="how many of them, spread over the folder (default 64)")

    sub.add_parser("models", help="list bundled models and trainable architectures")

    e = sub.add_parser("evaluate", help="compare colorizers on the same photos (metrics, plots, gallery)",
                       description="Grey each photo, colorize it with every model, compare with the original. "
                                   "Writes metrics.csv, timing.csv, summary.md/.json (with every model's paired "
                                   "difference from the first), plots and gallery.html. "
                                   "Metric definitions: docs/EVALUATION.md.")
    e.add_argument("--data", required=True, metavar="DIR", help="folder of colour photos (searched recursively)")
    e.add_argument("--model", dest="models", action="append", required=True, metavar="MODEL",
                   help="bundled model name, checkpoint file, run folder, or a baseline: gray (ab = 0), "
                        "mean-ab (constant training-set mean chroma), spread:MODEL (MODEL's output with colour hints "
                        "spread by a Gaussian in x, y and L: the non-learned hint baseline); repeat for several, the "
                        "first being the reference the others are compared with")
    e.add_argument("--size", type=_size, default=None, help="working size for checkpoint models (default: each model's own)")
    e.add_argument("--crop", type=_size, default=None, metavar="N",
                   help="resize the short side to N and centre-crop NxN first (quality targets use 256)")
    e.add_argument("--limit", type=_positive_int, default=None, metavar="K", help="only the first K photos, sorted by path")
    e.add_argument("--out", default="eval_report", metavar="REPORT_DIR", help="report folder (default: eval_report/)")
    e.add_argument("--degrade", default=None, metavar="NAME", help="degrade the grey input first: old-print (the truth stays clean)")
    e.add_argument("--degrade-seed", type=int, default=0, metavar="N", help="seed of --degrade (default 0)")
    e.add_argument("--hints", type=_hint_counts, default=None, metavar="N[,N...]",
                   help="also evaluate with N colour hints per photo simulated from the true colours (fixed places, "
                        "the same for every model), e.g. 0,1,2,5,10,20,50; plots PSNR and AUC against N "
                        "(docs/GUIDE.md)")
    e.add_argument("--reference", choices=["self"], default=None,
                   help="self: also evaluate with each photo's own palette as the reference (global hint)")
    e.add_argument("--hint-seed", type=int, default=0, metavar="N", help="seed of the simulated hints' places (default 0)")
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
    _device_options(s)
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
    s.add_argument("--damage-model", default=None, metavar="MODEL",
                   help="damage-mask model of the page's 'Restore first' (the restore field): bundled name, "
                        "checkpoint or run folder, loaded when first asked for (default: default)")

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
    v.add_argument("--scales", type=_positive_float, nargs="+", default=None, metavar="S",
                   help="working-size multipliers whose outputs are averaged per frame (default: the model's; the "
                        "default model's are 0.8 1.4). --scales 0.8 is about 2.5x faster: docs/VIDEO.md")
    v.add_argument("--flip", choices=["on", "off"], default=None,
                   help="average each pass with its mirror image (default: as the model says; the default model: on)")
    v.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    v.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    _backend_option(v)

    t = sub.add_parser("train", help="train a network from a YAML recipe (recipes/*.yaml)",
                       description="Train from a recipe; key.sub=value overrides apply on top and the resolved "
                                   "configuration is saved in the run folder. Under `torchrun --nproc_per_node=N -m tinct "
                                   "train ...` it trains with DistributedDataParallel. Recipes: docs/RECIPES.md.")
    t.add_argument("recipe", metavar="RECIPE.yaml", help="training recipe")
    train_options(t)
    # Everything after the recipe, options included, lands here; cmd_train sorts it out.
    t.add_argument("overrides", nargs=argparse.REMAINDER, metavar="key=value",
                   help="recipe overrides, e.g. train.steps=30 optim.lr=3e-4")
    return p


def _hint_counts(text: str) -> tuple[int, ...]:
    from .hints import MAX_POINTS

    try:
        counts = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers, e.g. 0,1,10, got {text!r}") from None
    if not all(0 <= v <= MAX_POINTS for v in counts):
        raise argparse.ArgumentTypeError(f"hint counts must be 0 to {MAX_POINTS}, got {text!r}")
    return counts


def _ray_address(text: str) -> str:
    """``local``, ``auto``, ``ray://HOST:PORT`` or ``HOST:PORT``: anything else is most likely an
    input that ``--ray`` took for its address."""
    if text in ("local", "auto") or text.startswith("ray://") or (":" in text and "://" not in text):
        return text
    raise argparse.ArgumentTypeError(f"expected auto, HOST:PORT or ray://HOST:PORT, got {text!r} (put --ray after "
                                     "the inputs, or write --ray=ADDRESS)")


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
    _device_options(p)


def _device_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", choices=["cpu", "cuda", "auto"], default="cpu",
                   help="cpu (default), cuda (PyTorch on the GPU), or auto: cuda when PyTorch sees one")
    p.add_argument("--precision", choices=["fp32", "int8", "auto"], default=DEFAULT_PRECISION,
                   help="the network's arithmetic: fp32, int8 (ONNX Runtime on a CPU), or auto: int8 where it was "
                        f"measured faster at the same quality (default {DEFAULT_PRECISION}; docs/PERFORMANCE.md)")


def train_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", metavar="DIR", help="training photos (any folder tree); sets data.train")
    p.add_argument("--val-data", metavar="DIR", help="validation photos; sets data.val (default: hold out data.val_split)")
    p.add_argument("--out", metavar="RUN_DIR", help="run folder for checkpoints and logs (default: runs/<recipe name>)")
    p.add_argument("--resume", action="store_true", help="continue the run in RUN_DIR from its last.pt")


def _smoothing(text: str) -> float:
    v = float(text)
    if not 0 <= v < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return v
