"""Train tinct's bundled default model (effunet_bins313) on a folder of photos, on a CPU.

A short, self-contained script for the default model; the general training system
(``tinct train`` with recipes) is separate. Reads top to bottom: options, data cache,
class-rebalancing prior, model, loop, checkpoints.

Usage:
    python scripts/train_default.py --data ../shared/corpus/train --out runs/default
    python scripts/train_default.py ... --resume      # continue after an interruption

The data path is the fastest we found on 2 cores: every photo is decoded once, resized so
its short side is ``--cache-size`` and centre-cropped, and kept as uint8 RGB in one .npy;
batches are random crops + flips converted to Lab on the fly.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from tinct import Colorizer, checkpoint, color
from tinct.losses import GANLoss
from tinct.models import create_model

EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


def _load_square(args) -> np.ndarray:
    path, size = args
    with Image.open(path) as im:
        im.draft("RGB", (size * 2, size * 2))  # fast JPEG downscale-on-decode
        im = im.convert("RGB")
        w, h = im.size
        s = size / min(w, h)
        im = im.resize((max(size, round(w * s)), max(size, round(h * s))), Image.BICUBIC)
        w, h = im.size
        left, top = (w - size) // 2, (h - size) // 2
        return np.asarray(im.crop((left, top, left + size, top + size)), dtype=np.uint8)


def build_cache(data: Path, cache: Path, size: int) -> np.ndarray:
    if cache.exists():
        return np.load(cache, mmap_mode="r")
    files = sorted(p for p in data.rglob("*") if p.suffix.lower() in EXTS)
    print(f"caching {len(files)} photos from {data} at {size}px -> {cache}", flush=True)
    with Pool(2) as pool:
        arr = np.stack(pool.map(_load_square, [(f, size) for f in files], chunksize=32))
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.save(cache, arr)
    return arr


def to_lab_batch(rgb_u8: np.ndarray) -> torch.Tensor:
    """uint8 ``(B, H, W, 3)`` -> Lab ``(B, 3, H, W)``."""
    rgb = torch.from_numpy(np.ascontiguousarray(rgb_u8)).permute(0, 3, 1, 2).float() / 255
    return color.rgb_to_lab(rgb)


def ab_prior(cache: np.ndarray, centers: torch.Tensor, n: int = 2000, seed: int = 0) -> np.ndarray:
    """Frequency of each ab bin over (a sample of) the training photos at 1/4 resolution."""
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(cache), size=min(n, len(cache)), replace=False))
    counts = torch.zeros(len(centers))
    for i in range(0, len(idx), 100):
        lab = to_lab_batch(cache[idx[i:i + 100]])
        ab = F.avg_pool2d(lab[:, 1:], 4)
        counts += torch.bincount(color.nearest_bin(ab, centers).flatten(), minlength=len(centers)).float()
    return counts.numpy()


def sample_batch(cache: np.ndarray, rng: np.random.Generator, batch: int, crop: int):
    idx = np.sort(rng.choice(len(cache), size=batch, replace=False))
    imgs = cache[idx]
    S = imgs.shape[1]
    out = np.empty((batch, crop, crop, 3), np.uint8)
    for j in range(batch):
        y, x = rng.integers(0, S - crop + 1, size=2)
        patch = imgs[j, y:y + crop, x:x + crop]
        out[j] = patch[:, ::-1] if rng.random() < 0.5 else patch
    return to_lab_batch(out)


def rebalanced_ce(logits, target, weights):
    """Zhang et al.'s loss: per-pixel CE against soft targets, weighted by the rebalancing
    weight of the pixel's most likely bin."""
    logp = F.log_softmax(logits, 1)
    ce = -(target * logp).sum(1)  # (B, h, w)
    w = weights[target.argmax(1)]
    return (w * ce).sum() / w.sum()


class SemanticTeacher(torch.nn.Module):
    """Frozen ImageNet EfficientNet-Lite0 classifier comparing the colorized crop with the original.

    ``sem``: how far the colorized crop's class distribution is from the original's (KL
    divergence), as in ChromaGAN's class-distribution loss but measured on the colorized
    output, so the gradient asks for colours that let the classifier see what it sees in the
    real photo. ``feat``: a perceptual loss in this network's own features (L1 distance at
    strides 8, 16 and 32, each divided by the original's mean magnitude there), a denser
    signal than the 1,000 class probabilities and far cheaper on a CPU than VGG.
    """

    def __init__(self, size: int):
        super().__init__()
        from tinct.models.effunet import _TAPS, load_efficientnet_lite0

        self.net = load_efficientnet_lite0(pretrained=True).eval().requires_grad_(False)
        self.size = size
        self.taps = {_TAPS[stride] for stride in (8, 16, 32)}  # the last block at each of these strides

    def run(self, rgb: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """RGB in [0, 1] -> (logits, features at the taps)."""
        net = self.net
        x = F.interpolate(rgb.clamp(0, 1), size=(self.size, self.size), mode="bilinear", align_corners=False)
        x = ((x - 0.5) / 0.5).contiguous(memory_format=torch.channels_last)
        x = net._swish(net._bn0(net._conv_stem(x)))
        taps = []
        for i, block in enumerate(net._blocks):
            x = block(x)
            if i in self.taps:
                taps.append(x)
        head = net._swish(net._bn1(net._conv_head(x)))
        return net._fc(head.mean((2, 3))), taps

    def forward(self, rgb_out: torch.Tensor, rgb_true: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            logits_true, taps_true = self.run(rgb_true)
        logits_out, taps_out = self.run(rgb_out)
        kl = F.kl_div(F.log_softmax(logits_out, 1), F.softmax(logits_true, 1), reduction="batchmean")
        feat = sum((o - t).abs().mean() / t.abs().mean().clamp(min=1e-6) for o, t in zip(taps_out, taps_true))
        return {"sem": kl, "feat": feat / len(taps_true)}


def decode_rgb(logits, L, centers, temperature):
    """Differentiable annealed mean -> ab upsampled to L's size -> RGB; also returns ab."""
    ab = color.annealed_mean(logits, centers, temperature)
    ab_full = F.interpolate(ab, size=L.shape[-2:], mode="bilinear", align_corners=False)
    return color.lab_to_rgb(torch.cat([L, ab_full], 1)), ab


def critic_input(L: torch.Tensor, ab_low: torch.Tensor, size: int) -> torch.Tensor:
    """What the PatchGAN critic sees: normalised L and ab at ``size``, ab coming from the
    network's 1/4-resolution grid for real and colorized crops alike, so the critic judges
    the choice of colours, not the resolution of ab (which the network cannot change)."""
    L_s = F.interpolate(L, size=(size, size), mode="bilinear", align_corners=False)
    ab_s = F.interpolate(ab_low, size=(size, size), mode="bilinear", align_corners=False)
    return torch.cat([color.normalize_l(L_s), color.normalize_ab(ab_s)], 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=Path("runs/default"))
    ap.add_argument("--cache", type=Path, default=None, help="default: OUT/cache_<size>.npy")
    ap.add_argument("--cache-size", type=int, default=144)
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--work-size", type=int, nargs="+", default=None,
                    help="the network's input side: each crop's L is resized to it (with tinct.Colorizer.resize, "
                         "as at inference) while the semantic loss sees the crop at full size; several sizes: "
                         "each step draws one (as multi-scale inference runs the network at each); default: the crop")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=4500)
    ap.add_argument("--lr", type=float, default=1e-3, help="decoder; the pretrained encoder gets lr/3")
    ap.add_argument("--rebalance-lambda", type=float, default=0.5)
    ap.add_argument("--save-every", type=int, default=250)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--init", type=Path, default=None, help="start from this checkpoint's weights (a fine-tune: fresh optimiser and schedule)")
    ap.add_argument("--warmup", type=int, default=100, help="linear warm-up steps before the cosine decay")
    ap.add_argument("--sem-weight", type=float, default=0.0,
                    help="weight of the semantic-consistency loss (frozen EfficientNet-Lite0 classifier, KL between "
                         "its class distributions on the colorized and the original crop); 0 = off")
    ap.add_argument("--sem-size", type=int, default=160, help="the classifier's input size for that loss")
    ap.add_argument("--feat-weight", type=float, default=0.0,
                    help="weight of a perceptual loss in the same classifier's features (L1 at strides 8, 16 "
                         "and 32, each relative to the original's magnitude); 0 = off")
    ap.add_argument("--l1-weight", type=float, default=0.0,
                    help="weight of an L1 loss between the annealed-mean ab (at --temperature) and the truth, "
                         "in normalised ab units; 0 = off")
    ap.add_argument("--adv-weight", type=float, default=0.0,
                    help="weight of an adversarial loss (least squares) from a PatchGAN critic trained beside the "
                         "model on (L, ab) of real and colorized crops; 0 = off")
    ap.add_argument("--adv-size", type=int, default=128, help="the critic's input side")
    ap.add_argument("--temperature", type=float, default=0.45, help="annealed-mean temperature of those losses")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)

    cache = build_cache(args.data, args.cache or out / f"cache_{args.cache_size}.npy", args.cache_size)
    centers = torch.from_numpy(color.bins_313())
    prior_file = out / "prior313.npy"
    if not prior_file.exists():
        np.save(prior_file, ab_prior(cache, centers))
    prior = np.load(prior_file)
    weights = torch.from_numpy(color.rebalance_weights(prior, lam=args.rebalance_lambda, sigma=5.0, centers=centers.numpy()))

    model = create_model("effunet_bins313", pretrained=True).to(memory_format=torch.channels_last)
    enc = list(model.encoder.parameters())
    enc_ids = {id(p) for p in enc}
    dec = [p for p in model.parameters() if id(p) not in enc_ids]
    opt = torch.optim.AdamW([{"params": enc, "lr": args.lr / 3}, {"params": dec, "lr": args.lr}], weight_decay=1e-4)
    base_lrs = [g["lr"] for g in opt.param_groups]
    critic = critic_opt = None
    if args.adv_weight > 0:  # pix2pix's critic and optimiser settings
        critic = create_model("patchgan", in_channels=3).to(memory_format=torch.channels_last)
        critic_opt = torch.optim.Adam(critic.parameters(), lr=2e-4, betas=(0.5, 0.999))
        gan_loss = GANLoss("lsgan")
    step = 0
    rng = np.random.default_rng(args.seed)
    last = out / "last.pt"
    if args.init:
        model.load_state_dict(checkpoint.read(args.init)["state_dict"])
        print(f"initialised from {args.init}", flush=True)
    if args.resume and last.exists():
        blob = checkpoint.read(last)
        model.load_state_dict(blob["state_dict"])
        opt.load_state_dict(blob["optimizer"])
        step = int(blob["step"])
        rng.bit_generator.state = json.loads(blob["numpy_rng"])
        torch.set_rng_state(blob["torch_rng"])
        if critic is not None and "critic" in blob:
            critic.load_state_dict(blob["critic"])
            critic_opt.load_state_dict(blob["critic_optimizer"])
        print(f"resumed from {last} at step {step}", flush=True)

    meta = {"temperature": 0.38, "size": 256, "trained_on": str(args.data), "recipe": vars(args) | {"data": str(args.data), "out": str(out), "cache": str(args.cache), "init": str(args.init)}}
    log = open(out / "log.csv", "a")
    teacher = SemanticTeacher(args.sem_size) if args.sem_weight > 0 or args.feat_weight > 0 else None
    works = args.work_size or [args.crop]
    model.train()
    t0, seen, run_loss = time.time(), 0, 0.0
    parts = {"ce": 0.0, "sem": 0.0, "l1": 0.0, "feat": 0.0, "adv": 0.0, "critic": 0.0}
    while step < args.steps:
        lr_scale = 0.5 * (1 + math.cos(math.pi * step / args.steps)) if step > args.warmup else (step + 1) / (args.warmup + 1)
        for g, lr in zip(opt.param_groups, base_lrs):
            g["lr"] = lr * lr_scale
        lab = sample_batch(cache, rng, args.batch, args.crop)
        # One size draws nothing, so single-size runs keep the random stream of earlier recipes.
        work = works[0] if len(works) == 1 else int(works[rng.integers(len(works))])
        L_in = lab[:, :1]
        if work != args.crop:  # the network sees the crop at the working size, resized as at inference
            L_in = Colorizer.resize(L_in, (work, work))
        L_n = color.normalize_l(L_in).contiguous(memory_format=torch.channels_last)
        ab_true = F.adaptive_avg_pool2d(lab[:, 1:], work // 4)  # at the network's output size
        target = color.soft_encode(ab_true, centers)
        logits = model(L_n)
        loss = ce = rebalanced_ce(logits, target, weights)
        parts["ce"] += ce.item()
        if teacher is not None or args.l1_weight > 0 or critic is not None:
            rgb_out, ab = decode_rgb(logits, lab[:, :1], centers, args.temperature)
            if args.l1_weight > 0:
                l1 = (color.normalize_ab(ab) - color.normalize_ab(ab_true)).abs().mean()
                loss = loss + args.l1_weight * l1
                parts["l1"] += l1.item()
            if teacher is not None:
                judged = teacher(rgb_out, color.lab_to_rgb(lab))
                loss = loss + args.sem_weight * judged["sem"] + args.feat_weight * judged["feat"]
                parts["sem"] += judged["sem"].item()
                parts["feat"] += judged["feat"].item()
            if critic is not None:
                L_crop = lab[:, :1]
                real = critic_input(L_crop, ab_true, args.adv_size).contiguous(memory_format=torch.channels_last)
                fake = critic_input(L_crop, ab, args.adv_size).contiguous(memory_format=torch.channels_last)
                critic.requires_grad_(True)
                critic_loss = 0.5 * (gan_loss(critic(real), True) + gan_loss(critic(fake.detach()), False))
                critic_opt.zero_grad(set_to_none=True)
                critic_loss.backward()
                critic_opt.step()
                critic.requires_grad_(False)  # frozen for the model's pass, as in tinct.tasks.GANTask
                adv = gan_loss(critic(fake), True)  # the model's side: look real to the updated critic
                loss = loss + args.adv_weight * adv
                parts["adv"] += adv.item()
                parts["critic"] += critic_loss.item()
        if not torch.isfinite(loss):
            raise SystemExit(f"loss became {loss.item()} at step {step}; last good checkpoint: {last}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        seen += args.batch
        run_loss += loss.item()
        if step % 25 == 0:
            rate = seen / (time.time() - t0)
            shown = " ".join(f"{k} {v / 25:.4f}" for k, v in parts.items() if v)
            print(f"step {step}/{args.steps} loss {run_loss / 25:.4f} ({shown}) {rate:.1f} img/s", flush=True)
            log.write(f"{step},{run_loss / 25:.5f},{rate:.2f},{time.time():.0f},"
                      + ",".join(f"{parts[k] / 25:.5f}" for k in parts) + "\n")
            log.flush()
            run_loss, parts = 0.0, dict.fromkeys(parts, 0.0)
        if step % args.save_every == 0 or step == args.steps:
            extra = {"optimizer": opt.state_dict(), "step": step, "numpy_rng": json.dumps(rng.bit_generator.state),
                     "torch_rng": torch.get_rng_state()}
            if critic is not None:
                extra |= {"critic": critic.state_dict(), "critic_optimizer": critic_opt.state_dict()}
            checkpoint.save(last, model, meta | {"step": step}, **extra)
    checkpoint.save(out / "final.safetensors", model, meta | {"step": step})
    print("done", flush=True)


if __name__ == "__main__":
    main()
