// TermWatch: the forwarded ELBO terms, checked per example for a non-finite sum.
#include "train/term_watch.h"

#include <cmath>
#include <sstream>

namespace gsdiff {

using torch::Tensor;

Tensor TermWatch::watch(const char* term, const Tensor& v, const Tensor& t) const {
  auto sums = sum_dims(v.detach()).to(torch::kCPU, torch::kFloat64);  // [B]
  if (torch::isfinite(sums).all().item<bool>()) return v;
  auto tc = t.defined() ? t.detach().to(torch::kCPU, torch::kFloat64) : Tensor();
  if (hits_.size() < size_t(sums.size(0))) hits_.resize(size_t(sums.size(0)));
  for (int64_t j = 0; j < sums.size(0); ++j) {
    const double s = sums[j].item<double>();
    if (std::isfinite(s) || hits_[size_t(j)]) continue;
    hits_[size_t(j)] = Hit{term, tc.defined() ? tc[j].item<double>() : 1.0, s};
  }
  return v;
}

std::string TermWatch::describe(const Hit& h) const {
  std::ostringstream os;
  os << "process '" << name() << "': term '" << h.term << "' is "
     << (std::isnan(h.value) ? "nan" : h.value > 0 ? "inf" : "-inf") << " at t = " << h.t;
  if (!continuous_time()) os << " (step i = " << std::llround(h.t * double(steps())) << " of T = " << steps() << ")";
  return os.str();
}

Tensor TermWatch::prior_kl(const Tensor& x0) const { return watch("prior", p_.prior_kl(x0), Tensor()); }

Tensor TermWatch::reconstruction(const Tensor& x0, const Tensor& xt, const Tensor& t, const Tensor& pred) const {
  return watch("reconstruction", p_.reconstruction(x0, xt, t, pred), t);
}

Tensor TermWatch::step_kl(const Tensor& x0, const Tensor& xt, const Tensor& s, const Tensor& t, const Tensor& pred) const {
  return watch("diffusion", p_.step_kl(x0, xt, s, t, pred), t);
}

Tensor TermWatch::elbo_integrand(const Tensor& x0, const Tensor& xt, const Tensor& t, const Tensor& pred) const {
  return watch("diffusion", p_.elbo_integrand(x0, xt, t, pred), t);
}

}  // namespace gsdiff
