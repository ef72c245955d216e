// A user's program: registers the ring-walk kernel, builds it by name and checks it against the built-in rate-matrix.
#include <iostream>

#include "core/elbo.h"
#include "ring_walk.h"

int main() {
  register_ring_walk();
  const int64_t K = 6;
  auto p = gsdiff::make_process({{"name", "ring-walk"}, {"K", K}, {"rate", 2.0}});
  auto& ring = dynamic_cast<gsdiff::CategoricalProcess&>(*p);

  // The same generator through the built-in `rate-matrix` (matrix exponential), schedule exp(-2 t): B(t) = 2 t.
  auto R = ring.rate(torch::zeros({1}, torch::kFloat64))[0] / 2.0;
  std::vector<std::vector<double>> rows(K, std::vector<double>(K));
  for (int64_t i = 0; i < K; ++i)
    for (int64_t j = 0; j < K; ++j) rows[i][j] = R[i][j].item<double>();
  auto rm = gsdiff::make_process({{"name", "rate-matrix"}, {"rates", rows}, {"dtype", "float64"},
                                  {"schedule", {{"type", "exponential"}, {"rate", 2.0}}}});
  auto& ref = dynamic_cast<gsdiff::CategoricalProcess&>(*rm);

  auto t = torch::tensor({0.1, 0.5, 0.9}, torch::kFloat64);
  double vs_matrix_exp = (ring.qbar(t) - ref.qbar(t)).abs().max().item<double>();
  double row_sums = (ring.qbar(t).sum(-1) - 1.0).abs().max().item<double>();
  auto s = torch::tensor({0.05, 0.2, 0.6}, torch::kFloat64);
  double ck = (ring.qbar(s).bmm(ring.qstep(s, t)) - ring.qbar(t)).abs().max().item<double>();

  // The generic ELBO machinery works unchanged: the negative ELBO of a uniform "network" on 4 x 8 tokens.
  auto gen = at::detail::createCPUGenerator(0);
  auto x0 = at::randint(0, K, {4, 8}, gen);
  gsdiff::DenoiseFn uniform_net = [K](const torch::Tensor& x, const torch::Tensor&) {
    return torch::zeros({x.size(0), x.size(1), K}, torch::kFloat64);
  };
  auto terms = gsdiff::negative_elbo(ring, uniform_net, x0, gen, gsdiff::ElboOptions().time_samples(64));
  double bits_per_token = terms.total().mean().item<double>() / (8 * std::log(2.0));

  std::cout << "ring-walk K=" << K << ": |Qbar - expm(B R)| = " << vs_matrix_exp << ", |row sums - 1| = " << row_sums
            << ", Chapman-Kolmogorov error = " << ck << ", uniform-model bound = " << bits_per_token << " bits/token\n";
  bool ok = vs_matrix_exp < 1e-9 && row_sums < 1e-12 && ck < 1e-12 && std::isfinite(bits_per_token);
  std::cout << (ok ? "ring-walk: OK" : "ring-walk: FAILED") << "\n";
  return ok ? 0 : 1;
}
