// `gsdiff eval` extras: the PF-ODE likelihood (the bound of any DenoiseFn is train/evaluate.h).
#pragma once
#include <torch/torch.h>

#include "core/elbo.h"
#include "data/dataset.h"
#include "sample/ode_likelihood.h"
#include "train/config.h"
#include "train/evaluate.h"

namespace gsdiff::cli {

// -log p(x) through the probability-flow ODE (sample/ode_likelihood.h) per example; 8-bit images are
// uniformly dequantised (x = (v + u)/128 - 1) and charged D log 128 nats, so bits/dim bounds the discrete
// likelihood. Reported with exact = false (Hutchinson estimate) unless ode.trace() == "exact".
BoundResult evaluate_ode(const Process& p, const DenoiseFn& f, const data::Dataset& ds, const EvalOptions& opts,
                         const OdeLikelihoodOptions& ode, const torch::Device& device);

}  // namespace gsdiff::cli
