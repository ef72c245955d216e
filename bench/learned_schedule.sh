#!/usr/bin/env bash
# VDM's learned schedule against linear log-SNR at equal steps (issue 17): trains configs/quickstart.json and
# configs/vdm-learned-fashion.json (the same run with process.schedule learned-logsnr) for STEPS steps each, then
# scores each checkpoint's 500 test images three ways: Monte Carlo with t uniform (the training estimator's
# sampling, whose per-example spread the learned shape is trained to shrink), Monte Carlo with t by log-SNR, and the
# adaptive quadrature ("exact"). Writes bench/results/learned_schedule.jsonl (one line per run and estimator).
# Usage: bench/learned_schedule.sh [STEPS=1500] [BUILD=build-test]
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-1500}
G=${BUILD:-build-test}/bin/gsdiff
OUT=${TMPDIR:-/tmp}/gsdiff_learned_schedule
RES=bench/results/learned_schedule.jsonl
rm -rf "$OUT" && mkdir -p "$OUT" bench/results
: > "$OUT/results.part"
for cfg in quickstart vdm-learned-fashion; do
  t0=$(date +%s)
  "$G" train --config "configs/$cfg.json" --set train.steps="$STEPS" --set train.tensorboard=false --set sample.num=0 \
      --threads 1 --quiet --out "$OUT/$cfg"
  t1=$(date +%s)
  ck=$(ls "$OUT/$cfg"/ckpt-*.gsdiff | sort | tail -1)
  for est in "--time-sampling uniform --time-samples 1" "--time-sampling logsnr --time-samples 1" "--exact"; do
    line=$("$G" eval --checkpoint "$ck" $est --threads 1)
    echo "{\"config\": \"$cfg\", \"steps\": $STEPS, \"train_wall_s\": $((t1 - t0)), \"flags\": \"$est\", \"commit\": \"$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- core train sample models tools || echo -dirty)\", \"eval\": $line}" >> "$OUT/results.part"
    echo "$cfg $est: $line"
  done
done
mv "$OUT/results.part" "$RES"
