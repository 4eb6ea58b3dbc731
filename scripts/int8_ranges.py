"""Measure the bundled model's int8 calibration ranges and write the table tinct ships.

Usage:
    python scripts/int8_ranges.py --data ../shared/corpus/train [--photos 64] [--out src/tinct/int8/default.json]

Runs the float32 export of the model over ``--photos`` training photos spread over the
folder, at the colorizer's working sizes and flips (tinct.quantize.calibration_inputs), and
writes each activation's [min, max] with the weights' SHA-256. Re-run it whenever the
bundled weights change (an old table is ignored: its hash no longer matches). The table
says ``"auto": false`` until its int8 model is evaluated within the quality bound (tinct
evaluate --model default@fp32 --model default@int8); set it to true by hand then.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from tinct.int8_export import calibrate
from tinct.io import atomic_write


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--data", required=True, help="training photos (never the validation photos)")
    ap.add_argument("--photos", type=int, default=64)
    ap.add_argument("--out", default=str(Path(__file__).parents[1] / "src/tinct/int8/default.json"))
    args = ap.parse_args()
    t0 = time.perf_counter()
    table, weights, _ = calibrate(args.model, args.data, args.photos)
    table["auto"] = False
    text = json.dumps(table, indent=0, sort_keys=True)
    atomic_write(args.out, lambda t: Path(t).write_text(text + "\n"))
    print(f"{args.out}: {len(table['ranges'])} tensors from {table['calibration']['photos']} photos "
          f"for {weights.name} in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
