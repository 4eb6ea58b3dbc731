"""Training configuration: one small dataclass per component, read from a YAML recipe.

A recipe is a YAML file with the sections below (all optional but ``model.name``);
``key.sub=value`` overrides from the command line apply on top (values are parsed as
YAML: ``train.steps=30``, ``optim.betas=[0.5,0.999]``, ``model.init=null``), and the
resolved result is saved as ``config.yaml`` beside the run's checkpoints.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A recipe or override that cannot be used; the message says which key and why."""


@dataclass
class ModelConfig:
    name: str = ""  # a registered network (``tinct models``)
    kwargs: dict = field(default_factory=dict)  # passed to the factory
    pretrained: bool = True  # load ImageNet weights where the family has them
    init: str | None = None  # start from this checkpoint's weights (e.g. a previous stage's best.pt)
    size: int | None = None  # inference working size saved in checkpoints; default: data.resize
    temperature: float = 0.38  # annealed-mean temperature for bin models (decoding and inference)


@dataclass
class HintsConfig:
    """How training simulates colour hints (``data.hints``, ``tinct.hints.simulate``) for a
    network that takes them (``model.kwargs.hints: true``); off unless ``enabled``."""

    enabled: bool = False
    p_none: float = 0.25  # share of crops with no local hint
    mean_points: float = 8.0  # mean count of points in a crop that has some (geometric)
    max_points: int = 64
    patch: tuple[int, int] = (1, 9)  # a point's square side, pixels at the network's input size (min, max)
    p_global: float = 0.25  # share of crops given their own colour histogram as a global hint


@dataclass
class DataConfig:
    train: str | None = None  # folder of colour photos, searched recursively
    val: str | None = None  # validation folder; default: hold out ``val_split`` of train
    val_split: float = 0.02
    val_limit: int = 64  # validate on at most this many photos (evenly spaced in path order)
    crop: int = 128  # square training crop, pixels
    resize: int | None = None  # short side the photo is scaled to before cropping; default: crop
    scale: tuple[float, float] = (1.0, 1.0)  # random jitter of ``resize`` (min, max multiplier)
    flip: bool = True  # random horizontal flips
    min_chroma: float = 0.0  # drop training photos whose mean chroma (Lab units) is below this
    cache: bool = True  # decode every photo once into a uint8 array (fast on few cores)
    cache_dir: str | None = None  # default: $TINCT_CACHE_DIR/data, else ~/.cache/tinct/data
    batch_size: int = 16  # per process
    workers: int = 0  # data-loader worker processes
    # Batches made ready ahead by a background thread (crops, Lab, the network's input and the
    # task's targets) while the model trains on the current one; 0 = in the loop. On 2 cores the
    # model already uses both, and the thread only took time from it (docs/PERFORMANCE.md).
    prefetch: int = 0
    # How training crops are drawn: "epochs" (each epoch a permutation of the photos, random
    # scaled window + flip per photo) or "draws" (each step draws batch_size distinct photos
    # at random, an integer-placed crop of each photo's cached square + flip: no resampling;
    # the bundled default model's sampler; needs scale [1, 1]).
    sampler: str = "epochs"
    # The network's input side, one drawn per step: the crop's L is resized to it (as at
    # inference) while targets and loss terms see the crop at full size; [] = the crop.
    # Classification tasks only.
    work_sizes: list = field(default_factory=list)
    hints: HintsConfig = field(default_factory=HintsConfig)
    # Augmentation of the network's input only (targets stay clean): a tinct.degrade preset
    # ("old-print") applied to each training crop's L with probability degrade_p, drawn from
    # (seed, step, position in the batch); null = off, and the batches are unchanged.
    degrade: str | None = None
    degrade_p: float = 0.5


@dataclass
class TermsConfig:
    """Loss terms on a bin model's decoded colours, added to a classification task's
    cross-entropy (``tinct.tasks.terms``); each weight 0 = off."""

    temperature: float = 0.45  # annealed-mean temperature of the decoded colours
    l1: float = 0.0  # L1 between decoded and true ab (normalised units)
    semantic: float = 0.0  # KL between a frozen ImageNet EfficientNet-Lite0's class distributions
    features: float = 0.0  # L1 in that classifier's features at strides 8, 16, 32 (relative)
    teacher_size: int = 160  # the classifier's input side
    adversarial: float = 0.0  # a critic's adversarial loss (task.discriminator, task.gan_mode)
    critic_size: int = 128  # the critic's input side
    histogram: float = 0.0  # KL(true || predicted) of each photo's ab-bin histogram (its pixels' mean distributions)
    variety: float = 0.0  # |variety(decoded) - variety(true)| per photo, variety = 1 - |mean ab| / mean |ab|


@dataclass
class TaskConfig:
    kind: str = "regression"  # regression | classification | gan | segmentation
    loss: str = "l1"  # pixel loss (regression; GAN reconstruction): l1 | mse | smooth_l1 | mix
    mix_p: float = 0.5  # mix = mix_p * L1 + (1 - mix_p) * MSE
    encoding: str = "soft"  # classification target: soft (Zhang's 5-NN Gaussian) | hard (nearest bin)
    class_weights: str = "none"  # none | rebalance (Zhang: lambda, smoothed prior) | inv_sqrt (seed 002)
    rebalance_lambda: float = 0.5
    prior_sigma: float = 5.0  # Gaussian smoothing of the bin prior, Lab units
    prior_images: int = 500  # training photos sampled to estimate the bin prior
    discriminator: str = "patchgan"
    discriminator_kwargs: dict = field(default_factory=dict)
    gan_mode: str = "vanilla"  # vanilla | lsgan
    recon_weight: float = 10.0  # lambda on the GAN's pixel loss
    perceptual_weight: float = 0.0  # weight of the VGG-19 perceptual loss (GAN generator)
    perceptual_layers: list = field(default_factory=lambda: ["relu1_2", "relu2_2", "relu3_4", "relu4_4"])
    # GAN: train only the discriminator for this many first steps, so that a pretrained
    # generator (seed 003's stage 2) is not pushed around by a still-random critic.
    d_warmup: int = 0
    adv_weight: float = 1.0  # weight of the generator's adversarial loss
    # GAN: the adversarial weight grows linearly from 0 to adv_weight over the generator's
    # first adv_ramp steps (0 = full weight at once), so a pretrained generator is first
    # pulled by its pixel and perceptual losses and only then by a critic that has learnt.
    adv_ramp: int = 0
    terms: TermsConfig = field(default_factory=TermsConfig)  # classification only
    # segmentation (a damage mask, tinct.tasks.segmentation): the tinct.degrade preset that
    # damages each crop with probability damage_p, its marks' scale drawn per crop from
    # damage_scale; the target is what the damage changed by at least min_change (grey, 0-1).
    damage: str = "damage-train"
    damage_p: float = 0.85
    damage_scale: tuple[float, float] = (0.5, 1.5)
    min_change: float = 0.03
    pos_weight: float = 1.0  # BCE weight of damaged pixels
    dice_weight: float = 1.0  # loss = BCE + dice_weight * soft Dice


@dataclass
class OptimConfig:
    name: str = "adam"  # adam | adamw | sgd
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    momentum: float = 0.9  # sgd only
    weight_decay: float = 0.0
    encoder_lr_scale: float = 1.0  # lr multiplier for a pretrained ``model.encoder``
    schedule: str = "constant"  # constant | cosine (to 0 at train.steps, after warm-up) | cosine_total (tinct.tasks.lr_factor)
    warmup: int = 0  # linear warm-up steps
    grad_clip: float = 0.0  # max gradient norm; 0 = off
    lr_d: float = 1e-4  # discriminator learning rate (same schedule)
    name_d: str | None = None  # discriminator optimiser; default: name
    betas_d: tuple[float, float] | None = None  # default: betas
    weight_decay_d: float | None = None  # default: weight_decay


@dataclass
class TrainConfig:
    steps: int = 1000
    time_limit: float = 0.0  # minutes of training (after start-up) before stopping cleanly; 0 = none
    log_every: int = 25  # train.csv row and progress-bar refresh
    eval_every: int = 250  # validation, curves.png, a samples/ grid, best.pt
    save_every: int = 250  # last.pt
    eval_at_start: bool = True  # validate at step 0 (the "before" of every curve)
    # Before each validation, recompute BatchNorm statistics over this many training batches
    # ("precise BN"); 0 keeps the running averages, which lag fast-changing early weights.
    precise_bn: int = 8
    samples: int = 6  # photos in each validation grid
    seed: int = 0
    threads: int = 0  # torch intra-op threads per process; 0 = this process's share of the cores (train.intra_op_threads)
    device: str = "auto"  # auto | cpu | cuda
    channels_last: bool = False  # networks and their 4-D inputs in channels-last memory layout
    precision: str = "fp32"  # fp32 | bf16 | auto (bf16 autocast where the device has native bf16; tinct.precision)
    progress: bool = True


@dataclass
class Config:
    description: str = ""
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


def load(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read a recipe, apply ``key.sub=value`` overrides, validate.

    Raises:
        ConfigError: unreadable file, unknown key, wrong type, or no model name.
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the recipe: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a recipe is a YAML mapping of sections (model, data, task, optim, train)")
    for item in overrides:
        apply_override(raw, item)
    cfg = from_dict(Config, raw, "")
    if not cfg.model.name:
        raise ConfigError(f"{path}: model.name is required (see `tinct models`)")
    return cfg


def apply_override(raw: dict, item: str) -> None:
    """Set ``a.b.c=value`` in a nested dict; the value is parsed as YAML."""
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {item!r} is not of the form key.sub=value")
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError:
        value = text
    parts = key.strip().split(".")
    node = raw
    for p in parts[:-1]:
        if node.get(p) is None:
            node[p] = {}
        if not isinstance(node[p], dict):
            raise ConfigError(f"override {item!r}: {p!r} is not a section")
        node = node[p]
    node[parts[-1]] = value


def from_dict(cls, raw: dict, where: str):
    """Build dataclass ``cls`` from a dict, refusing unknown keys and coercing simple types."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where or 'recipe'}: expected a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ConfigError(f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(where + k for k in unknown)}; "
                          f"known in {where.rstrip('.') or 'the recipe'}: {', '.join(sorted(names))}")
    values = {}
    for name, value in raw.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            values[name] = from_dict(hint, value or {}, f"{where}{name}.")
        else:
            values[name] = _coerce(value, hint, where + name)
    return cls(**values)


def _coerce(value: Any, hint, key: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if value is None:
        if type(None) in args:
            return None
        raise ConfigError(f"{key}: a value is required")
    if args and type(None) in args:  # Optional[X]
        hint = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    try:
        if hint is bool:
            if not isinstance(value, bool):
                raise TypeError
            return value
        if hint is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise TypeError
            return int(value)
        if hint is float:
            if isinstance(value, bool):
                raise TypeError
            return float(value)  # also "1e-3", which YAML 1.1 reads as a string
        if hint is str:
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                raise TypeError
            return str(value)
        if origin is tuple:
            if not isinstance(value, (list, tuple)) or len(value) != len(args):
                raise TypeError
            return tuple(_coerce(v, a, key) for v, a in zip(value, args))
        if hint is list or origin is list:
            if not isinstance(value, (list, tuple)):
                raise TypeError
            return list(value)
        if hint is dict or origin is dict:
            if not isinstance(value, dict):
                raise TypeError
            return dict(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key}: expected {_type_name(hint)}, got {value!r}") from None
    return value


def _type_name(hint) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def to_dict(cfg: Config) -> dict:
    """Plain nested dict (tuples as lists) for YAML and checkpoints."""
    def plain(v):
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        return v

    return plain(dataclasses.asdict(cfg))


def dump(cfg: Config) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False, default_flow_style=False, width=100)
