#!/usr/bin/env bash
# GenMD4's learned masking schedule against MDLM's linear one at equal steps (issue 17): trains configs/text8-absorbing.json
# and configs/text8-genmd4.json, shrunk alike (a 4-layer 128-wide transformer, 128-character crops, batch 32), on GCIDE
# dictionary text (Debian dict-gcide) in text8 form for STEPS steps each, then scores 128 test sequences with a fixed
# 64-node Gauss–Legendre rule over t (common noise; "quadrature", not converged: the adaptive rule needs thousands of
# nodes for categorical x_t, README) and with Monte Carlo (16 t per example). Writes bench/results/masking_schedule.jsonl.
# Usage: bench/masking_schedule.sh [STEPS=1500] [GSDIFF=build-test/bin/gsdiff]
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-1500}
G=${2:-build-test/bin/gsdiff}
WORK=${WORK:-/tmp/gsdiff_masking_schedule}
RES=bench/results/masking_schedule.jsonl
mkdir -p "$WORK" bench/results
TEXT=$WORK/gcide.text8
if [ ! -s "$TEXT" ]; then
  zcat /usr/share/dictd/gcide.dict.dz | head -c 40000000 | sed -e 's/<[^>]*>/ /g' > "$WORK/gcide.txt"
  "$G" data text8ify "$WORK/gcide.txt" "$TEXT"
fi
COMMIT="$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- core train sample models tools || echo -dirty)"
: > "$WORK/results.part"
for cfg in text8-absorbing text8-genmd4; do
  RUN=$WORK/$cfg
  rm -rf "$RUN"
  t0=$(date +%s)
  "$G" train --config "configs/$cfg.json" --out "$RUN" --threads "${THREADS:-1}" --quiet \
    --set model.dim=128 --set model.depth=4 --set model.num_heads=4 --set model.cond_dim=64 \
    --set data.path="$TEXT" --set data.seq_len=128 --set data.batch_size=32 --set data.train_frac=0.9 \
    --set data.valid_frac=0.95 --set train.steps="$STEPS" --set train.lr=1e-3 --set train.warmup_steps=100 \
    --set train.ema_decay=0.995 --set train.weight_decay=0 --set train.log_every=100 --set train.checkpoint_every=0 \
    --set train.tensorboard=false --set sample.num=0
  t1=$(date +%s)
  CK=$(ls "$RUN"/ckpt-*.gsdiff | tail -1)
  for est in "--quadrature-nodes 64" "--time-samples 16"; do
    line=$("$G" eval --checkpoint "$CK" --limit 128 --batch-size 64 --threads "${THREADS:-1}" $est | tail -1)
    echo "{\"config\": \"$cfg\", \"steps\": $STEPS, \"train_wall_s\": $((t1 - t0)), \"flags\": \"$est\", \"commit\": \"$COMMIT\", \"eval\": $line}" >> "$WORK/results.part"
    echo "$cfg $est: $line"
  done
done
mv "$WORK/results.part" "$RES"
