"""Peer oracle: diffusers' DDPM, DDIM and DPM-Solver++(2M) schedulers step a gsdiff TorchScript export.

usage: diffusers_oracle.py EXPORT SAMPLER STEPS SEED B OUT
Runs diffusers' scheduler for SAMPLER (ancestral -> DDPMScheduler, ddim -> DDIMScheduler with eta 0,
dpm-solver++ -> DPMSolverMultistepScheduler, dpmsolver++ order 2) over STEPS of DDPM's 1000-step linear-beta
schedule ("trailing" spacing: indices 999, 999 - 1000/STEPS, ...; diffusers' index j is DDPM's step j + 1 and
gsdiff's time (j + 1) / 1000), from x_T ~ N(0, I) drawn by torch.Generator().manual_seed(SEED), the same stream
gsdiff's sampler draws, and writes the final samples, one value per line (repr), to OUT.
"""
import json
import sys

import torch
from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler

path, sampler, steps, seed, B, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
files = {"gsdiff.json": ""}
model = torch.jit.load(path, _extra_files=files)
meta = json.loads(files["gsdiff.json"])
proc = meta["process"]
assert proc["name"] == "gaussian-vp" and proc["schedule"] == "linear-beta-discrete" and proc["steps"] == 1000, proc
assert proc["parameterization"] == "eps", proc
common = dict(num_train_timesteps=1000, beta_start=proc["beta_min"], beta_end=proc["beta_max"], beta_schedule="linear",
              prediction_type="epsilon", timestep_spacing="trailing")
if sampler == "ancestral":
    sched = DDPMScheduler(clip_sample=False, variance_type="fixed_small", **common)
elif sampler == "ddim":
    sched = DDIMScheduler(clip_sample=False, set_alpha_to_one=True, **common)
elif sampler == "dpm-solver++":
    sched = DPMSolverMultistepScheduler(algorithm_type="dpmsolver++", solver_order=2, solver_type="midpoint",
                                        lower_order_final=True, final_sigmas_type="zero", **common)
else:
    raise SystemExit("unknown sampler " + sampler)
sched.set_timesteps(steps)
gen = torch.Generator().manual_seed(seed)
x = torch.randn([B] + meta["data_shape"], generator=gen)
with torch.no_grad():
    for j in sched.timesteps.tolist():
        eps = model(x, torch.full((B,), (j + 1) / 1000.0))
        if sampler == "ancestral":
            x = sched.step(eps, j, x, generator=gen).prev_sample
        elif sampler == "ddim":
            x = sched.step(eps, j, x, eta=0.0).prev_sample
        else:
            x = sched.step(eps, j, x).prev_sample
with open(out, "w") as f:
    f.write("\n".join(repr(v) for v in x.double().flatten().tolist()) + "\n")
print("timesteps", sched.timesteps.tolist()[:3], "...", sched.timesteps.tolist()[-1])
