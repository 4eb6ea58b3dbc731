"""Copy a trained checkpoint into the package as a bundled model, with its decoding defaults.

Usage:
    python scripts/bundle_weights.py runs/default/final.safetensors --size 160 --temperature 0.38 --flip \
        --scales 0.8 1.4 --chroma-gain 1.13 --out src/tinct/weights/default.safetensors
"""

from __future__ import annotations

import argparse

from tinct import checkpoint


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source")
    ap.add_argument("--size", type=int, required=True, help="default working size (short side)")
    ap.add_argument("--temperature", type=float, required=True, help="default annealed-mean temperature")
    ap.add_argument("--flip", action="store_true", help="test-time flip averaging by default")
    ap.add_argument("--scales", type=float, nargs="+", default=[1.0],
                    help="multi-scale averaging: working sizes as multipliers of --size (one pass each)")
    ap.add_argument("--chroma-gain", type=float, default=1.0, help="multiply the predicted ab by this (calibration)")
    ap.add_argument("--out", default="src/tinct/weights/default.safetensors")
    args = ap.parse_args()
    model, meta = checkpoint.load_model(args.source)
    meta.update(size=args.size, temperature=args.temperature, flip=args.flip, scales=args.scales,
                chroma_gain=args.chroma_gain)
    checkpoint.save(args.out, model, meta)
    print(f"wrote {args.out}: {model.arch}, meta {meta}")


if __name__ == "__main__":
    main()
