// VDM's learned noise schedule (Kingma et al. 2021, sec. 3.4 and App. I): a monotone network for log-SNR(t).
#pragma once
#include "core/schedules.h"

#include <memory>
#include <vector>

namespace gsdiff {

// lambda(t) = lambda_max - (lambda_max - lambda_min) g(t),  g(t) = (f(t) - f(0)) / (f(1) - f(0)),
//   f(t) = softplus(w0) t + sum_j softplus(a_j) sigmoid(softplus(b_j) (t - c_j))        (H hidden units)
// f is increasing for every parameter value, so lambda decreases from lambda_max at t = 0 to lambda_min at t = 1
// (VDM's monotone MLP, written here as one hidden layer of sigmoids plus a linear term). VP: alpha^2 = sigmoid(lambda).
// The endpoints lambda_max, lambda_min set the bound's prior and reconstruction terms and are trained on the ELBO
// (when learned); the shape g (w0, a, b, c) leaves the continuous-time diffusion term's expectation unchanged (it is
// an integral over lambda) and is trained to minimise its variance: VDM's App. I.2, the gradient of E[L^2] taken as
// 2 L times the ELBO's gradient at g, per example (variance_scale). Initialised to linear log-SNR (a_j = 1e-3).
class LearnedLogSnrSchedule : public GaussianSchedule {
 public:
  // values: [lambda_max, lambda_min, w0, a (H), b (H), c (H)] as saved by values(); empty = the initial schedule.
  LearnedLogSnrSchedule(double lmax, double lmin, int64_t hidden, bool learn_endpoints, std::vector<double> values = {});
  std::string name() const override { return "learned-logsnr"; }
  bool variance_preserving() const override { return true; }
  ScheduleValues at(const torch::Tensor& t) const override;
  std::pair<torch::Tensor, torch::Tensor> alpha_sigma(const torch::Tensor& t) const override;
  nlohmann::json to_json() const override;

  // The trained leaves (float64): the endpoints (when learned), then w0, a, b, c.
  std::vector<torch::Tensor> parameters() const;
  std::vector<torch::Tensor> shape_parameters() const { return {w0_, a_, b_, c_}; }
  std::vector<double> values() const;
  // g(t), the normalised noise level the network is conditioned on (VDM feeds it gamma(t)), float64 like t.
  torch::Tensor level(const torch::Tensor& t) const;
  // Sets, for the next backward pass, the factor by which the gradient reaching g(t) is multiplied, per example,
  // keyed by the example's time: scale[i] for t == times[i] (the trainer passes 2 L_i at each example's t_i; the
  // ELBO evaluates the schedule on row subsets, so the key is the time, not the position). Times not in `times` keep
  // factor 1. Undefined tensors: no scaling.
  void set_variance_scale(const torch::Tensor& times, const torch::Tensor& scale) const { *scale_ = {times, scale}; }

 private:
  // g(t) and g'(t), float64 shaped like t, with the variance scaling on g's gradient.
  std::pair<torch::Tensor, torch::Tensor> shape(const torch::Tensor& t) const;
  torch::Tensor lmax_, lmin_, w0_, a_, b_, c_;
  int64_t hidden_;
  bool learn_endpoints_;
  std::shared_ptr<std::pair<torch::Tensor, torch::Tensor>> scale_ = std::make_shared<std::pair<torch::Tensor, torch::Tensor>>();
};

}  // namespace gsdiff
