#!/usr/bin/env python3
"""The train step and sampling calls of `gsdiff bench` in PyTorch (Python), eager or torch.compile'd, for side-by-side timing (bench/README.md).

Run it with the project venv's torch 2.13 (.venv/bin/python), the same LibTorch gsdiff links. --compile wraps
the network in torch.compile (inductor; the optimizer stays eager); its compilation happens in the warm-up
steps, outside the timed ones. Transformer configs get a mirror of models/transformer.cpp (DiT blocks with
adaLN-zero, rotary positions, SDPA): the step is the one gsdiff bench times for the absorbing process
(x_t masks each token with probability t, cross-entropy on x0 over all positions).

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


class DiTBlock(nn.Module):
    def __init__(self, dim, heads, mlp_ratio, cond, p):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim, eps=1e-6, elementwise_affine=False)
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.attn_out = nn.Linear(dim, dim, bias=False)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6, elementwise_affine=False)
        self.fc1, self.fc2 = nn.Linear(dim, mlp_ratio * dim), nn.Linear(mlp_ratio * dim, dim)
        self.ada = nn.Linear(cond, 6 * dim)
        self.drop = nn.Dropout(p)

    def forward(self, x, c, cos, sin):
        m = self.ada(F.silu(c)).chunk(6, 1)
        h = self.norm1(x) * (1 + m[1][:, None]) + m[0][:, None]
        q, k, v = self.qkv(h).unflatten(-1, (3, self.heads, -1)).permute(2, 0, 3, 1, 4)  # [B, H, L, Dh] each
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).flatten(2)
        out = x + m[2][:, None] * self.drop(self.attn_out(a))
        h = self.norm2(out) * (1 + m[4][:, None]) + m[3][:, None]
        return out + m[5][:, None] * self.drop(self.fc2(F.gelu(self.fc1(h), approximate="tanh")))


def rotate(x, cos, sin):
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], -1)


class Transformer(nn.Module):
    def __init__(self, c):
        super().__init__()
        dim, depth, heads = c.get("dim", 768), c.get("depth", 12), c.get("num_heads", 12)
        cond, mlp, p = c.get("cond_dim", 128), c.get("mlp_ratio", 4), c.get("dropout", 0.1)
        assert c.get("positions", "rotary") == "rotary" and c.get("input_dim", 0) == 0 and c.get("num_classes", 0) == 0
        self.tok_embed = nn.Embedding(c.get("vocab_size", 28), dim)
        hd = dim // heads
        self.register_buffer("inv_freq", torch.pow(10000.0, -torch.arange(0, hd, 2, dtype=torch.float32) / hd))
        self.time_embed = SinusoidalEmbedding(256, c.get("time_scale", 1000.0))
        self.t1, self.t2 = nn.Linear(256, cond), nn.Linear(cond, cond)
        self.blocks = nn.ModuleList(DiTBlock(dim, heads, mlp, cond, p) for _ in range(depth))
        self.norm_final = nn.LayerNorm(dim, eps=1e-6, elementwise_affine=False)
        self.final_ada = nn.Linear(cond, 2 * dim)
        self.head = nn.Linear(dim, c.get("out_dim", 27))
        for m in self.modules():  # DiT init as models/transformer.cpp: xavier, zero biases, adaLN-zero, zero head
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        nn.init.normal_(self.tok_embed.weight, 0.0, 0.02)
        for m in [b.ada for b in self.blocks] + [self.final_ada, self.head]:
            nn.init.zeros_(m.weight), nn.init.zeros_(m.bias)

    def forward(self, x, t):
        h = self.tok_embed(x)
        ang = torch.arange(x.shape[1], dtype=torch.float32, device=x.device)[:, None] * self.inv_freq[None]
        cos, sin = torch.cos(ang), torch.sin(ang)  # [L, Dh/2]
        c = self.t2(F.silu(self.t1(self.time_embed(t))))
        for b in self.blocks:
            h = b(h, c, cos, sin)
        m = self.final_ada(F.silu(c)).chunk(2, 1)
        return self.head(self.norm_final(h) * (1 + m[1][:, None]) + m[0][:, None])


def batches(cfg, a, dev):
    """Up to 4 (x0, t) pairs made before the timed loop, as gsdiff bench does."""
    n = min(a.steps + a.warmup, 4)
    if cfg["type"] == "transformer":
        shape = (a.batch, a.seq_len)
        x0s = [torch.randint(0, cfg.get("out_dim", 27), shape).to(dev) for _ in range(n)]
    else:
        s = cfg["image_size"]
        x0s = [(torch.rand(a.batch, cfg["in_channels"], s, s) * 2 - 1).to(dev) for _ in range(n)]
    return x0s, [torch.rand(a.batch).to(dev) for _ in range(n)]


def loss_of(net, cfg, x0, t):
    """gsdiff bench's step: cosine-VP eps-MSE (U-Net), absorbing masking + cross-entropy on x0 (transformer)."""
    if cfg["type"] == "transformer":
        K = cfg.get("out_dim", 27)
        xt = torch.where(torch.rand(x0.shape, device=x0.device) < t[:, None], torch.full_like(x0, K), x0)
        out = net(xt, t)
        return F.cross_entropy(out.reshape(-1, out.shape[-1]), x0.reshape(-1))
    noise = torch.randn(x0.shape, device=x0.device)
    al = torch.cos(t * (math.pi / 2)).view(-1, 1, 1, 1)
    return F.mse_loss(net(al * x0 + torch.sqrt(1 - al * al) * noise, t), noise)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", required=True, help="configs/models/{unet,transformer}-*.json or a run config with a model")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq-len", type=int, default=256, help="transformer: sequence length L")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--sample-calls", type=int, default=3, help="eval-mode network calls under no_grad, timed")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--expect-params", type=int, default=0, help="gsdiff's parameter count: assert equal")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu", help="cpu | cuda")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"], help="bf16: autocast around forward + loss")
    ap.add_argument("--compile", action="store_true", help="torch.compile the network (inductor)")
    a = ap.parse_args()
    dev = torch.device(a.device)
    sync = (lambda: torch.cuda.synchronize()) if dev.type == "cuda" else (lambda: None)
    cfg = json.load(open(a.config))
    cfg = cfg.get("model", cfg)
    if cfg.get("type") not in ("unet", "transformer"):
        sys.exit("compare_python.py: only U-Net and transformer configs are mirrored in Python")
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    net = (UNet(cfg) if cfg["type"] == "unet" else Transformer(cfg)).to(dev)
    params = sum(p.numel() for p in net.parameters())
    if a.expect_params:
        assert params == a.expect_params, f"python {cfg['type']} has {params} parameters, gsdiff {a.expect_params}"
    opt = torch.optim.AdamW(net.parameters(), lr=2e-4)
    fnet = torch.compile(net) if a.compile else net
    x0s, ts = batches(cfg, a, dev)
    net.train()
    fw, bw, ow, sw, sc = [], [], [], [], []
    for i in range(a.warmup + a.steps):
        x0, t = x0s[i % len(x0s)], ts[i % len(ts)]
        c0, w0 = time.process_time(), time.perf_counter()
        opt.zero_grad()
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=a.precision == "bf16"):
            loss = loss_of(fnet, cfg, x0, t)
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
    # Sampling: eval-mode calls without autograd on the first batch (a compiled net recompiles for eval once).
    net.eval()
    cw, cc = [], []
    with torch.no_grad(), torch.autocast(dev.type, dtype=torch.bfloat16, enabled=a.precision == "bf16"):
        x = x0s[0]
        for i in range(max(1, min(a.warmup, 2)) + a.sample_calls):
            c0, w0 = time.process_time(), time.perf_counter()
            fnet(x, ts[i % len(ts)])
            sync()
            if i >= max(1, min(a.warmup, 2)):
                cw.append(time.perf_counter() - w0); cc.append(time.process_time() - c0)
    med = statistics.median
    print(json.dumps({
        "command": "compare_python", "config": a.config, "device": str(dev), "precision": a.precision,
        "compile": a.compile, "torch": torch.__version__, "threads": torch.get_num_threads(),
        "parameters": params, "batch": a.batch, "steps": a.steps, "warmup": a.warmup,
        "ld_preload": os.environ.get("LD_PRELOAD", ""),
        "train": {"step_ms_median": 1e3 * med(sw), "step_cpu_ms_median": 1e3 * med(sc),
                  "forward_ms_median": 1e3 * med(fw), "backward_ms_median": 1e3 * med(bw),
                  "optimizer_ms_median": 1e3 * med(ow), "examples_per_s": a.batch / med(sw),
                  "step_ms_all": [1e3 * x for x in sw]},
        "sample": {"calls": a.sample_calls, "call_ms_median": 1e3 * med(cw), "call_cpu_ms_median": 1e3 * med(cc)},
    }))


if __name__ == "__main__":
    main()
