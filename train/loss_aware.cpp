// iDDPM's loss-aware term sampler: second moments per bin, the sqrt-proportional proposal, checkpoint state.
#include "train/loss_aware.h"

#include "core/options.h"

namespace gsdiff {

using torch::Tensor;

LossAwareTimes::LossAwareTimes(int64_t bins, int64_t history, double uniform, const torch::Device& device)
    : history_(history), uniform_(uniform) {
  TORCH_CHECK(bins >= 1 && history >= 1 && uniform > 0 && uniform <= 1, "LossAwareTimes: bins ", bins, ", history ",
              history, ", uniform ", uniform);
  auto f64 = torch::TensorOptions().dtype(torch::kFloat64).device(device);
  moment_ = torch::zeros({bins}, f64);
  count_ = torch::zeros({bins}, f64);
  pending_ = torch::zeros({2 * bins}, f64);
}

Tensor LossAwareTimes::probs() const {
  const double N = double(bins());
  auto root = moment_.sqrt();                                           // [N]
  auto total = root.sum();
  auto la = root / total.clamp_min(1e-300) * (1.0 - uniform_) + uniform_ / N;  // [N]
  auto uni = torch::full_like(la, 1.0 / N);
  auto ready = (count_.min() >= double(history_)).logical_and(total > 0);     // [] on the device: no sync
  return torch::where(ready, la, uni);
}

bool LossAwareTimes::warm() const { return count_.min().item<double>() >= double(history_); }

void LossAwareTimes::record(const Tensor& bin, const Tensor& term) {
  const int64_t N = bins();
  auto b = bin.to(pending_.device(), torch::kLong);
  auto keep = b >= 0;                                                   // [B]
  auto idx = b.clamp_min(0);
  auto sq = term.detach().to(pending_.device(), torch::kFloat64).square();  // [B]
  sq = torch::where(keep, sq, torch::zeros_like(sq));
  pending_.narrow(0, 0, N).index_add_(0, idx, sq);
  pending_.narrow(0, N, N).index_add_(0, idx, keep.to(torch::kFloat64));
}

void LossAwareTimes::commit(const Tensor& sums) {
  const int64_t N = bins();
  auto s = sums.to(moment_.device(), torch::kFloat64);
  auto sq = s.narrow(0, 0, N), c = s.narrow(0, N, N);                  // [N] each
  auto mean = sq / c.clamp_min(1.0);
  // Running mean while a bin has fewer than `history` terms, then the weight of c terms in a window of `history`.
  auto alpha = torch::where(c > 0, (c / (count_ + c).clamp_max(double(history_))).clamp_max(1.0), torch::zeros_like(c));
  moment_ += alpha * (mean - moment_);
  count_ += c;
  pending_.zero_();
}

void LossAwareTimes::save(torch::serialize::OutputArchive& ar) const {
  ar.write("moment", moment_.cpu());
  ar.write("count", count_.cpu());
}

void LossAwareTimes::load(torch::serialize::InputArchive& ar) {
  Tensor m, c;
  ar.read("moment", m);
  ar.read("count", c);
  if (m.numel() != bins() || c.numel() != bins())
    throw std::runtime_error("loss-aware sampler state has " + std::to_string(m.numel()) + " bins, this run has " +
                             std::to_string(bins()) + " (objective.loss_aware_bins)");
  moment_.copy_(m);
  count_.copy_(c);
  pending_.zero_();
}

std::shared_ptr<LossAwareTimes> make_loss_aware(const ObjectiveOptions& o, const Process& p, const torch::Device& device) {
  if (o.time_sampling() != "loss-aware") return nullptr;
  int64_t bins = o.loss_aware_bins();
  if (!p.continuous_time()) {
    if (bins != 0 && bins != p.steps())
      throw ConfigError("config: field 'objective.loss_aware_bins' must be 0 or T = " + std::to_string(p.steps()) +
                        " for a discrete-time process (one bin per term), got " + std::to_string(bins));
    bins = p.steps();
  } else if (bins == 0) {
    bins = 64;
  }
  return std::make_shared<LossAwareTimes>(bins, o.loss_aware_history(), o.loss_aware_uniform(), device);
}

}  // namespace gsdiff
