// Toy distributions with known statistics, sampled from an explicit torch::Generator.
#include "data/toy.h"

#include <cmath>
#include <stdexcept>

namespace gsdiff::data {

GmmSpec GmmSpec::ring(int64_t k, double radius, double std) {
  if (k < 1) throw std::invalid_argument("toy-gmm: components must be >= 1");
  GmmSpec s;
  for (int64_t i = 0; i < k; ++i) {
    double a = 2.0 * 3.14159265358979323846 * double(i) / double(k);
    s.means.push_back({radius * std::cos(a), radius * std::sin(a)});
    s.stds.push_back(std);
    s.weights.push_back(1.0);
  }
  return s;
}

namespace {
void check_gmm(const GmmSpec& s) {
  if (s.means.empty() || s.stds.size() != s.means.size() || s.weights.size() != s.means.size())
    throw std::invalid_argument("toy-gmm: means, stds and weights must be non-empty and of equal length");
  for (double w : s.weights)
    if (!(w >= 0)) throw std::invalid_argument("toy-gmm: weights must be non-negative");
}
torch::Tensor weights(const GmmSpec& s) {
  auto w = torch::tensor(s.weights, torch::kDouble);
  return w / w.sum();
}
torch::Tensor means(const GmmSpec& s) {
  auto m = torch::empty({int64_t(s.means.size()), 2}, torch::kDouble);
  for (size_t i = 0; i < s.means.size(); ++i) {
    m[i][0] = s.means[i][0];
    m[i][1] = s.means[i][1];
  }
  return m;
}
}  // namespace

torch::Tensor sample_gmm(int64_t n, const GmmSpec& spec, torch::Generator gen) {
  check_gmm(spec);
  auto comp = torch::multinomial(weights(spec), n, /*replacement=*/true, gen);
  auto mu = means(spec).index_select(0, comp);
  auto sd = torch::tensor(spec.stds, torch::kDouble).index_select(0, comp).unsqueeze(1);
  auto z = torch::randn({n, 2}, gen, torch::kDouble);
  return (mu + sd * z).to(torch::kFloat);
}

torch::Tensor gmm_mean(const GmmSpec& spec) {
  check_gmm(spec);
  return (weights(spec).unsqueeze(1) * means(spec)).sum(0);
}

torch::Tensor gmm_covariance(const GmmSpec& spec) {
  auto w = weights(spec), mu = means(spec), m = gmm_mean(spec);
  auto sd = torch::tensor(spec.stds, torch::kDouble);
  auto second = torch::einsum("k,ki,kj->ij", {w, mu, mu}) + (w * sd * sd).sum() * torch::eye(2, torch::kDouble);
  return second - torch::outer(m, m);
}

torch::Tensor sample_checkerboard(int64_t n, torch::Generator gen, int64_t cells, double half_width) {
  if (cells < 2 || cells % 2) throw std::invalid_argument("toy-checkerboard: cells must be even and >= 2");
  auto col = torch::randint(0, cells, {n}, gen, torch::kInt64);
  auto row = 2 * torch::randint(0, cells / 2, {n}, gen, torch::kInt64) + col.remainder(2);
  auto u = torch::rand({n, 2}, gen, torch::kDouble);
  auto cell = torch::stack({col, row}, 1).to(torch::kDouble);
  double w = 2.0 * half_width / double(cells);
  return ((cell + u) * w - half_width).to(torch::kFloat);
}

MarkovChain::MarkovChain(torch::Tensor transition, int64_t length, torch::Tensor initial)
    : transition_(transition.to(torch::kDouble)), length_(length) {
  if (transition_.dim() != 2 || transition_.size(0) != transition_.size(1) || transition_.size(0) < 1)
    throw std::invalid_argument("toy-markov: transition must be a square [K,K] matrix");
  if ((transition_ < 0).any().item<bool>() ||
      !torch::allclose(transition_.sum(1), torch::ones({transition_.size(0)}, torch::kDouble), 1e-6, 1e-6))
    throw std::invalid_argument("toy-markov: transition rows must be non-negative and sum to 1");
  if (length_ < 1) throw std::invalid_argument("toy-markov: length must be >= 1");
  initial_ = initial.defined() ? initial.to(torch::kDouble) : stationary();
  if (initial_.dim() != 1 || initial_.size(0) != vocab() || std::abs(initial_.sum().item<double>() - 1) > 1e-6)
    throw std::invalid_argument("toy-markov: initial must be a probability vector of length K");
}

MarkovChain MarkovChain::example(int64_t length) {
  auto p = torch::tensor({0.70, 0.10, 0.10, 0.10,  //
                          0.05, 0.80, 0.05, 0.10,  //
                          0.20, 0.20, 0.50, 0.10,  //
                          0.25, 0.25, 0.25, 0.25},
                         torch::kDouble)
               .reshape({4, 4});
  return MarkovChain(p, length);
}

torch::Tensor MarkovChain::stationary() const {
  // Power iteration on pi <- pi P from uniform (the example chains are ergodic and aperiodic).
  auto pi = torch::full({vocab()}, 1.0 / double(vocab()), torch::kDouble);
  for (int i = 0; i < 10000; ++i) {
    auto next = torch::matmul(pi, transition_);
    bool done = (next - pi).abs().max().item<double>() < 1e-15;
    pi = next;
    if (done) break;
  }
  return pi / pi.sum();
}

torch::Tensor MarkovChain::sample(int64_t n, torch::Generator gen) const {
  auto x = torch::empty({n, length_}, torch::kInt64);
  auto cur = torch::multinomial(initial_, n, true, gen);
  x.select(1, 0).copy_(cur);
  for (int64_t t = 1; t < length_; ++t) {
    cur = torch::multinomial(transition_.index_select(0, cur), 1, true, gen).squeeze(1);
    x.select(1, t).copy_(cur);
  }
  return x;
}

torch::Tensor MarkovChain::log_prob(const torch::Tensor& x) const {
  if (x.dim() != 2 || x.size(1) != length_)
    throw std::invalid_argument("toy-markov: log_prob expects [n," + std::to_string(length_) + "]");
  auto xi = x.to(torch::kInt64);
  auto lp = initial_.log().index_select(0, xi.select(1, 0));
  auto logp = transition_.log();
  for (int64_t t = 1; t < length_; ++t) lp = lp + logp.index({xi.select(1, t - 1), xi.select(1, t)});
  return lp;
}

double MarkovChain::entropy_nats() const {
  auto plogp = [](const torch::Tensor& p) { return torch::where(p > 0, -p * p.log(), torch::zeros_like(p)); };
  auto row_h = plogp(transition_).sum(1);  // H(P(i, .))
  double h = plogp(initial_).sum().item<double>();
  auto pt = initial_;
  for (int64_t t = 1; t < length_; ++t) {
    h += (pt * row_h).sum().item<double>();
    pt = torch::matmul(pt, transition_);
  }
  return h;
}

}  // namespace gsdiff::data
