#!/usr/bin/env bash
# Train every seed recipe for the same short wall-clock budget and print the results table.
# Usage: scripts/budget_all_recipes.sh MINUTES [OUT_ROOT]
# Each run validates on 64 val photos before training and at the end; summary.json holds
# params, img/s and val loss first -> last. Table: python scripts/recipe_table.py OUT_ROOT
set -u
minutes=${1:-10}
root=${2:-runs/budget}
for recipe in recipes/seed*.yaml; do
    name=$(basename "$recipe" .yaml)
    [ -f "$root/$name/summary.json" ] && continue
    echo "== $name ($(date +%T))"
    tinct train "$recipe" --data ../shared/corpus/train --val-data ../shared/corpus/val --out "$root/$name" \
        train.time_limit="$minutes" train.progress=false || echo "!! $name failed"
done
python scripts/recipe_table.py "$root"
