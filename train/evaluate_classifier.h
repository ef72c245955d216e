// Held-out cross-entropy and accuracy of a noisy-input classifier (D-CBG's p(y | x_t, t)) over a dataset.
#pragma once
#include <torch/torch.h>

#include <nlohmann/json.hpp>
#include <vector>

#include "core/process.h"
#include "data/dataset.h"
#include "models/denoiser.h"
#include "train/config.h"

namespace gsdiff {

// Monte Carlo over t and x_t, as the classifier objective trains: per example, opts.time_samples() draws of t
// uniform on the process's training times and x_t ~ q(x_t | x0); per-example means, then their mean and standard
// error over examples. Chance is log C nats and an accuracy of 1 / C.
struct ClassifierEvalResult {
  double cross_entropy = 0, stderr_ = 0;     // nats per example
  double accuracy = 0, accuracy_stderr = 0;  // fraction of (example, t) draws whose argmax is the label
  int64_t examples = 0, time_samples = 0, classes = 0;
  std::vector<double> per_example;  // opts.per_example(): each example's cross-entropy (nats), in data order
  nlohmann::json to_json() const;
};

// The first opts.limit() examples (all when 0) in batches of opts.batch_size(), generator seeded by opts.seed(),
// the model in eval mode for the call. The data must have labels.
ClassifierEvalResult evaluate_classifier(const Process& p, DenoiserNet& model, const data::Dataset& ds,
                                         const EvalOptions& opts, const torch::Device& device);

}  // namespace gsdiff
