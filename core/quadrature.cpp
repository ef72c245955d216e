// Gauss–Legendre nodes: roots of P_n by Newton from Chebyshev-like starting points.
#include "core/quadrature.h"

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

}  // namespace gsdiff
