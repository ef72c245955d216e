// Discretized-Gaussian and rate-matrix kernels as dense matrices (Qbar, Q_{t|s}, R_t); blackout: core/blackout.cpp.
#include "core/dense_kernels.h"

#include <cmath>

#include "core/options.h"

namespace gsdiff {

using torch::Tensor;

namespace {
torch::ScalarType parse_dtype(const std::string& d) { return d == "float64" ? torch::kFloat64 : torch::kFloat32; }
}  // namespace

// ---------------------------------------------------------------- discretized Gaussian (D3PM)

DiscretizedGaussianProcess::DiscretizedGaussianProcess(DiscretizedGaussianOptions opts)
    : CategoricalProcess(opts.K(), opts.K(), opts.steps(), 0.0), opts_(std::move(opts)) {
  if (opts_.steps() < 1)
    throw ConfigError("process 'discretized-gaussian': field 'steps' must be >= 1 (this kernel is defined in discrete time only)");
  compute_dtype_ = parse_dtype(opts_.dtype());
  bayes_ = opts_.parameterization() == "bayes";
}

nlohmann::json DiscretizedGaussianProcess::options_json() const {
  return {{"name", name()}, {"K", opts_.K()}, {"steps", opts_.steps()}, {"beta_min", opts_.beta_min()},
          {"beta_max", opts_.beta_max()}, {"dtype", opts_.dtype()}, {"parameterization", opts_.parameterization()}};
}

Tensor DiscretizedGaussianProcess::one_step(int64_t i) const {
  const int64_t T = opts_.steps();
  double beta = T == 1 ? opts_.beta_min() : opts_.beta_min() + (opts_.beta_max() - opts_.beta_min()) * double(i - 1) / double(T - 1);
  const double c = 4.0 / (double(K_ - 1) * double(K_ - 1) * beta);
  auto n = torch::arange(-(K_ - 1), K_, torch::kFloat64);
  double norm = torch::exp(-c * n * n).sum().item<double>();
  auto idx = torch::arange(K_, torch::kFloat64);
  auto d = idx.unsqueeze(1) - idx.unsqueeze(0);            // [V, V] i - j
  auto Q = torch::exp(-c * d * d) / norm;
  Q.fill_diagonal_(0.0);
  Q = Q + torch::diag(1.0 - Q.sum(1));                     // rows sum to 1
  return Q;
}

Tensor DiscretizedGaussianProcess::build_grid_table() const {
  const int64_t T = opts_.steps();
  auto dtype = (T + 1) * K_ * K_ * 8 > (int64_t(64) << 20) ? torch::kFloat32 : torch::kFloat64;
  auto table = torch::empty({T + 1, K_, K_}, dtype);
  auto run = torch::eye(K_, torch::kFloat64);
  table[0].copy_(run);
  for (int64_t i = 1; i <= T; ++i) {
    run = run.mm(one_step(i));
    table[i].copy_(run);
  }
  return table;
}

int64_t DiscretizedGaussianProcess::index_of(double t, const char* what) const {
  double pos = t * double(opts_.steps());
  int64_t i = std::llround(pos);
  if (std::abs(pos - double(i)) > 1e-6 || i < 0 || i > opts_.steps())
    throw std::invalid_argument(std::string("discretized-gaussian: ") + what + " = " + std::to_string(t) +
                                " is not on the grid i / T (T = " + std::to_string(opts_.steps()) + ")");
  return i;
}

Tensor DiscretizedGaussianProcess::qbar(const Tensor& t) const {
  auto td = t.to(torch::kFloat64).contiguous();
  std::vector<int64_t> idx;
  for (int64_t n = 0; n < td.numel(); ++n) idx.push_back(index_of(td[n].item<double>(), "t"));
  return grid_table().index_select(0, torch::tensor(idx)).to(torch::kFloat64);
}

Tensor DiscretizedGaussianProcess::qstep(const Tensor& s, const Tensor& t) const {
  auto sd = s.to(torch::kFloat64).contiguous(), td = t.to(torch::kFloat64).contiguous();
  std::vector<Tensor> out;
  for (int64_t n = 0; n < td.numel(); ++n) {  // one matrix per distinct (s, t); callers pass one pair when all agree
    int64_t j = index_of(sd[n].item<double>(), "s"), i = index_of(td[n].item<double>(), "t");
    TORCH_CHECK(j < i, "discretized-gaussian: need s < t");
    auto Q = one_step(j + 1);
    for (int64_t k = j + 2; k <= i; ++k) Q = Q.mm(one_step(k));
    out.push_back(Q);
  }
  return torch::stack(out);
}

Tensor DiscretizedGaussianProcess::rate(const Tensor&) const {
  throw std::logic_error("discretized-gaussian is a discrete-time kernel: it has no continuous-time generator");
}

Tensor DiscretizedGaussianProcess::prior_probs() const { return torch::full({K_}, 1.0 / double(K_), torch::kFloat64); }

// ---------------------------------------------------------------- rate matrix

RateMatrixProcess::RateMatrixProcess(RateMatrixOptions opts)
    : CategoricalProcess(int64_t(opts.rates().size()), int64_t(opts.rates().size()), opts.base().steps(), opts.base().t_min()),
      opts_(std::move(opts)) {
  compute_dtype_ = parse_dtype(opts_.base().dtype());
  bayes_ = opts_.base().parameterization() == "bayes";
  std::vector<double> flat;
  for (const auto& row : opts_.rates()) flat.insert(flat.end(), row.begin(), row.end());
  R_ = torch::tensor(flat, torch::kFloat64).reshape({K_, K_});
  if (!opts_.prior().empty()) {
    prior_ = torch::tensor(opts_.prior(), torch::kFloat64);
  } else {  // stationary law: pi R = 0, sum pi = 1 (least squares on [R^T; 1^T] pi = [0; 1])
    auto A = torch::cat({R_.t(), torch::ones({1, K_}, torch::kFloat64)});
    auto b = torch::zeros({K_ + 1, 1}, torch::kFloat64);
    b[K_][0] = 1.0;
    auto pi = std::get<0>(torch::linalg_lstsq(A, b, c10::nullopt, c10::nullopt)).squeeze(1).clamp_min(0.0);
    prior_ = pi / pi.sum();
  }
}

nlohmann::json RateMatrixProcess::options_json() const {
  const auto& b = opts_.base();
  return {{"name", name()}, {"rates", opts_.rates()}, {"prior", prior_vec()}, {"steps", b.steps()}, {"t_min", b.t_min()},
          {"schedule", b.schedule().to_json()}, {"dtype", b.dtype()}, {"parameterization", b.parameterization()}};
}

Tensor RateMatrixProcess::qbar(const Tensor& t) const {
  auto B = opts_.base().schedule().B(t).reshape({-1, 1, 1});
  return torch::matrix_exp(B * R_.unsqueeze(0));
}

Tensor RateMatrixProcess::qstep(const Tensor& s, const Tensor& t) const {
  const auto& sch = opts_.base().schedule();
  auto dB = (sch.B(t) - sch.B(s)).reshape({-1, 1, 1});
  return torch::matrix_exp(dB * R_.unsqueeze(0));
}

Tensor RateMatrixProcess::rate(const Tensor& t) const {
  return opts_.base().schedule().beta(t).reshape({-1, 1, 1}) * R_.unsqueeze(0);
}

}  // namespace gsdiff
