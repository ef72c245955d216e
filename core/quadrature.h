// Gauss–Legendre quadrature nodes and weights on [a, b] (Newton iteration on Legendre polynomials).
#pragma once
#include <utility>
#include <vector>

namespace gsdiff {

// n nodes and weights with sum_i w_i f(x_i) ~ int_a^b f(x) dx, exact for polynomials of degree 2n - 1.
std::pair<std::vector<double>, std::vector<double>> gauss_legendre(int n, double a = 0.0, double b = 1.0);

}  // namespace gsdiff
