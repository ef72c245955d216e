// Why a training step was not finite: the first example, term (prior / diffusion / reconstruction) and time.
#include <cmath>
#include <sstream>

#include "train/distributed.h"
#include "train/trainer.h"

namespace gsdiff {

namespace {

using nlohmann::json;

double at_row(const torch::Tensor& v, int64_t j) { return v[j].item<double>(); }

std::string value_name(double v) { return std::isnan(v) ? "nan" : v > 0 ? "inf" : "-inf"; }

// Which term example j scored in the one-call bound (the prior is scored by every example but has no gradient).
std::string scored_term(const ObjectiveResult& r, int64_t j) {
  if (!r.reconstruction_rows.defined()) return "objective";
  return r.reconstruction_rows[j].item<bool>() ? "reconstruction" : "diffusion";
}

// The first example whose forward value is not finite: a bound term first (prior, then the scored term), else the
// loss itself (e.g. the hybrid objective's CE or eps-MSE part). Null when every example's forward is finite.
json forward_cause(const ObjectiveResult& r) {
  auto loss = r.loss.detach().to(torch::kCPU, torch::kFloat64);  // [B]
  const bool terms = r.terms.prior.defined();
  auto prior = terms ? r.terms.prior.detach().to(torch::kCPU, torch::kFloat64) : torch::Tensor();
  auto scored = terms ? (r.terms.diffusion + r.terms.reconstruction).detach().to(torch::kCPU, torch::kFloat64)
                      : torch::Tensor();
  for (int64_t j = 0; j < loss.size(0); ++j) {
    json d;
    if (terms && !std::isfinite(at_row(prior, j))) {
      d = {{"term", "prior"}, {"t", 1.0}, {"value", value_name(at_row(prior, j))}};
    } else if (terms && !std::isfinite(at_row(scored, j))) {
      d = {{"term", scored_term(r, j)}, {"value", value_name(at_row(scored, j))}};
    } else if (!std::isfinite(at_row(loss, j))) {
      d = {{"term", terms ? "objective (beside the bound, e.g. hybrid CE)" : "objective"},
           {"value", value_name(at_row(loss, j))}};
    } else {
      continue;
    }
    d["example"] = j;
    d["stage"] = "loss";
    if (!d.contains("t") && r.t.defined()) d["t"] = at_row(r.t.detach().cpu(), j);
    return d;
  }
  return nullptr;
}

}  // namespace

json Trainer::diagnose_nonfinite(const std::vector<data::Batch>& batches) {
  if (grad_sync_) grad_sync_->set_enabled(false);  // this rank alone: no collective inside the diagnosis
  json found = nullptr;
  for (size_t a = 0; a < batches.size() && found.is_null(); ++a) {
    flat_->zero_grad();
    ObjectiveResult r = micro_objective(batches[a]);  // the same seeds: the same t, x_t and dropout
    found = forward_cause(r);
    if (found.is_null()) {
      // Every forward value is finite: bisect the backward over examples, the graph kept for each half.
      auto grad_bad = [&](int64_t lo, int64_t hi) {
        flat_->zero_grad();
        r.loss.narrow(0, lo, hi - lo).sum().backward({}, /*retain_graph=*/true);
        return !std::isfinite(flat_->grad_norm().item<double>());
      };
      int64_t lo = 0, hi = r.loss.size(0);
      if (!grad_bad(lo, hi)) continue;
      while (hi - lo > 1) {
        const int64_t mid = lo + (hi - lo) / 2;
        if (grad_bad(lo, mid)) hi = mid;
        else lo = mid;
      }
      found = {{"stage", "gradient"}, {"example", lo}, {"term", scored_term(r, lo)}};
      if (r.t.defined()) found["t"] = at_row(r.t.detach().cpu(), lo);
    }
    if (!found.is_null()) found["micro_batch"] = int64_t(a);
  }
  flat_->zero_grad();
  if (found.is_null())
    found = {{"stage", "not reproduced"},
             {"note", "every example's loss and gradient are finite when the step is re-run with its seeds"}};
  found["process"] = process_->name();
  if (found.contains("t") && !process_->continuous_time()) found["step_index"] = std::llround(found["t"].get<double>() * double(process_->steps()));
  if (world() > 1) found["rank"] = rank();
  return found;
}

std::string Trainer::describe_nonfinite(const json& d) const {
  if (d.is_null()) return "none";
  std::ostringstream os;
  os << "process '" << d.value("process", std::string("?")) << "'";
  if (d.value("stage", std::string()) == "not reproduced") {
    os << ": not reproduced (" << d.value("note", std::string()) << ")";
    return os.str();
  }
  os << ", " << d.value("stage", std::string()) << " of term '" << d.value("term", std::string("?")) << "'";
  if (d.contains("value")) os << " (" << d["value"].get<std::string>() << ")";
  if (d.contains("t")) os << " at t = " << d["t"].get<double>();
  if (d.contains("step_index")) os << " (step i = " << d["step_index"].get<int64_t>() << " of T = " << process_->steps() << ")";
  os << ", example " << d.value("example", int64_t(-1)) << " of micro-batch " << d.value("micro_batch", int64_t(0));
  if (d.contains("rank")) os << " on rank " << d["rank"].get<int>();
  return os.str();
}

}  // namespace gsdiff
