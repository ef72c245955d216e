"""Seeded random streams of Python torch (GSDIFF_PYTHON), one line each: name and values; tests/train/torch_versions_test.cpp
draws the same with this build's LibTorch and compares."""
import torch
def streams():
    out = {}
    g = lambda s: torch.Generator().manual_seed(s)
    out["randn_1000"] = torch.randn(1000, generator=g(1))
    out["randn_7"] = torch.randn(7, generator=g(2))
    out["rand_1000"] = torch.rand(1000, generator=g(3))
    out["randint_1000"] = torch.randint(0, 27, (1000,), generator=g(4))
    out["bernoulli_1000"] = torch.bernoulli(torch.full((1000,), 0.3), generator=g(5))
    out["multinomial_10x3"] = torch.multinomial(torch.rand(10, 5, generator=g(6)), 3, True, generator=g(7))
    out["randperm_100"] = torch.randperm(100, generator=g(8))
    out["normal_double_100"] = torch.randn(100, dtype=torch.float64, generator=g(9))
    torch.manual_seed(10)
    out["dropout_1000"] = torch.nn.functional.dropout(torch.ones(1000), 0.1, True)
    return out
for k, v in streams().items():
    print(k, " ".join(repr(x) for x in v.flatten().tolist()))
