// Held-out cross-entropy and accuracy of a noisy-input classifier, Monte Carlo over t and x_t.
#include "train/evaluate_classifier.h"

#include <cmath>
#include <stdexcept>

#include "core/distributions.h"
#include "models/classifier.h"
#include "train/evaluate.h"
#include "train/objectives.h"

namespace gsdiff {

nlohmann::json ClassifierEvalResult::to_json() const {
  nlohmann::json j{{"cross_entropy", cross_entropy}, {"stderr", stderr_}, {"unit", "nats"},
                   {"accuracy", accuracy}, {"accuracy_stderr", accuracy_stderr},
                   {"chance_cross_entropy", std::log(double(classes))}, {"examples", examples},
                   {"estimate", "monte-carlo"}, {"time_samples", time_samples}};
  if (!per_example.empty()) j["per_example"] = per_example;
  return j;
}

namespace {

// Cross-entropy [b] and accuracy [b] of one batch, averaged over `draws` (t, x_t) per example.
std::pair<torch::Tensor, torch::Tensor> score_batch(const Process& p, DenoiserNet& model, const torch::Tensor& x0,
                                                    const torch::Tensor& y, int64_t draws, torch::Generator& gen) {
  auto ce = torch::zeros({x0.size(0)}, torch::kFloat64), acc = torch::zeros({x0.size(0)}, torch::kFloat64);  // [b]
  for (int64_t k = 0; k < draws; ++k) {
    auto t = sample_train_times(p, x0.size(0), false, gen, x0.device());  // [b] float64
    auto xt = p.sample_xt(x0, t, gen);
    auto lp = torch::log_softmax(model->forward(p.network_input(xt, t), t.to(torch::kFloat32)).to(torch::kFloat64), -1);  // [b, C]
    ce -= lp.gather(1, y.view({-1, 1})).squeeze(1).cpu();
    acc += lp.argmax(1).eq(y).to(torch::kFloat64).cpu();
  }
  return {ce / double(draws), acc / double(draws)};
}

double stderr_of(const torch::Tensor& v) { return v.numel() > 1 ? v.std().item<double>() / std::sqrt(double(v.numel())) : 0.0; }

}  // namespace

ClassifierEvalResult evaluate_classifier(const Process& p, DenoiserNet& model, const data::Dataset& ds,
                                         const EvalOptions& opts, const torch::Device& device) {
  auto* clf = as_classifier(model);
  if (!clf) throw std::invalid_argument("evaluate_classifier: the model is not a classifier (model.type classifier)");
  if (ds.num_classes() == 0) throw std::invalid_argument("gsdiff eval: the data '" + ds.name() + "' has no labels to score a classifier on");
  const bool was_training = model->is_training();
  model->eval();
  torch::NoGradGuard ng;
  auto gen = make_generator(device, opts.seed());
  const int64_t n = opts.limit() > 0 ? std::min(opts.limit(), ds.size()) : ds.size();
  if (n == 0) throw std::invalid_argument("gsdiff eval: the data '" + ds.name() + "' has no examples to score");
  std::vector<torch::Tensor> ces, accs;
  for (int64_t start = 0; start < n; start += opts.batch_size()) {
    std::vector<int64_t> idx;
    for (int64_t i = start; i < std::min(n, start + opts.batch_size()); ++i) idx.push_back(i);
    auto batch = ds.get_batch(idx, 0, 0);
    auto [ce, acc] = score_batch(p, model, to_process_space(p, batch.x).to(device), batch.labels.to(device),
                                 opts.time_samples(), gen);
    ces.push_back(ce), accs.push_back(acc);
  }
  if (was_training) model->train();
  auto ce = torch::cat(ces), acc = torch::cat(accs);  // [n]
  ClassifierEvalResult r;
  r.examples = n, r.time_samples = opts.time_samples(), r.classes = clf->classes();
  r.cross_entropy = ce.mean().item<double>(), r.stderr_ = stderr_of(ce);
  r.accuracy = acc.mean().item<double>(), r.accuracy_stderr = stderr_of(acc);
  if (opts.per_example()) r.per_example.assign(ce.data_ptr<double>(), ce.data_ptr<double>() + n);
  return r;
}

}  // namespace gsdiff
