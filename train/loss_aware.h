// iDDPM's loss-aware importance sampler of the one-call bound's term (Nichol & Dhariwal 2021, sec. 3.3).
#pragma once
#include <torch/torch.h>

#include <memory>

#include "core/process.h"
#include "train/config.h"

namespace gsdiff {

// P(bin k) ∝ sqrt(E[L_k^2]) over N equal bins of the bound's terms (discrete time: bin i - 1 holds L_{i-1}, N = T;
// continuous time: bins of t in [t_min, 1]), the variance-minimising proposal for sum_k L_k / P(k) estimated from
// the terms training has seen: E[L_k^2] is the running mean of bin k's first `history` terms, then an exponential
// window of about `history` terms (iDDPM keeps the last 10 in a ring). Uniform until every bin has `history` terms;
// after that mixed with `uniform` of the uniform law, so no bin's probability reaches 0 and every weight 1 / P stays
// bounded (iDDPM mixes 0.001). State lives on one device; under data parallel every rank folds in the same
// all-reduced sums (pending), so every rank holds the same proposal and a checkpoint carries it exactly.
class LossAwareTimes {
 public:
  LossAwareTimes(int64_t bins, int64_t history, double uniform, const torch::Device& device);

  int64_t bins() const { return moment_.size(0); }
  torch::Tensor probs() const;  // [N] float64, positive, sums to 1 (no host sync)
  bool warm() const;            // every bin has `history` terms (host sync)

  // This step's terms: bins [B] long (< 0 ignored: the continuous-time reconstruction), unweighted terms [B].
  void record(const torch::Tensor& bin, const torch::Tensor& term);
  torch::Tensor pending() const { return pending_; }  // [2N] float64: sum of term^2 per bin, then counts
  // Folds a step's sums ([2N], the global batch's under data parallel) into the moments and clears pending.
  void commit(const torch::Tensor& sums);
  void discard() { pending_.zero_(); }  // a skipped step: its terms are not seen

  torch::Tensor moments() const { return moment_; }  // [N] float64: the E[L_k^2] estimates
  torch::Tensor counts() const { return count_; }    // [N] float64: terms seen per bin
  void save(torch::serialize::OutputArchive& ar) const;
  void load(torch::serialize::InputArchive& ar);

 private:
  int64_t history_;
  double uniform_;
  torch::Tensor moment_, count_, pending_;
};

// objective.time_sampling "loss-aware": the sampler for this process (bins from objective.loss_aware_bins), else null.
std::shared_ptr<LossAwareTimes> make_loss_aware(const ObjectiveOptions& o, const Process& p, const torch::Device& device);

}  // namespace gsdiff
