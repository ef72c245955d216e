// TorchScript tracing of a DenoiserNet into a torch::jit::Module whose forward(x_t, t[, y][, estimate]) works at any batch size.
#include "models/trace.h"

#include <torch/csrc/jit/frontend/tracer.h>

#include <stdexcept>
#include <string>

namespace gsdiff {
namespace {

// Builds a jit::Module tree mirroring the nn::Module tree; its tensor attributes are the very
// tensors of the nn::Module, so the tracer records parameter reads as attribute reads.
void mirror(const torch::nn::Module& src, torch::jit::Module& dst,
            const std::shared_ptr<torch::jit::CompilationUnit>& cu, int& counter) {
  dst.register_attribute("training", c10::BoolType::get(), false);
  for (const auto& p : src.named_parameters(/*recurse=*/false)) dst.register_parameter(p.key(), p.value(), false);
  for (const auto& b : src.named_buffers(/*recurse=*/false)) dst.register_buffer(b.key(), b.value());
  for (const auto& c : src.named_children()) {
    torch::jit::Module sub(c10::QualifiedName("__torch__.gsdiff.traced.Module" + std::to_string(counter++)), cu);
    mirror(*c.value(), sub, cu, counter);
    dst.register_module(c.key(), sub);
  }
}

// Replaces every tensor attribute by a detached copy, so the export no longer aliases the model.
void detach_copies(torch::jit::Module& m) {
  for (const auto& p : m.named_parameters(/*recurse=*/false))
    m.register_parameter(p.name, p.value.detach().clone(), false);
  for (const auto& b : m.named_buffers(/*recurse=*/false)) m.register_buffer(b.name, b.value.detach().clone());
  for (auto sub : m.children()) detach_copies(sub);
}

}  // namespace

torch::jit::Module trace_model(DenoiserNet model, const torch::Tensor& x, const torch::Tensor& t,
                               const torch::Tensor& y, const torch::Tensor& estimate) {
  if (estimate.defined() && !model->self_conditioned())
    throw std::invalid_argument("trace_model: an estimate input needs a self-conditioned model (model.self_condition)");
  const bool was_training = model->is_training();
  model->eval();
  auto cu = std::make_shared<torch::jit::CompilationUnit>();
  torch::jit::Module root(c10::QualifiedName("__torch__.gsdiff.TracedDenoiser"), cu);
  int counter = 0;
  mirror(*model, root, cu, counter);

  torch::jit::Stack inputs{x, t};
  std::vector<std::string> names{"x_t", "t"};
  if (y.defined()) {
    inputs.emplace_back(y);
    names.emplace_back("y");
  }
  if (estimate.defined()) {
    inputs.emplace_back(estimate);
    names.emplace_back("estimate");
  }
  const bool has_y = y.defined(), has_est = estimate.defined();
  auto fn = [&](torch::jit::Stack in) -> torch::jit::Stack {
    torch::Tensor yy = has_y ? in[2].toTensor() : torch::Tensor();
    if (has_est) return {model->forward_self_cond(in[0].toTensor(), in[1].toTensor(), yy, in.back().toTensor())};
    return {model->forward(in[0].toTensor(), in[1].toTensor(), yy)};
  };
  std::shared_ptr<torch::jit::tracer::TracingState> state;
  try {
    torch::NoGradGuard no_grad;
    state = torch::jit::tracer::trace(
                std::move(inputs), fn, [](const torch::autograd::Variable&) { return std::string(); },
                /*strict=*/true, /*force_outplace=*/false, &root, names)
                .first;
  } catch (...) {
    if (was_training) model->train();
    throw;
  }
  if (was_training) model->train();

  auto graph = state->graph;
  auto method = cu->create_function(c10::QualifiedName(*root.type()->name(), "forward"), graph);
  root.type()->addMethod(method);
  detach_copies(root);
  root.eval();
  return root;
}

}  // namespace gsdiff
