#!/usr/bin/env bash
# Results at equal budget: every image config on Fashion-MNIST and every text config on GCIDE dictionary text (text8
# form), each at the same reduced size, trained the same wall-clock budget (stopped by SIGINT, which checkpoints),
# then scored on the test split and sampled. Writes bench/results/equal_budget/{table.md,results.jsonl,*.png,*.txt}.
#
#   bash scripts/equal_budget.sh [BUDGET_SECONDS=60] [GSDIFF=build/bin/gsdiff]
set -euo pipefail
cd "$(dirname "$0")/.."
BUDGET=${1:-60}
G=${2:-build/bin/gsdiff}
OUT=bench/results/equal_budget
WORK=${WORK:-/tmp/gsdiff_equal_budget}
mkdir -p "$OUT" "$WORK"
rm -f "$OUT/results.jsonl"

# GCIDE (Debian dict-gcide) without its tags, in text8 form: 30M characters, split 90/5/5 by fractions.
TEXT=$WORK/gcide.text8
if [ ! -s "$TEXT" ]; then
  zcat /usr/share/dictd/gcide.dict.dz | sed -e 's/<[^>]*>/ /g' > "$WORK/gcide.txt"
  "$G" data text8ify "$WORK/gcide.txt" "$TEXT"
fi

COMMON="--set train.steps=1000000 --set train.lr=1e-3 --set train.warmup_steps=100 --set train.lr_schedule=constant
  --set train.ema_decay=0.995 --set train.ema_warmup=true --set train.log_every=50 --set train.checkpoint_every=0
  --set train.tensorboard=false --set train.eval_every=0 --set train.sample_every=0 --set sample.num=0
  --set train.seed=0 --set data.batch_size=32 --threads 2 --quiet"
IMAGE="--set model.ch=16 --set model.ch_mult=[1,2] --set model.num_res_blocks=1 --set model.attn_resolutions=[14]
  --set model.image_size=28 --set model.in_channels=1 --set model.num_groups=8 --set model.dropout=0.0
  --set data.name=fashion-mnist --set data.root=/usr/share/datasets/fashion-mnist"
TEXTSET="--set model.dim=64 --set model.depth=2 --set model.num_heads=4 --set model.cond_dim=32 --set model.dropout=0.0
  --set data.path=$TEXT --set data.seq_len=64 --set data.train_frac=0.9 --set data.valid_frac=0.95"

for cfg in configs/*.json; do
  name=$(basename "$cfg" .json)
  case "$(python3 -c "import json,sys; print(json.load(open('$cfg'))['data']['name'])")" in
    text8) kind=text; SET=$TEXTSET; ext=txt; num=2 ;;
    *) kind=image; SET=$IMAGE; ext=png; num=16 ;;
  esac
  run=$WORK/$name
  rm -rf "$run"
  # shellcheck disable=SC2086
  timeout -s INT "$BUDGET" "$G" train --config "$cfg" $COMMON $SET --out "$run" || true  # 130/124: stopped, checkpointed
  ckpt=$(ls "$run"/ckpt-*.gsdiff | sort | tail -1)
  steps=$(basename "$ckpt" .gsdiff | sed 's/ckpt-0*//')
  "$G" eval --checkpoint "$ckpt" --limit 500 --time-samples 2 --seed 0 --threads 2 > "$run/eval.json"
  "$G" sample --checkpoint "$ckpt" --num $num --steps 100 --seed 0 --threads 2 --out "$OUT/$name.$ext" 2> /dev/null
  python3 - "$name" "$kind" "$steps" "$run/eval.json" "$OUT/$name.$ext" >> "$OUT/results.jsonl" <<'EOF'
import json, sys
name, kind, steps, ev, sample = sys.argv[1:]
e = json.loads(open(ev).read().strip().splitlines()[-1])
r = {"config": name, "kind": kind, "steps": int(steps or 0), "bound": e["bound"], "stderr": e["stderr"],
     "unit": e["unit"], "examples": e["examples"], "time_samples": e["time_samples"], "ema": e["ema"], "sample": sample}
if kind == "text":
    r["text"] = [l[:64] for l in open(sample).read().splitlines()[:2]]
print(json.dumps(r))
EOF
done

python3 - "$OUT/results.jsonl" "$BUDGET" > "$OUT/table.md" <<'EOF'
import json, subprocess, sys, datetime
rows = [json.loads(l) for l in open(sys.argv[1])]
commit = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True).stdout.strip()
print(f"Commit {commit}, {datetime.date.today()}, 2 vCPU shared EPYC (other jobs running), {sys.argv[2]} s of training each.\n")
print("| config | data | steps in budget | test bound (Monte Carlo, 500 examples x 2 t) | sample |")
print("|---|---|---|---|---|")
for r in rows:
    data = "Fashion-MNIST" if r["kind"] == "image" else "GCIDE text8"
    s = f"![{r['config']}]({r['sample']})" if r["kind"] == "image" else " / ".join(f"`{t}`" for t in r["text"])
    print(f"| {r['config']} | {data} | {r['steps']} | {r['bound']:.3f} ± {r['stderr']:.3f} {r['unit']} | {s} |")
EOF
cat "$OUT/table.md"
