"""Markdown table of budgeted recipe runs.

Usage:
    python scripts/recipe_table.py runs/budget10 [--grey]

``--grey`` adds the ab MAE that a grey output (ab = 0) scores on each run's own validation
crops (the same photos, crop and resize as its config.yaml), the yardstick for the last column.
"""

import argparse
import functools
import json
from pathlib import Path

import numpy as np
import yaml


@functools.cache
def grey_ab_mae(val_dir: str, limit: int, crop: int, resize: int) -> float:
    from tinct import color, data
    from tinct.io import find_images

    files = find_images(val_dir)
    if len(files) > limit:  # as tinct.data.build picks them
        files = [files[i] for i in np.linspace(0, len(files) - 1, limit).round().astype(int)]
    crops = data.PhotoCrops(files, crop, resize)
    ab_n = data.collate([crops[i] for i in range(len(crops))])["ab_n"]
    return float(color.denormalize_ab(ab_n.abs().mean()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", nargs="?", default="runs/budget")
    ap.add_argument("--grey", action="store_true", help="add a grey output's ab MAE on the same crops")
    args = ap.parse_args()
    head = "| recipe | model | params | img/s | steps | val loss start -> end | val ab MAE end |"
    print(head + (" grey output's ab MAE |" if args.grey else ""))
    print("|---|---|---:|---:|---:|---|---:|" + ("---:|" if args.grey else ""))
    for f in sorted(Path(args.root).glob("*/summary.json")):
        s = json.loads(f.read_text())
        mae = s.get("val_ab_mae_last")
        row = (f"| {f.parent.name} | {s['model']} | {s['params'] / 1e6:.2f}M | {s['img_per_s'] or 0:.1f} | {s.get('steps')} | "
               f"{s['val_loss_first']:.4g} -> {s['val_loss_last']:.4g} | {'' if mae is None else f'{mae:.2f}'} |")
        if args.grey:
            d = yaml.safe_load((f.parent / "config.yaml").read_text())["data"]
            row += f" {grey_ab_mae(d['val'], d['val_limit'], d['crop'], d['resize'] or d['crop']):.2f} |"
        print(row)


if __name__ == "__main__":
    main()
