"""Markdown table of budgeted recipe runs: python scripts/recipe_table.py runs/budget"""

import json
import sys
from pathlib import Path

root = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/budget")
print("| recipe | model | params | img/s | steps | val loss start -> end | val ab MAE end |")
print("|---|---|---:|---:|---:|---|---:|")
for f in sorted(root.glob("*/summary.json")):
    s = json.loads(f.read_text())
    mae = s.get("val_ab_mae_last")
    print(f"| {f.parent.name} | {s['model']} | {s['params'] / 1e6:.2f}M | {s['img_per_s'] or 0:.1f} | {s.get('steps')} | "
          f"{s['val_loss_first']:.4g} -> {s['val_loss_last']:.4g} | {'' if mae is None else f'{mae:.2f}'} |")
