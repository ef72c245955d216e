#!/usr/bin/env bash
# Self-conditioning's effect at equal steps (Chen et al. 2022): one image config (quickstart, Fashion-MNIST) and one
# text config (text8-gaussian, GCIDE text in text8 form) at the reduced size of scripts/equal_budget.sh, each trained
# STEPS steps with model.self_condition false and true (same seed), then scored by `gsdiff eval` (Monte Carlo, 500 test
# examples x 2 t; a self-conditioned model is scored with its two passes). CPU time per step from /usr/bin/time over
# the training command (1 thread, start-up included). Writes bench/results/self_condition/results.jsonl.
#
#   [CONFIGS="quickstart text8-gaussian"] bash bench/self_condition.sh [STEPS=400] [GSDIFF=build/bin/gsdiff]
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-400}
G=${2:-build/bin/gsdiff}
OUT=bench/results/self_condition
WORK=${WORK:-/tmp/gsdiff_self_condition}
mkdir -p "$OUT" "$WORK"
TEXT=$WORK/gcide.text8
if [ ! -s "$TEXT" ]; then
  zcat /usr/share/dictd/gcide.dict.dz | sed -e 's/<[^>]*>/ /g' > "$WORK/gcide.txt"
  "$G" data text8ify "$WORK/gcide.txt" "$TEXT"
fi
COMMON="--set train.steps=$STEPS --set train.lr=1e-3 --set train.warmup_steps=100 --set train.lr_schedule=constant
  --set train.ema_decay=0.995 --set train.ema_warmup=true --set train.log_every=50 --set train.checkpoint_every=0
  --set train.tensorboard=false --set train.eval_every=0 --set train.sample_every=0 --set sample.num=0
  --set train.seed=0 --set data.batch_size=32 --threads 1 --quiet"
IMAGE="--set model.ch=16 --set model.ch_mult=[1,2] --set model.num_res_blocks=1 --set model.attn_resolutions=[14]
  --set model.image_size=28 --set model.in_channels=1 --set model.num_groups=8 --set model.dropout=0.0
  --set data.name=fashion-mnist --set data.root=/usr/share/datasets/fashion-mnist"
TEXTSET="--set model.dim=64 --set model.depth=2 --set model.num_heads=4 --set model.cond_dim=32 --set model.dropout=0.0
  --set data.path=$TEXT --set data.seq_len=64 --set data.train_frac=0.9 --set data.valid_frac=0.95"
for cfg in ${CONFIGS:-quickstart text8-gaussian}; do
  case $cfg in text8-*) SET=$TEXTSET ;; *) SET=$IMAGE ;; esac
  for sc in false true; do
    run=$WORK/$cfg-$sc
    rm -rf "$run"
    # shellcheck disable=SC2086
    /usr/bin/time -f "%U %S %e" -o "$run.time" "$G" train --config "configs/$cfg.json" $COMMON $SET \
      --set model.self_condition=$sc --out "$run"
    ckpt=$(ls "$run"/ckpt-*.gsdiff | sort | tail -1)
    "$G" eval --checkpoint "$ckpt" --limit 500 --time-samples 2 --seed 0 --threads 1 --per-example > "$run/eval.json"
    python3 - "$cfg" "$sc" "$STEPS" "$run/eval.json" "$run.time" >> "$OUT/results.jsonl" <<'PY'
import json, sys, subprocess
cfg, sc, steps, ev, tm = sys.argv[1:]
e = json.loads(open(ev).read().strip().splitlines()[-1])
u, s, w = map(float, open(tm).read().split()[-3:])
commit = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True).stdout.strip()
print(json.dumps({"config": cfg, "self_condition": sc == "true", "steps": int(steps), "bound": e["bound"],
                  "per_example": e["per_example"],
                  "stderr": e["stderr"], "unit": e["unit"], "examples": e["examples"], "time_samples": e["time_samples"],
                  "cpu_s": u + s, "wall_s": w, "cpu_ms_per_step": 1000 * (u + s) / int(steps), "threads": 1,
                  "commit": commit}))
PY
  done
done
# The paired difference (on minus off) per config: the same test examples, the same eval seed.
python3 - "$OUT/results.jsonl" "$STEPS" <<'PY' | tee -a "$OUT/paired.jsonl"
import json, sys, math
rows = [r for r in map(json.loads, open(sys.argv[1])) if r["steps"] == int(sys.argv[2]) and "per_example" in r]
for cfg in sorted({r["config"] for r in rows}):
    off = [r for r in rows if r["config"] == cfg and not r["self_condition"]][-1]
    on = [r for r in rows if r["config"] == cfg and r["self_condition"]][-1]
    d = [a - b for a, b in zip(on["per_example"], off["per_example"])]
    m = sum(d) / len(d)
    se = math.sqrt(sum((x - m) ** 2 for x in d) / (len(d) - 1) / len(d))
    print(json.dumps({"config": cfg, "steps": on["steps"], "bound_off": off["bound"], "stderr_off": off["stderr"],
                      "bound_on": on["bound"], "stderr_on": on["stderr"], "paired_diff": m, "paired_stderr": se,
                      "unit": on["unit"], "cpu_ms_per_step_off": off["cpu_ms_per_step"],
                      "cpu_ms_per_step_on": on["cpu_ms_per_step"], "cost_ratio": on["cpu_ms_per_step"] / off["cpu_ms_per_step"]}))
PY
