#!/usr/bin/env bash
# Does the exact continuous-time bound of a TRAINED categorical model converge in quadrature nodes, and does Monte
# Carlo agree with it? (issue 19 item 10's setting: uniform kernel, cosine schedule, a 4-layer 128-wide
# transformer trained 1500 steps on English text, 128 test sequences of 128 characters.) Trains on GCIDE dictionary
# text (Debian dict-gcide) in text8 form, then scores one checkpoint with Gauss-Legendre rules of 8, 64 and 256
# nodes, the adaptive quadrature, and Monte Carlo with t ~ U(t_min, 1) for three seeds. Writes
# bench/results/bound_convergence-<process>.jsonl (one `gsdiff eval` JSON per line, labelled).
#
#   bash bench/bound_convergence.sh [PROCESS=uniform] [STEPS=1500] [GSDIFF=build-test/bin/gsdiff]
set -euo pipefail
cd "$(dirname "$0")/.."
PROC=${1:-uniform}
STEPS=${2:-1500}
G=${3:-build-test/bin/gsdiff}
WORK=${WORK:-/tmp/gsdiff_bound_convergence}
OUT=bench/results/bound_convergence-$PROC.jsonl
mkdir -p "$WORK"
TEXT=$WORK/gcide.text8
if [ ! -s "$TEXT" ]; then
  zcat /usr/share/dictd/gcide.dict.dz | head -c 40000000 | sed -e 's/<[^>]*>/ /g' > "$WORK/gcide.txt"
  "$G" data text8ify "$WORK/gcide.txt" "$TEXT"
fi
RUN=$WORK/$PROC
rm -rf "$RUN"
t0=$(date +%s)
"$G" train --config configs/text8-uniform.json --out "$RUN" --threads "${THREADS:-1}" --quiet \
  --set process.name="$PROC" --set process.steps=0 --set process.schedule=cosine \
  --set objective.name=elbo --set model.dim=128 --set model.depth=4 --set model.num_heads=4 --set model.cond_dim=64 \
  --set model.dropout=0.0 --set data.path="$TEXT" --set data.seq_len=128 --set data.batch_size=32 \
  --set data.train_frac=0.9 --set data.valid_frac=0.95 --set train.steps="$STEPS" --set train.lr=1e-3 \
  --set train.warmup_steps=100 --set train.ema_decay=0.995 --set train.log_every=100 \
  --set train.checkpoint_every=0 --set train.tensorboard=false --set sample.num=0
t1=$(date +%s)
CK=$(ls "$RUN"/ckpt-*.gsdiff | tail -1)
: > "$OUT"
ev() {  # label, flags
  local label=$1; shift
  "$G" eval --checkpoint "$CK" --limit 128 --batch-size 64 --threads "${THREADS:-1}" "$@" | tail -1 |
    python3 -c "import json,sys; j=json.load(sys.stdin); j['label']='$label'; j['train_steps']=$STEPS; j['train_seconds']=$((t1 - t0)); print(json.dumps(j))" >> "$OUT"
  tail -1 "$OUT"
}
for n in 8 64 256; do ev "gauss-legendre-$n" --seed 1 --quadrature-nodes "$n"; done
ev adaptive --seed 1 --exact
for s in 1 2 3; do ev "monte-carlo-seed-$s" --seed "$s" --time-samples 16 --time-sampling uniform; done
