#!/usr/bin/env python3
"""Summarises scripts/gpu.sh's bench files: img/s or tok/s and MFU of each run, and gsdiff / peer step-time ratios.

MFU = counted train FLOP/s (gsdiff bench's RecordFunction count: 3 x the forward's 2*MACs) / the card's peak:
NVIDIA's datasheet dense bf16 989.4 TFLOP/s and plain fp32 66.9 TFLOP/s for H100/H200 SXM (leads, not measured).
Python peers run the same configs, so gsdiff's FLOP count per step applies to them too."""
import glob
import json
import os
import sys

PEAK = {"bf16": 989.4e12, "fp32": 66.9e12}
out = sys.argv[1]
load = lambda p: json.load(open(p)) if os.path.exists(p) and os.path.getsize(p) else None
res = {"machine": open(os.path.join(out, "machine.txt")).read().strip() if os.path.exists(os.path.join(out, "machine.txt")) else "",
       "peak_flops": PEAK, "runs": {}}
for model, unit in (("unet", "img/s"), ("transformer", "tok/s")):
    for prec in ("fp32", "bf16"):
        g = load(os.path.join(out, f"bench-{model}-{prec}.json"))
        if not g:
            continue
        step_flops = g["flops"]["train_step"]
        per_ex = 1 if model == "unet" else g["input_shape"][1]
        def row(step_ms, batch):
            return {"step_ms": step_ms, unit: batch * per_ex / (step_ms / 1e3),
                    "mfu": step_flops / (step_ms / 1e3) / PEAK[prec]}
        r = {"gsdiff": row(g["train"]["step_ms_median"], g["batch"])}
        for mode in ("eager", "compiled"):
            p = load(os.path.join(out, f"python-{model}-{prec}-{mode}.json"))
            if p:
                r["python_" + mode] = row(p["train"]["step_ms_median"], p["batch"])
                r["gsdiff_over_" + mode] = r["gsdiff"]["step_ms"] / r["python_" + mode]["step_ms"]
        r["gsdiff_peak_memory_bytes"] = g.get("peak_memory_bytes")
        res["runs"][f"{model}-{prec}"] = r
print(json.dumps(res, indent=1))
