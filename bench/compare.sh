#!/usr/bin/env bash
# Side-by-side timing of the train step and of sampling calls: gsdiff bench vs bench/compare_python.py on the
# same LibTorch (the project venv's torch 2.13, $PYTHON, default .venv/bin/python; same thread count), PyTorch
# eager and torch.compile'd (--peers), under each allocator variant, interleaved round-robin so machine noise
# hits all variants alike. Prints one summary JSON object (medians over rounds of each run's median step) and
# keeps every raw run in --raw.
#
#   bench/compare.sh [--gsdiff build/bin/gsdiff] [--rounds 3] [--threads 2] [--warmup 2] [--steps 5]
#                    [--variants "glibc tuned jemalloc"] [--optimizers "fused torch"] [--blocks "on off"]
#                    [--convs "cached aten winograd"] [--baseline BIN] [--raw FILE] [--peers "eager compiled"] [--seq-len 256]
#                    CONFIG:BATCH ...
# Peers: eager = compare_python.py (impl "python"), compiled = compare_python.py --compile (impl
# "python-compiled"; inductor compiles during its warm-up steps, which are not timed).
# Variants: glibc = glibc malloc defaults (GSDIFF_MALLOC=default; Python as is); tuned = the mallopt
# settings of tools/cmd_bench.cpp (Python: the same values through GLIBC_TUNABLES); jemalloc /
# tcmalloc = LD_PRELOAD of Debian's libjemalloc2 / libtcmalloc-minimal4 for both.
# Optimizers (gsdiff bench --optimizer): fused (default; flat buffers + fused AdamW, as gsdiff train; impl
# "gsdiff") and torch (torch::optim::AdamW per tensor, the earlier gsdiff; impl "gsdiff-torch"), run back to back.
# Blocks (gsdiff bench --block-autograd): on (default; U-Net blocks as single autograd nodes with the CPU
# kernels of models/cpu_kernels.h) and off (op by op, before; impl "gsdiff-blocksoff"), run back to back.
# Convs (gsdiff bench --conv): cached (default; CPU convolutions on gsdiff's cached oneDNN primitives,
# models/onednn_conv.h), aten (ATen's own convolutions, before; impl "gsdiff-convaten") and winograd (the cached
# path with --conv-algorithm winograd; impl "gsdiff-convwinograd"), run back to back.
# --baseline BIN: another gsdiff build (e.g. the previous commit's) run in the same rounds as impl
# "gsdiff-baseline", for a before/after ratio measured side by side (ratio_cpu_baseline).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
gsdiff="$here/../build/bin/gsdiff" rounds=3 threads=2 warmup=2 steps=5 variants="glibc tuned jemalloc" optimizers="fused" blocks="on" convs="cached" raw="" baseline=""
peers="eager compiled" seq_len=256 py=${PYTHON:-$here/../.venv/bin/python}
while [[ $# -gt 0 ]]; do
  case "$1" in
    --gsdiff) gsdiff="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --warmup) warmup="$2"; shift 2 ;;
    --steps) steps="$2"; shift 2 ;;
    --variants) variants="$2"; shift 2 ;;
    --optimizers) optimizers="$2"; shift 2 ;;
    --blocks) blocks="$2"; shift 2 ;;
    --convs) convs="$2"; shift 2 ;;
    --baseline) baseline="$2"; shift 2 ;;
    --raw) raw="$2"; shift 2 ;;
    --peers) peers="$2"; shift 2 ;;
    --seq-len) seq_len="$2"; shift 2 ;;
    -h|--help) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) break ;;
  esac
done
[[ $# -gt 0 ]] || { echo "compare.sh: give at least one CONFIG:BATCH" >&2; exit 2; }
raw=${raw:-$(mktemp /tmp/gsdiff-compare.XXXXXX.jsonl)}
: > "$raw"
lib=/usr/lib/x86_64-linux-gnu
tunables="glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=2147483647:glibc.malloc.top_pad=16777216:glibc.malloc.arena_max=4"
# Same BLAS/OpenMP thread count everywhere.
export OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads

conv_flags() {  # cached | aten | winograd (the cached path with --conv-algorithm winograd)
  if [[ $1 == winograd ]]; then echo --conv cached --conv-algorithm winograd; else echo --conv "$1"; fi
}

run_variant() {  # impl variant config batch [optimizer] [blocks] [conv]
  local impl=$1 v=$2 cfg=$3 b=$4 opt=${5:-fused} bl=${6:-on} cv=${7:-cached} pre="" envs=()
  case "$v" in
    glibc) envs=(GSDIFF_MALLOC=default) ;;
    tuned) [[ $impl == python ]] && envs=(GLIBC_TUNABLES=$tunables) ;;
    jemalloc) envs=(GSDIFF_MALLOC=default); pre=$lib/libjemalloc.so.2 ;;
    tcmalloc) envs=(GSDIFF_MALLOC=default); pre=$lib/libtcmalloc_minimal.so.4 ;;
  esac
  [[ -n $pre ]] && envs+=(LD_PRELOAD=$pre)
  local out
  if [[ $impl == gsdiff* ]]; then
    local bin=$gsdiff
    [[ $impl == gsdiff-baseline ]] && bin=$baseline
    out=$(env "${envs[@]}" "$bin" bench --config "$cfg" --batch "$b" --threads "$threads" --warmup "$warmup" \
          --steps "$steps" --sample-calls 3 --seq-len "$seq_len" --label "$v" --optimizer "$opt" --block-autograd "$bl" \
          $([[ $impl == gsdiff-baseline ]] || conv_flags "$cv"))
    params=$("$py" -c 'import json,sys; print(json.loads(sys.argv[1])["parameters"])' "$out")
  else
    local comp=()
    [[ $impl == python-compiled ]] && comp=(--compile)
    out=$(env "${envs[@]}" "$py" "$here/compare_python.py" --config "$cfg" --batch "$b" --threads "$threads" \
          --warmup "$warmup" --steps "$steps" --seq-len "$seq_len" --sample-calls 3 --expect-params "${params:-0}" "${comp[@]}")
  fi
  "$py" -c 'import json,sys; d=json.loads(sys.argv[1]); d.update(impl=sys.argv[2], variant=sys.argv[3], case=sys.argv[4], round=int(sys.argv[5])); print(json.dumps(d))' \
    "$out" "$impl" "$v" "$cfg:$b" "$r" >> "$raw"
  echo "round $r $cfg:$b $impl/$v: $("$py" -c 'import json,sys; t=json.loads(sys.argv[1])["train"]; print("step %.1f ms wall, %.1f ms cpu" % (t["step_ms_median"], t["step_cpu_ms_median"]))' "$out")" >&2
}

for ((r = 1; r <= rounds; r++)); do
  for c in "$@"; do
    cfg=${c%:*} b=${c##*:} params=""
    for v in $variants; do
      for o in $optimizers; do
        for bl in $blocks; do
          for cv in $convs; do
            impl=gsdiff
            [[ $o == fused ]] || impl="$impl-$o"
            [[ $bl == on ]] || impl="$impl-blocksoff"
            [[ $cv == cached ]] || impl="$impl-conv$cv"
            run_variant "$impl" "$v" "$cfg" "$b" "$o" "$bl" "$cv"
          done
        done
      done
      [[ -n $baseline ]] && run_variant gsdiff-baseline "$v" "$cfg" "$b" fused
      for p in $peers; do
        if [[ $p == eager ]]; then run_variant python "$v" "$cfg" "$b"; else run_variant python-compiled "$v" "$cfg" "$b"; fi
      done
    done
  done
done

"$py" - "$raw" "$threads" <<'PY'
import json, statistics, sys, collections, datetime, subprocess
runs = [json.loads(l) for l in open(sys.argv[1])]
med = statistics.median
by = collections.defaultdict(list)
for d in runs:
    by[(d["case"], d["variant"], d["impl"])].append(d)
summary = {"date": datetime.date.today().isoformat(), "threads": int(sys.argv[2]), "rounds": max(d["round"] for d in runs),
           "cpu": subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], capture_output=True, text=True).stdout.strip(),
           "nproc": subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip(),
           "torch": sorted({d["torch"] for d in runs if "torch" in d}), "libtorch": sorted({d["libtorch"] for d in runs if "libtorch" in d}),
           "commit": sorted({d["commit"] for d in runs if "commit" in d}), "cases": {}}
def sample_cpu(d):
    return d["sample"].get("call_cpu_ms_median")
for (case, v, impl), ds in sorted(by.items()):
    ts = [d["train"] for d in ds]
    c = summary["cases"].setdefault(case, {}).setdefault(v, {})
    c[impl] = {k: med(t[k] for t in ts) for k in ("step_ms_median", "step_cpu_ms_median", "forward_ms_median",
                                                  "backward_ms_median", "optimizer_ms_median")}
    c[impl]["sample_call_cpu_ms_median"] = med(sample_cpu(d) for d in ds) if all(sample_cpu(d) for d in ds) else None
    c[impl]["runs"] = len(ds)
for case, vs in summary["cases"].items():
    for v, c in vs.items():
        for impl in [i for i in list(c) if i.startswith("gsdiff")]:
            suffix = impl[len("gsdiff"):].replace("-", "_")  # "" (fused), "_torch", "_blocksoff", "_convaten", "_baseline"
            for peer, tag in (("python", ""), ("python-compiled", "_vs_compiled")):
                if peer not in c:
                    continue
                c["ratio_cpu" + suffix + tag] = c[impl]["step_cpu_ms_median"] / c[peer]["step_cpu_ms_median"]
                c["ratio_wall" + suffix + tag] = c[impl]["step_ms_median"] / c[peer]["step_ms_median"]
                # the same ratio within each round (both runs seconds apart), and its median: train step, sampling call
                for what, get in (("", lambda d: d["train"]["step_cpu_ms_median"]), ("_sample", sample_cpu)):
                    rounds = collections.defaultdict(dict)
                    for d in runs:
                        if d["case"] == case and d["variant"] == v and d["impl"] in (impl, peer) and get(d):
                            rounds[d["round"]][d["impl"]] = get(d)
                    per = [x[impl] / x[peer] for _, x in sorted(rounds.items()) if impl in x and peer in x]
                    if per:
                        c["per_round_ratio_cpu" + what + suffix + tag] = [round(q, 3) for q in per]
                        c["median_round_ratio_cpu" + what + suffix + tag] = med(per)
        # the cached convolutions against ATen's, and Winograd against direct, in the same rounds
        for num, den, tag in (("gsdiff", "gsdiff-convaten", "cached_vs_aten_conv"),
                              ("gsdiff-convwinograd", "gsdiff", "winograd_vs_direct_conv")):
            if num not in c or den not in c:
                continue
            rounds = collections.defaultdict(dict)
            for d in runs:
                if d["case"] == case and d["variant"] == v and d["impl"] in (num, den):
                    rounds[d["round"]][d["impl"]] = d["train"]["step_cpu_ms_median"]
            per = [x[num] / x[den] for _, x in sorted(rounds.items()) if len(x) == 2]
            c["per_round_ratio_cpu_" + tag] = [round(q, 3) for q in per]
            c["median_round_ratio_cpu_" + tag] = med(per)
print(json.dumps(summary, indent=1))
PY
