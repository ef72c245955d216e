// Gauss–Legendre nodes (Newton on Legendre polynomials) and globally adaptive composite quadrature.
#include "core/quadrature.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace gsdiff {

std::pair<std::vector<double>, std::vector<double>> gauss_legendre(int n, double a, double b) {
  if (n < 1) throw std::invalid_argument("gauss_legendre: n must be >= 1");
  std::vector<double> x(n), w(n);
  for (int i = 0; i < (n + 1) / 2; ++i) {
    double z = std::cos(M_PI * (i + 0.75) / (n + 0.5)), dp = 0.0;
    for (int it = 0; it < 100; ++it) {
      double p0 = 1.0, p1 = 0.0;
      for (int k = 1; k <= n; ++k) {  // P_k(z) = ((2k - 1) z P_{k-1} - (k - 1) P_{k-2}) / k
        double p2 = p1;
        p1 = p0;
        p0 = ((2.0 * k - 1.0) * z * p1 - (k - 1.0) * p2) / k;
      }
      dp = n * (z * p0 - p1) / (z * z - 1.0);
      double dz = p0 / dp;
      z -= dz;
      if (std::abs(dz) < 1e-15) break;
    }
    double wi = 2.0 / ((1.0 - z * z) * dp * dp);
    x[i] = -z;
    x[n - 1 - i] = z;
    w[i] = w[n - 1 - i] = wi;
  }
  for (int i = 0; i < n; ++i) {
    x[i] = 0.5 * (b - a) * x[i] + 0.5 * (b + a);
    w[i] *= 0.5 * (b - a);
  }
  return {x, w};
}

namespace {

struct Panel {
  double lo, hi;
  torch::Tensor coarse, left, right;  // [B] each
  double err;
};

}  // namespace

QuadratureResult integrate_adaptive(const std::function<torch::Tensor(double)>& f, double a, double b, double tol,
                                    int64_t max_evaluations, int order) {
  if (!(b > a)) throw std::invalid_argument("integrate_adaptive: need b > a");
  auto [x01, w01] = gauss_legendre(order, 0.0, 1.0);
  QuadratureResult r;
  auto rule = [&](double lo, double hi) {  // order-point Gauss–Legendre on [lo, hi]
    torch::Tensor s;
    for (int k = 0; k < order; ++k) {
      auto v = (hi - lo) * w01[k] * f(lo + (hi - lo) * x01[k]).to(torch::kFloat64);
      s = s.defined() ? s + v : v;
    }
    r.evaluations += order;
    return s;
  };
  auto refine = [&](double lo, double hi, torch::Tensor coarse) {
    double mid = 0.5 * (lo + hi);
    Panel p{lo, hi, std::move(coarse), rule(lo, mid), rule(mid, hi), 0.0};
    p.err = (p.left + p.right - p.coarse).mean().abs().item<double>();
    return p;
  };
  std::vector<double> edges{a};
  for (int k = 6; k >= 0; --k) edges.push_back(a + (b - a) * std::ldexp(1.0, -k));
  std::vector<Panel> panels;
  for (size_t i = 0; i + 1 < edges.size(); ++i) panels.push_back(refine(edges[i], edges[i + 1], rule(edges[i], edges[i + 1])));
  auto total_error = [&] {
    double e = 0;
    for (const auto& p : panels) e += p.err;
    return e;
  };
  while (total_error() > tol && r.evaluations + 4 * order <= max_evaluations) {
    auto worst = std::max_element(panels.begin(), panels.end(), [](const Panel& u, const Panel& v) { return u.err < v.err; });
    Panel p = *worst;
    double mid = 0.5 * (p.lo + p.hi);
    *worst = refine(p.lo, mid, p.left);
    panels.push_back(refine(mid, p.hi, p.right));
  }
  for (const auto& p : panels) r.value = r.value.defined() ? r.value + p.left + p.right : p.left + p.right;
  r.error = total_error();
  r.converged = r.error <= tol;
  return r;
}

}  // namespace gsdiff
