// The process's own learned parameters (a learned noise schedule) beside the network's: their Adam, reduction, state.
#pragma once
#include <torch/torch.h>

#include <memory>
#include <vector>

#include "core/process.h"

namespace gsdiff {

namespace dist {
class ProcessGroup;
}

// Trained with plain Adam at the run's learning rate (no weight decay, no clipping: a handful of schedule scalars
// whose scale is their own), stepped with the network's update and skipped with it. Data parallel: their gradients
// are summed over ranks by one small all-reduce after the network's and divided by the world size.
class ProcessParams {
 public:
  ProcessParams(const Process& p, const torch::Device& device, double beta1, double beta2, double eps);
  bool empty() const { return params_.empty(); }
  void zero_grad();
  void reduce(dist::ProcessGroup* group);  // sum over ranks / world (null: one process)
  bool finite() const;  // every gradient finite
  void step(double lr);
  void save(torch::serialize::OutputArchive& ar) const;
  void load(torch::serialize::InputArchive& ar);  // values and optimizer state
  // Copies a checkpoint's values into p's parameters (inference: no optimizer); false when the archive has none.
  static bool load_values(const Process& p, torch::serialize::InputArchive& ar, const torch::Device& device);

 private:
  std::vector<torch::Tensor> params_;
  std::unique_ptr<torch::optim::Adam> adam_;
};

}  // namespace gsdiff
