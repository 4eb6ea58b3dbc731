#!/usr/bin/env bash
# Train every seed recipe for the same short wall-clock budget and print the results table.
# Usage: scripts/budget_all_recipes.sh MINUTES [OUT_ROOT] [JOBS]
#   JOBS=2 runs two queues side by side, each process with 1 torch thread (on a 2-core
#   machine that is about as fast in total as one 2-thread run after another).
# Each run validates on 64 val photos before training and at the end; summary.json holds
# params, img/s and val loss first -> last. Table: python scripts/recipe_table.py OUT_ROOT
#
# Budget overrides (say so wherever the table is shown): the networks that see fewer than
# ~50 batches in the budget at their seed crop train at 128 px crops here, and the seed-003
# stages chain as in docs/RECIPES.md (MSE stage from the base run's best.pt, GAN stage from
# the MSE stage's).
set -u
minutes=${1:-10}
root=${2:-runs/budget}
jobs=${3:-1}
threads=0
[ "$jobs" -gt 1 ] && threads=1
mkdir -p "$root"

run() {
    local name=$1; shift
    [ -f "$root/$name/summary.json" ] && return 0
    rm -rf "${root:?}/$name"    # an unfinished run from an earlier attempt: start it again
    echo "== $name start $(date +%T)"
    tinct train "recipes/$name.yaml" --data ../shared/corpus/train --val-data ../shared/corpus/val \
        --out "$root/$name" train.time_limit="$minutes" train.progress=false train.threads=$threads "$@" \
        >"$root/$name.log" 2>&1 || echo "!! $name failed (see $root/$name.log)"
    echo "== $name end $(date +%T)"
}
small=(data.crop=128 data.resize=144)
queue_a() {
    run seed003-eccv16
    run seed003-eccv16-mse "${small[@]}" model.init="$root/seed003-eccv16/best.pt"
    run seed003-eccv16-gan "${small[@]}" model.init="$root/seed003-eccv16-mse/best.pt"
    run seed000-unet-lab "${small[@]}"
    run seed002-pix2pix
    run seed004-autoencoder
    run seed004-zhang-small
}
queue_b() {
    run seed000-cnn-rgb
    run seed000-unet-rgb
    run seed001-effnet-unet
    run seed001-resnet18-unet
    run seed001-shallow
    run seed002-classify16
    run seed002-regress-resnet34
}
if [ "$jobs" -gt 1 ]; then
    queue_a & queue_b & wait
else
    queue_a; queue_b
fi
python scripts/recipe_table.py "$root"
