// Parses and checks `gsdiff sample`'s remasking, unmask-order, temperature / top-p and semi-AR block flags.
#include "tools/sampling_flags.h"

#include <algorithm>
#include <limits>
#include <sstream>

#include "core/mixture_kernels.h"
#include "sample/masked_step.h"

namespace gsdiff::cli {

namespace {

std::string sampling_choices_text(const std::vector<std::string>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i == 0 ? "" : i + 1 == v.size() ? " or " : ", ") + v[i];
  return s;
}

std::string sampling_bar(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& c : v) s += (s.empty() ? "" : " | ") + c;
  return s;
}

std::string sampling_string_choice(const cxxopts::ParseResult& args, const std::string& flag, const std::vector<std::string>& choices) {
  const auto v = args[flag].as<std::string>();
  if (std::find(choices.begin(), choices.end(), v) == choices.end())
    throw UsageError("--" + flag + ": expected " + sampling_choices_text(choices) + ", got '" + v + "'");
  return v;
}

// --remask-loop with --t-on, --t-off, --alpha-on into o (already holding --remask); UsageError naming the flag.
void loop_from_flags(const cxxopts::ParseResult& args, MaskedOptions& o) {
  if (!args.count("remask-loop")) return;
  o.loop(true).t_on(args["t-on"].as<double>()).t_off(args["t-off"].as<double>());
  if (args.count("alpha-on")) o.alpha_on(args["alpha-on"].as<double>());
  if (!(o.t_off() < o.t_on()))
    throw UsageError("--t-off: expected a time below --t-on " + (std::ostringstream() << o.t_on()).str() + ", got '" +
                     (std::ostringstream() << o.t_off()).str() + "'");
}

}  // namespace

void add_sampling_flags(cxxopts::Options& o) {
  o.add_options()("remask", "absorbing models, --sampler ancestral or mdlm-cached: ReMDM remasking schedule (Wang et al. "
                  "2025): " + sampling_bar(remask_choices()) + "; cap and rescale take --eta in [0, 1]",
                  cxxopts::value<std::string>()->default_value("none"))(
      "unmask", "absorbing models, --sampler ancestral or mdlm-cached: which masked positions a step decodes: " +
      sampling_bar(unmask_choices()) + " (MaskGIT: the k most confident by max probability, top-2 margin or -entropy; k "
      "from the schedule)", cxxopts::value<std::string>()->default_value("random"))(
      "remask-loop", "with --remask: ReMDM-loop (Wang et al. 2025): the steps inside [--t-off, --t-on] hold alpha at "
      "--alpha-on and only they remask; MDLM's steps before and after");
}

std::vector<NumFlag> sampling_num_flags() {
  const double inf = std::numeric_limits<double>::infinity();
  return {{"temperature", "discrete models: sample x0 from p(x0 | x_t)^(1/T), renormalised", NumFlag::Real, 0, 1e6, true,
           false, "", "1"},
          {"top-p", "discrete models: sample x0 from the nucleus of p(x0 | x_t) (the most probable x0 up to mass p)",
           NumFlag::Real, 0, 1, true, false, "", "1"},
          {"length", "text models: generate N tokens semi-autoregressively (needs --block; N >= the model's length)",
           NumFlag::Int64, 1, inf},
          {"block", "text models with --length: new tokens per window, the rest of the window is kept context "
           "(at most the model's length)", NumFlag::Int64, 1, inf},
          {"t-on", "--remask-loop: the grid time where the loop starts", NumFlag::Real, 0, 1, true, true, "", "0.55"},
          {"t-off", "--remask-loop: the grid time where the loop ends (below --t-on)", NumFlag::Real, 0, 1, true, true, "",
           "0.05"},
          {"alpha-on", "--remask-loop: alpha held inside the loop (default: the schedule's alpha at --t-on)",
           NumFlag::Real, 0, 1, true, true}};
}

bool has_sampling_flags(const cxxopts::ParseResult& args) {
  for (const auto* f : {"remask", "unmask", "remask-loop", "t-on", "t-off", "alpha-on", "temperature", "top-p", "length", "block"})
    if (args.count(f)) return true;
  return false;
}

nlohmann::json masked_method_from_flags(const cxxopts::ParseResult& args, const std::string& sampler) {
  const bool mine = sampler == "ancestral" || sampler == "mdlm-cached";
  for (const auto* f : {"remask", "unmask", "remask-loop", "t-on", "t-off", "alpha-on"})
    if (args.count(f) && !mine)
      throw UsageError(std::string("--") + f + ": an option of --sampler ancestral or mdlm-cached (absorbing models), not of " + sampler);
  for (const auto* f : {"t-on", "t-off", "alpha-on"})
    if (args.count(f) && !args.count("remask-loop")) throw UsageError(std::string("--") + f + ": belongs to --remask-loop");
  const auto remask = sampling_string_choice(args, "remask", remask_choices());
  const auto unmask = sampling_string_choice(args, "unmask", unmask_choices());
  if (args.count("eta") && sampler != "ddim" && sampler != "dpm-solver++") {  // dpm-solver++: its SDE noise
    if (!mine || (remask != "cap" && remask != "rescale"))
      throw UsageError("--eta: an option of --sampler ddim or dpm-solver++, not of " + sampler + (mine ? " --remask " + remask : "") +
                       " (it is also ReMDM's eta of --remask cap or rescale, with --sampler ancestral or mdlm-cached)");
    if (args["eta"].as<double>() > 1.0)
      throw UsageError("--eta: with --remask " + remask + " expected a number in [0, 1], got '" +
                       (std::ostringstream() << args["eta"].as<double>()).str() + "'");
  }
  if (remask != "none" && unmask != "random")
    throw UsageError("--remask " + remask + " with --unmask " + unmask + ": remasking keeps MDLM's random order; give one of them");
  if (args.count("remask-loop") && remask == "none")
    throw UsageError("--remask-loop: remasks inside the loop, so it needs --remask cap, rescale or conf");
  if (!mine || (!args.count("remask") && !args.count("unmask"))) return nullptr;
  auto o = MaskedOptions().remask(remask).unmask(unmask);
  if (remask == "cap" || remask == "rescale") o.eta(args["eta"].as<double>());
  loop_from_flags(args, o);
  return to_json(o);
}

TokenFilterOptions filter_from_flags(const cxxopts::ParseResult& args) {
  return TokenFilterOptions().temperature(args["temperature"].as<double>()).top_p(args["top-p"].as<double>());
}

BlockOptions blocks_from_flags(const cxxopts::ParseResult& args) {
  if (args.count("length") != args.count("block"))
    throw UsageError(args.count("length") ? "--length needs --block B (new tokens per window)"
                                          : "--block needs --length N (the tokens to generate)");
  if (!args.count("length")) return {};
  return BlockOptions().length(args["length"].as<int64_t>()).block(args["block"].as<int64_t>());
}

void check_sampling_flags(const cxxopts::ParseResult& args, const Process& p, const std::vector<int64_t>& shape) {
  const bool absorbing = dynamic_cast<const AbsorbingProcess*>(&p) != nullptr;
  for (const auto* f : {"remask", "unmask"})
    if (args.count(f) && !absorbing)
      throw UsageError(std::string("--") + f + ": needs the absorbing (mask) process; this model's process is " + p.name() +
                       " (--remask none and --unmask random are its only choices)");
  for (const auto* f : {"temperature", "top-p"})
    if (args.count(f) && p.space() != Space::Discrete)
      throw UsageError(std::string("--") + f + ": acts on p(x0 | x_t) of a discrete process; this model's process is " + p.name());
  const auto b = blocks_from_flags(args);
  if (b.length() == 0) return;
  if (p.space() != Space::Discrete || shape.size() != 1)
    throw UsageError("--length/--block: semi-autoregressive sampling needs a discrete model of one sequence axis; this "
                     "model is " + p.name() + " on examples of " + std::to_string(shape.size()) + " axes");
  if (b.length() < shape[0])
    throw UsageError("--length: expected at least the model's sequence length " + std::to_string(shape[0]) + ", got '" +
                     std::to_string(b.length()) + "'");
  if (b.block() > shape[0])
    throw UsageError("--block: expected at most the model's sequence length " + std::to_string(shape[0]) + ", got '" +
                     std::to_string(b.block()) + "'");
}

}  // namespace gsdiff::cli
