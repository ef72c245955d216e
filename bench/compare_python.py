#!/usr/bin/python3
"""The train step of `gsdiff bench` in PyTorch (Python), for side-by-side timing (bench/README.md).

Its own U-Net of the same architecture as models/unet.cpp (DDPM, Ho et al. 2020: ResBlocks with a
time embedding, single-head spatial attention at the configured resolutions, conv resampling), built
from the same configs/models/*.json; --expect-params asserts the parameter count equals gsdiff's.
The step is the one gsdiff bench times: x0 ~ U(-1, 1), t ~ U(0, 1), x_t = a x0 + sqrt(1 - a^2) eps
with a = cos(pi t / 2), eps-MSE of the network output, backward, AdamW(2e-4). Prints one JSON object.
"""
import argparse
import json
import math
import os
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def group_norm(groups, ch):
    assert ch % groups == 0
    return nn.GroupNorm(groups, ch, eps=1e-6)


class SinusoidalEmbedding(nn.Module):
    def __init__(self, dim, scale, max_period=10000.0):
        super().__init__()
        half = dim // 2
        w = torch.exp(torch.arange(half, dtype=torch.float32) * (-math.log(max_period) / (half - 1)))
        self.register_buffer("freqs", w * scale)

    def forward(self, t):
        args = t.float()[:, None] * self.freqs[None]
        return torch.cat([torch.sin(args), torch.cos(args)], 1)


class ResBlock(nn.Module):
    def __init__(self, cin, cout, temb, dropout, groups):
        super().__init__()
        self.norm1 = group_norm(groups, cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.temb_proj = nn.Linear(temb, cout)
        self.norm2 = group_norm(groups, cout)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, temb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.temb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return (self.skip(x) if self.skip is not None else x) + h


class AttnBlock(nn.Module):
    def __init__(self, ch, heads, groups):
        super().__init__()
        self.heads = heads
        self.norm = group_norm(groups, ch)
        self.qkv = nn.Conv2d(ch, 3 * ch, 1)
        self.proj = nn.Conv2d(ch, ch, 1)

    def forward(self, x):
        qkv = self.qkv(self.norm(x)).flatten(2)
        qkv = qkv.unflatten(1, (3, self.heads, -1))
        q, k, v = (qkv[:, i].transpose(-2, -1) for i in range(3))
        w = torch.matmul(q * (1.0 / math.sqrt(q.shape[-1])), k.transpose(-2, -1)).softmax(-1)
        o = torch.matmul(w, v).transpose(-2, -1).flatten(1, 2).reshape_as(x)
        return x + self.proj(o)


class UNet(nn.Module):
    def __init__(self, c):
        super().__init__()
        C, ch = c["in_channels"], c.get("ch", 128)
        mult, nres = c.get("ch_mult", [1, 2, 2, 2]), c.get("num_res_blocks", 2)
        attn, size = c.get("attn_resolutions", [16]), c.get("image_size", 32)
        heads, p, g = c.get("num_heads", 1), c.get("dropout", 0.1), c.get("num_groups", 32)
        self.levels, self.nres = len(mult), nres
        temb = 4 * ch
        self.time_embed = SinusoidalEmbedding(ch, c.get("time_scale", 1000.0))
        self.temb1, self.temb2 = nn.Linear(ch, temb), nn.Linear(temb, temb)
        self.conv_in = nn.Conv2d(C, ch, 3, padding=1)
        has_attn = lambda l: (size >> l) in attn
        skip, cur = [ch], ch
        self.down_res, self.down_attn, self.downsample = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for l in range(self.levels):
            out = ch * mult[l]
            for _ in range(nres):
                self.down_res.append(ResBlock(cur, out, temb, p, g))
                self.down_attn.append(AttnBlock(out, heads, g) if has_attn(l) else nn.Identity())
                cur = out
                skip.append(cur)
            if l + 1 < self.levels:
                self.downsample.append(nn.Conv2d(cur, cur, 3, stride=2, padding=1))
                skip.append(cur)
        self.mid1 = ResBlock(cur, cur, temb, p, g)
        self.mid_attn = AttnBlock(cur, heads, g)
        self.mid2 = ResBlock(cur, cur, temb, p, g)
        self.up_res, self.up_attn = nn.ModuleList(), nn.ModuleList()
        self.upsample = nn.ModuleDict()
        for l in reversed(range(self.levels)):
            out = ch * mult[l]
            for _ in range(nres + 1):
                self.up_res.append(ResBlock(cur + skip.pop(), out, temb, p, g))
                self.up_attn.append(AttnBlock(out, heads, g) if has_attn(l) else nn.Identity())
                cur = out
            if l > 0:
                self.upsample[str(l)] = nn.Conv2d(cur, cur, 3, padding=1)
        self.norm_out = group_norm(g, cur)
        self.conv_out = nn.Conv2d(cur, C, 3, padding=1)

    def forward(self, x, t):
        temb = self.temb2(F.silu(self.temb1(self.time_embed(t))))
        h = self.conv_in(x)
        hs, i = [h], 0
        for l in range(self.levels):
            for _ in range(self.nres):
                h = self.down_attn[i](self.down_res[i](h, temb))
                hs.append(h)
                i += 1
            if l + 1 < self.levels:
                h = self.downsample[l](h)
                hs.append(h)
        h = self.mid2(self.mid_attn(self.mid1(h, temb)), temb)
        i = 0
        for l in reversed(range(self.levels)):
            for _ in range(self.nres + 1):
                h = self.up_attn[i](self.up_res[i](torch.cat([h, hs.pop()], 1), temb))
                i += 1
            if l > 0:
                h = self.upsample[str(l)](F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.conv_out(F.silu(self.norm_out(h)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", required=True, help="configs/models/unet-*.json or a run config with a model")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--expect-params", type=int, default=0, help="gsdiff's parameter count: assert equal")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu", help="cpu | cuda")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"], help="bf16: autocast around forward + loss")
    a = ap.parse_args()
    dev = torch.device(a.device)
    sync = (lambda: torch.cuda.synchronize()) if dev.type == "cuda" else (lambda: None)
    cfg = json.load(open(a.config))
    cfg = cfg.get("model", cfg)
    if cfg.get("type") != "unet":
        sys.exit("compare_python.py: only U-Net configs are mirrored in Python")
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    net = UNet(cfg).to(dev)
    params = sum(p.numel() for p in net.parameters())
    if a.expect_params:
        assert params == a.expect_params, f"python U-Net has {params} parameters, gsdiff {a.expect_params}"
    opt = torch.optim.AdamW(net.parameters(), lr=2e-4)
    s = cfg["image_size"]
    shape = (a.batch, cfg["in_channels"], s, s)
    x0s = [(torch.rand(shape) * 2 - 1).to(dev) for _ in range(min(a.steps + a.warmup, 4))]
    ts = [torch.rand(a.batch).to(dev) for _ in range(len(x0s))]
    net.train()
    fw, bw, ow, sw, sc = [], [], [], [], []
    for i in range(a.warmup + a.steps):
        x0, t = x0s[i % len(x0s)], ts[i % len(ts)]
        c0, w0 = time.process_time(), time.perf_counter()
        opt.zero_grad()
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=a.precision == "bf16"):
            noise = torch.randn(x0.shape, device=dev)
            al = torch.cos(t * (math.pi / 2)).view(-1, 1, 1, 1)
            xt = al * x0 + torch.sqrt(1 - al * al) * noise
            loss = F.mse_loss(net(xt, t), noise)
        sync()
        w1 = time.perf_counter()
        loss.backward()
        sync()
        w2 = time.perf_counter()
        opt.step()
        sync()
        w3, c3 = time.perf_counter(), time.process_time()
        if i >= a.warmup:
            fw.append(w1 - w0); bw.append(w2 - w1); ow.append(w3 - w2); sw.append(w3 - w0); sc.append(c3 - c0)
    med = statistics.median
    print(json.dumps({
        "command": "compare_python", "config": a.config, "device": str(dev), "precision": a.precision, "torch": torch.__version__, "threads": torch.get_num_threads(),
        "parameters": params, "batch": a.batch, "steps": a.steps, "warmup": a.warmup,
        "ld_preload": os.environ.get("LD_PRELOAD", ""),
        "train": {"step_ms_median": 1e3 * med(sw), "step_cpu_ms_median": 1e3 * med(sc),
                  "forward_ms_median": 1e3 * med(fw), "backward_ms_median": 1e3 * med(bw),
                  "optimizer_ms_median": 1e3 * med(ow), "examples_per_s": a.batch / med(sw),
                  "step_ms_all": [1e3 * x for x in sw]},
    }))


if __name__ == "__main__":
    main()
