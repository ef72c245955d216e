#!/usr/bin/env bash
# What mdlm-cached saves against ancestral on a trained absorbing text model (issue 15): network calls, rows and the
# sampling CPU / wall time of `gsdiff sample` at L = 256 and T = 1000, medians over repeats, for a batch of 1 and of 8.
# Trains a small time-independent transformer (configs/text8-absorbing.json shrunk: 2 layers, 64 wide,
# model.time_conditioning = false) on GCIDE dictionary text (Debian dict-gcide) in text8 form for STEPS steps.
# Writes bench/results/<LABEL>-mdlm-cached.json (LABEL: machine and date, default hostname-date).
#
#   bash bench/mdlm_cached.sh [STEPS=600] [GSDIFF=build/bin/gsdiff] [REPEATS=3]
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-600}
G=${2:-build/bin/gsdiff}
REPEATS=${3:-3}
WORK=${WORK:-/tmp/gsdiff_mdlm_cached}
LABEL=${LABEL:-$(hostname)-$(date +%F)}
OUT=bench/results/$LABEL-mdlm-cached.json
mkdir -p "$WORK"
TEXT=$WORK/gcide.text8
if [ ! -s "$TEXT" ]; then
  zcat /usr/share/dictd/gcide.dict.dz | head -c 4000000 | sed -e 's/<[^>]*>/ /g' > "$WORK/gcide.txt"
  "$G" data text8ify "$WORK/gcide.txt" "$TEXT"
fi
RUN=$WORK/run
CK=$RUN/$(printf 'ckpt-%08d.gsdiff' "$STEPS")
if [ ! -s "$CK" ]; then
  rm -rf "$RUN"
  t0=$(date +%s)
  "$G" train --config configs/text8-absorbing.json --out "$RUN" --threads 1 --quiet \
    --set model.dim=64 --set model.depth=2 --set model.num_heads=4 --set model.cond_dim=32 \
    --set data.path="$TEXT" --set data.seq_len=256 --set data.batch_size=16 --set data.train_frac=0.9 \
    --set data.valid_frac=0.95 --set train.steps="$STEPS" --set train.lr=2e-3 --set train.warmup_steps=50 \
    --set train.ema_decay=0 --set train.log_every=0 --set train.checkpoint_every=0 --set train.tensorboard=false \
    --set sample.num=0
  echo "trained $STEPS steps in $(( $(date +%s) - t0 )) s" >&2
fi
EVAL=$("$G" eval --checkpoint "$CK" --limit 64 --batch-size 32 --threads 1 2>/dev/null | tail -1)
RES=$WORK/runs.tsv
: > "$RES"
for num in 1 8; do
  for r in $(seq 1 "$REPEATS"); do
    for s in ancestral mdlm-cached; do
      line=$("$G" sample --checkpoint "$CK" --sampler "$s" --steps 1000 --num "$num" --seed "$r" --threads 1 \
               --out "$WORK/$s-$num-$r.txt" 2>&1 | grep '^network calls')
      # network calls C (rows R), sampling X s CPU, Y s wall
      echo "$num $s $r $(echo "$line" | sed -e 's/network calls \([0-9]*\) (rows \([0-9]*\)), sampling \([0-9.e+-]*\) s CPU, \([0-9.e+-]*\) s wall/\1 \2 \3 \4/')" >> "$RES"
    done
  done
done
python3 - "$RES" "$OUT" "$STEPS" "$EVAL" "$(git describe --always --dirty)" "$LABEL" <<'PY'
import json, statistics, sys, platform, os
res, out, steps, ev, commit, label = sys.argv[1:]
ev = json.loads(ev)
rows = [l.split() for l in open(res) if l.strip()]
cpu = "unknown"
for l in open("/proc/cpuinfo"):
    if l.startswith("model name"):
        cpu = l.split(":", 1)[1].strip(); break
o = {"what": "gsdiff sample --steps 1000 on a trained absorbing text8 model (L = 256), ancestral vs mdlm-cached, --threads 1",
     "machine": {"cpu": cpu, "cores": os.cpu_count(), "label": label}, "commit": commit,
     "model": {"config": "configs/text8-absorbing.json", "dim": 64, "depth": 2, "heads": 4, "time_conditioning": False,
               "train_steps": int(steps), "data": "GCIDE text8 (dict-gcide, first 4 MB)", "test_bound": {k: ev[k] for k in ("bound", "stderr", "unit", "examples", "estimate")}},
     "repeats": [dict(num=int(n), sampler=s, seed=int(r), calls=int(c), rows=int(rw), cpu_s=float(cp), wall_s=float(w))
                 for n, s, r, c, rw, cp, w in rows], "summary": {}}
for n in sorted({int(r[0]) for r in rows}):
    med = {}
    for s in ("ancestral", "mdlm-cached"):
        sel = [r for r in rows if int(r[0]) == n and r[1] == s]
        med[s] = {k: statistics.median(float(r[i]) for r in sel) for k, i in (("calls", 3), ("rows", 4), ("cpu_s", 5), ("wall_s", 6))}
    a, c = med["ancestral"], med["mdlm-cached"]
    o["summary"]["num=%d" % n] = {"median": med, "ratio_ancestral_over_cached": {k: a[k] / c[k] for k in a}}
json.dump(o, open(out, "w"), indent=1)
print(json.dumps(o["summary"], indent=1))
PY
echo "wrote $OUT" >&2
