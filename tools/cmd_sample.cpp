// `gsdiff sample`: draws samples from a checkpoint and writes a PNG grid or text lines.
#include <cxxopts.hpp>

#include <algorithm>
#include <iostream>
#include <limits>

#include "core/registry.h"
#include "tools/commands.h"
#include "tools/condition_flags.h"
#include "tools/flags.h"
#include "tools/input_files.h"
#include "tools/sampling_flags.h"
#include "tools/sample_util.h"
#include "models/classifier.h"
#include "sample/guidance.h"
#include "sample/step_guidance.h"
#include "tools/sample_export.h"
#include "data/factory.h"
#include "train/trainer.h"

namespace gsdiff::cli {

namespace {

// The sampler's own options from its flags (--eta: ddim, dpm-solver++, or remask cap / rescale; --order: dpm-solver++;
// --churn, --churn-tmin, --churn-tmax, --churn-noise: heun; --snr, --corrector-steps: pc; --ordinal: tau-leaping;
// --remask, --unmask: ancestral and mdlm-cached on absorbing), parsed into SamplerOptions::method once; a method flag
// given for another sampler is refused.
SamplerOptions sampler_options(const cxxopts::ParseResult& args) {
  const auto name = args["sampler"].as<std::string>();
  const std::vector<std::pair<std::string, std::vector<std::string>>> owners = {
      {"order", {"dpm-solver++"}}, {"snr", {"pc"}}, {"corrector-steps", {"pc"}},
      {"ordinal", {"tau-leaping"}},      {"churn", {"heun"}},         {"churn-tmin", {"heun"}},
      {"churn-tmax", {"heun"}},          {"churn-noise", {"heun"}}};
  for (const auto& [flag, samplers] : owners)
    if (args.count(flag) && std::find(samplers.begin(), samplers.end(), name) == samplers.end())
      throw UsageError("--" + flag + ": an option of --sampler " + samplers.front() +
                       (samplers.size() > 1 ? " or " + samplers.back() : "") + ", not of " + name);
  SamplerOptions so;
  if (name == "ddim") so.method = to_json(DdimOptions().eta(args["eta"].as<double>()));
  if (name == "dpm-solver++")
    so.method = to_json(DpmSolverOptions().order(args["order"].as<int64_t>()).eta(args["eta"].as<double>()));
  if (name == "heun") {
    HeunOptions h;
    h.s_churn(args["churn"].as<double>()).s_tmin(args["churn-tmin"].as<double>()).s_noise(args["churn-noise"].as<double>());
    if (args.count("churn-tmax")) h.s_tmax(args["churn-tmax"].as<double>());
    if (!(h.s_tmin() <= h.s_tmax())) throw UsageError("--churn-tmin: must not exceed --churn-tmax");
    so.method = to_json(h);
  }
  if (name == "pc")
    so.method = to_json(PcOptions().snr(args["snr"].as<double>()).corrector_steps(args["corrector-steps"].as<int64_t>()));
  if (name == "tau-leaping") so.method = to_json(TauLeapingOptions().ordinal(args.count("ordinal") > 0));
  if (auto m = masked_method_from_flags(args, name); !m.is_null()) so.method = m;  // --remask, --eta, --unmask
  return so;
}

// Tokens carry the data for discrete processes and for gaussian-embed.
bool takes_tokens(const Process& p) { return p.space() == Space::Discrete || p.num_categories() > 0; }

// An export knows its process and data shape only: images are 3-d, text8 is 27 tokens per position.
DataSpec export_data_spec(const Process& p, const std::vector<int64_t>& shape) {
  const auto kind = shape.size() == 3 ? data::DataKind::Image
                    : takes_tokens(p) ? data::DataKind::Tokens : data::DataKind::Continuous;
  return {kind, shape, p.num_categories(), takes_tokens(p)};
}

// The constraint hook of the conditioning flags (empty when none was given).
StepHook condition_hook(const cxxopts::ParseResult& args, const Process& p, const DataSpec& spec) {
  auto c = constraint_from_flags(args, spec);
  if (!c) return {};
  return constraint_hook(p, *c, ConstraintOptions().resample(args["resample"].as<int64_t>()));
}

// The labels of --class for num samples: every sample c, or c = -1 cycling 0..C-1; range-checked.
torch::Tensor class_labels(int64_t c, int64_t C, int64_t num, const torch::Device& device) {
  if (c < -1 || c >= C)
    throw std::invalid_argument("--class: expected -1 or 0.." + std::to_string(C - 1) + ", got " + std::to_string(c));
  return (c >= 0 ? torch::full({num}, c, torch::kLong) : torch::arange(num, torch::kLong) % C).to(device);  // [N]
}

// --classifier CKPT --class C [--guidance GAMMA]: D-CBG (Schiff et al. 2025) with a classifier trained by `gsdiff
// train` (objective classifier) on the same process; gamma defaults to 1 (the conditional law).
std::shared_ptr<const StepGuidance> classifier_guidance(const cxxopts::ParseResult& args, const Restored& r,
                                                        const SampleRequest& req, at::IntArrayRef example_shape) {
  if (!args.count("class")) throw std::invalid_argument("--classifier needs --class (the class to guide towards)");
  auto c = restore_for_inference(args["classifier"].as<std::string>(), !args.count("no-ema"), req.device);
  auto* clf = as_classifier(c.model);
  if (!clf) throw std::invalid_argument("--classifier: the checkpoint's model is not a classifier (model.type classifier)");
  if (c.process->options_json() != r.process->options_json() || c.process->name() != r.process->name())
    throw std::invalid_argument("--classifier: the classifier was trained on another process than the model's");
  auto y = class_labels(args["class"].as<int64_t>(), clf->classes(), req.num, req.device);
  const double gamma = args.count("guidance") ? args["guidance"].as<double>() : 1.0;
  DcbgOptions o;
  o.approximation(args["classifier-approx"].as<std::string>());
  const int64_t D = c10::multiply_integers(example_shape), V = r.process->num_states();  // positions, states
  std::cerr << "D-CBG: " << dcbg_approximation_for(o, D, V) << " scores of " << D << " positions x " << V << " states\n";
  return discrete_cbg(model_denoise_fn(c.model), y, gamma, o);
}

double flow_eta_flag(const cxxopts::ParseResult& args) { return args.count("flow-eta") ? args["flow-eta"].as<double>() : -1.0; }

// `gsdiff sample --checkpoint` through a DenoiseFn: guidance, expert switching, conditioning, any sampler and grid.
void sample_checkpoint_with_fn(const cxxopts::ParseResult& args, Restored& r, const SampleRequest& req) {
  const bool conditional = args.count("class") > 0, discrete = r.process->space() == Space::Discrete;
  DenoiseFn f = sampling_denoise_fn(*r.process, r.model);
  SamplerOptions so = sampler_options(args);
  auto ds = data::make_dataset(eval_data_config(r.config));
  if (args.count("classifier")) {
    so.guidance = classifier_guidance(args, r, req, ds->example_shape());
  } else if (conditional) {
    const int64_t C = r.model->num_classes();
    auto y = class_labels(args["class"].as<int64_t>(), C, req.num, req.device);
    if (!discrete) {  // CFG on the network output with weight w (Ho & Salimans 2022)
      f = guided_model_fn(r.model, y, args.count("guidance") ? args["guidance"].as<double>() : 0.0, *r.process);
    } else {  // D-CFG on the reverse step with gamma (Schiff et al. 2025); no --guidance: the conditional model
      f = sampling_denoise_fn(*r.process, r.model, y);
      if (args.count("guidance"))
        so.guidance = discrete_cfg(sampling_denoise_fn(*r.process, r.model, torch::full_like(y, C)), args["guidance"].as<double>());
    }
  }
  if (args.count("low-noise-checkpoint")) {
    auto low = restore_for_inference(args["low-noise-checkpoint"].as<std::string>(), !args.count("no-ema"), req.device);
    if (low.process->options_json() != r.process->options_json())
      throw std::invalid_argument("--low-noise-checkpoint: the two experts must share one process");
    f = switch_experts(sampling_denoise_fn(*r.process, r.model), sampling_denoise_fn(*r.process, low.model),
                       args["switch"].as<double>());
  }
  so.denoiser_uses_t = r.model->uses_time() || args.count("low-noise-checkpoint") > 0;  // experts switch on t
  so.device = req.device;
  check_sampling_flags(args, *r.process, ds->example_shape());
  auto hook = condition_hook(args, *r.process, {ds->kind(), ds->example_shape(), ds->categories(), takes_tokens(*r.process)});
  sample_fn_to_file(*r.process, f, ds->example_shape(), r.process->num_categories(), args["sampler"].as<std::string>(), so,
                    req.num, req.steps, args["grid"].as<std::string>(), req.seed, args["out"].as<std::string>(), hook,
                    {filter_from_flags(args), blocks_from_flags(args), flow_eta_flag(args)});
}

// The flags of `gsdiff sample`; numeric ones validated where they are parsed.
cxxopts::ParseResult parse_sample_flags(cxxopts::Options& o, int argc, char** argv) {
  o.add_options()("checkpoint", "checkpoint file", cxxopts::value<std::string>())(
      "sampler", "ancestral | ddim | euler-maruyama | heun | dpm-solver++ | pc (continuous); ancestral | tau-leaping | euler | tweedie | mdlm-cached (discrete)",
      cxxopts::value<std::string>()->default_value("ancestral"))(
      "model", "sample from a TorchScript export (gsdiff export) instead of a checkpoint", cxxopts::value<std::string>())(
      "low-noise-checkpoint", "expert switching: this checkpoint serves t <= --switch", cxxopts::value<std::string>())(
      "classifier", "discrete models: classifier-based guidance D-CBG (Schiff et al. 2025) towards --class with this "
      "classifier checkpoint (gsdiff train with model.type classifier, objective.name classifier, same process); "
      "--guidance is its gamma, p(y | x_s)^gamma p(x_s | x_t) per position (default 1)", cxxopts::value<std::string>())(
      "classifier-approx", "D-CBG: how p(y | x_s) is scored on each single-position change of x_t: exact (the classifier "
      "on all D x V changes, at most 65536 rows per example) | taylor (Schiff et al.'s first-order approximation: one "
      "forward and backward pass) | auto (exact when it fits, else taylor)", cxxopts::value<std::string>()->default_value("auto"))(
      "ordinal", "tau-leaping on ordered states (blackout): add the fired jumps' displacements (many births per step)")(
      "no-ema", "use the raw weights instead of the EMA")(
      "out", "output file (.png for images, .txt for text)", cxxopts::value<std::string>())(
      "device", "cpu or cuda", cxxopts::value<std::string>()->default_value("cpu"))(
      "plugin", "shared library registering extra processes", cxxopts::value<std::vector<std::string>>())(
      "prompt", "text models: keep TEXT as the first characters of every sample and generate the rest",
      cxxopts::value<std::string>())(
      "suffix", "text models: keep TEXT as the last characters (with --prompt: fill the middle)",
      cxxopts::value<std::string>())(
      "infill", "text models: a pattern from the first character on, '_' marks each unknown character (\"the c_t sat\"); "
      "characters after it are generated", cxxopts::value<std::string>())(
      "inpaint", "image models: MASK.png of the model's image size; white pixels (>= 128) are generated, black ones kept "
      "from --known", cxxopts::value<std::string>())(
      "known", "image models: IMAGE.png with the pixels to keep (the model's size and channels)", cxxopts::value<std::string>())(
      "grid", "time grid: uniform | quadratic (t = (k/n)^2) | karras (EDM's rho = 7 noise levels; continuous-time "
      "Gaussian processes)", cxxopts::value<std::string>()->default_value("uniform"))(
      "h,help", "show this help");
  add_sampling_flags(o);
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<NumFlag> nums = {
      {"steps", "reverse steps (default: the checkpoint's sample.steps, where 0 = the process's T, or 100 in "
       "continuous time)", NumFlag::Int64, 1, 1e8},
      {"num", "number of samples (default: the checkpoint's sample.num)", NumFlag::Int64, 1, 1e8},
      {"seed", "sampler seed (default: the checkpoint's sample.seed)", NumFlag::UInt64, 0, inf},
      {"switch", "expert switching time tau", NumFlag::Real, 0, 1, true, true, "", "0.5"},
      {"eta", "ddim: noise scale; dpm-solver++: the SDE variant's noise (1 = DPM-Solver++ SDE); --remask cap / rescale: "
       "ReMDM's eta (at most 1)", NumFlag::Real, 0, 1e6, false, false, "deterministic / no remasking", "0"},
      {"order", "dpm-solver++: multistep order, 2 (2M) or 3 (3M)", NumFlag::Int64, 2, 3, false, false, "", "2"},
      {"churn", "heun: EDM's S_churn, total stochasticity over the grid (Karras et al. 2022, Alg. 2)", NumFlag::Real, 0,
       1e6, false, false, "the deterministic PF-ODE (Alg. 1)", "0"},
      {"churn-tmin", "heun: churn only at noise levels sigma / alpha >= this (S_tmin)", NumFlag::Real, 0, inf, false,
       false, "", "0"},
      {"churn-tmax", "heun: churn only at noise levels sigma / alpha <= this (S_tmax; default: no bound)", NumFlag::Real,
       0, inf, false, false, ""},
      {"churn-noise", "heun: scale of the churn's noise (S_noise; EDM: 1.003-1.007)", NumFlag::Real, 0, 1e6, false,
       false, "no noise added", "1"},
      {"snr", "pc: Langevin signal-to-noise ratio", NumFlag::Real, 0, 1e6, true, false, "", "0.16"},
      {"corrector-steps", "pc: Langevin steps per step", NumFlag::Int64, 0, 1e6, false, false, "no corrector", "1"},
      {"class", "class-conditional models: the class of every sample, or -1 to cycle 0..C-1 over the samples",
       NumFlag::Int64, -1, 1e9},
      {"guidance", "classifier-free guidance, needs --class. Continuous models: the weight w, (1 + w) cond - w uncond "
       "(Ho & Salimans 2022; 0 = the conditional model). Discrete models: D-CFG's gamma (Schiff et al. 2025), each reverse "
       "step p(x_s | x_t, y)^gamma p(x_s | x_t)^(1 - gamma) per position (1 = the conditional model, 0 = the "
       "unconditional one; gamma = 1 + w). Without it: the conditional model", NumFlag::Real, -1e6, 1e6},
      {"flow-eta", "discrete-flow processes: Campbell et al.'s stochasticity eta at sampling (every eta generates the "
       "same path)", NumFlag::Real, 0, 1e6, false, false, "the process's own eta"},
      {"resample", "conditioning: RePaint rounds per step (Lugmayr et al. 2022): re-noise x_s to x_t and redo the step",
       NumFlag::Int64, 0, 1e6, false, false, "the replacement method alone", "0"},
      {"threads", "intra-op threads", NumFlag::Int, 0, 1 << 16, false, false, "$GSDIFF_THREADS when set, else all cores", "0"}};
  for (auto& f : sampling_num_flags()) nums.push_back(std::move(f));
  add_conv_algorithm_flag(o);
  add_num_flags(o, nums);
  return parse_checked(o, argc, argv, nums);
}

// `gsdiff sample --model`: the export alone (issue #7).
int sample_from_export(const cxxopts::ParseResult& args) {
  set_threads(args["threads"].as<int>());
  if (args["conv-algorithm"].as<std::string>() != "direct")
    throw UsageError("--conv-algorithm: applies to --checkpoint; an export (--model) runs TorchScript's convolutions");
  SamplerOptions so = sampler_options(args);
  so.device = parse_device(args["device"].as<std::string>());
  sample_export_to_file(args["model"].as<std::string>(), args["sampler"].as<std::string>(), so,
                        args.count("num") ? args["num"].as<int64_t>() : 64, args.count("steps") ? args["steps"].as<int64_t>() : 0,
                        args["grid"].as<std::string>(), args.count("seed") ? args["seed"].as<uint64_t>() : 0, args["out"].as<std::string>(),
                        [&args](const Process& p, const std::vector<int64_t>& shape) {
                          check_sampling_flags(args, p, shape);
                          return condition_hook(args, p, export_data_spec(p, shape));
                        },
                        {filter_from_flags(args), blocks_from_flags(args), flow_eta_flag(args)});
  std::cerr << "wrote " << args["out"].as<std::string>() << "\n";
  return 0;
}

// --class, --guidance and --classifier against what the checkpoint's model and process are.
void check_guidance_flags(const cxxopts::ParseResult& args, const Restored& r, bool classifier) {
  const bool conditional = args.count("class") > 0, guided = args.count("guidance") > 0;
  if (classifier && r.process->space() != Space::Discrete)
    throw std::invalid_argument("--classifier: classifier-based guidance here is D-CBG, for discrete processes");
  if ((conditional || guided) && !classifier && r.model->num_classes() == 0)
    throw std::invalid_argument("--class / --guidance: the checkpoint's model is not class-conditional (model.num_classes = 0)");
  if (guided && !conditional) throw std::invalid_argument("--guidance needs --class (the class to guide towards)");
  if (args.count("classifier-approx") && !classifier)
    throw std::invalid_argument("--classifier-approx: applies to D-CBG, needs --classifier");
  if (conditional && args.count("low-noise-checkpoint"))
    throw std::invalid_argument("--class with --low-noise-checkpoint is not supported: guide one model at a time");
}

// `gsdiff sample --checkpoint`: the plain ancestral path, or (any other sampler, grid, guidance, conditioning, expert
// switching, sampling flag) through a DenoiseFn.
int sample_from_checkpoint(const cxxopts::ParseResult& args, bool condition) {
  make_sampler(args["sampler"].as<std::string>());  // unknown names fail here, listing the known ones
  sampler_options(args);  // a method flag for another sampler (--eta, --remask, ...) fails here, on every path
  set_threads(args["threads"].as<int>());
  apply_conv_algorithm_flag(args);
  register_builtins();
  if (args.count("plugin"))
    for (const auto& p : args["plugin"].as<std::vector<std::string>>()) load_plugin(p);
  SampleRequest req;
  req.device = parse_device(args["device"].as<std::string>());
  auto r = restore_for_inference(args["checkpoint"].as<std::string>(), !args.count("no-ema"), req.device);
  r.process = with_flow_eta(std::move(r.process), flow_eta_flag(args));
  req.num = args.count("num") ? args["num"].as<int64_t>() : r.config.sample.num();
  req.steps = args.count("steps") ? args["steps"].as<int64_t>() : r.config.sample.steps();
  req.seed = args.count("seed") ? args["seed"].as<uint64_t>() : r.config.sample.seed();
  req.progress = true;
  req.print_stats = true;
  const bool conditional = args.count("class") > 0, classifier = args.count("classifier") > 0;
  check_guidance_flags(args, r, classifier);
  if (args["sampler"].as<std::string>() != "ancestral" || args.count("low-noise-checkpoint") || conditional || classifier ||
      condition || has_sampling_flags(args) || args["grid"].as<std::string>() != "uniform") {  // issue #7, #15, #16
    sample_checkpoint_with_fn(args, r, req);
    std::cerr << "wrote " << args["out"].as<std::string>() << " (" << req.num << " samples, " << args["sampler"].as<std::string>() << ")\n";
    return 0;
  }
  sample_to_file(r.config, *r.process, r.model, req, args["out"].as<std::string>());
  std::cerr << "wrote " << args["out"].as<std::string>() << " (" << req.num << " samples, step " << r.step
            << (r.used_ema ? ", EMA" : "") << ")\n";
  return 0;
}

}  // namespace

int cmd_sample(int argc, char** argv) {
  cxxopts::Options o(argv[0], "Sample from a checkpoint: PNG grid (images) or one line per sample (text).");
  auto args = parse_sample_flags(o, argc, argv);
  if (args.count("help")) {
    std::cout << o.help() << "\n";
    return 0;
  }
  check_input_files(args, {"checkpoint", "model", "low-noise-checkpoint", "classifier", "plugin", "inpaint", "known"});
  if (const auto g = args["grid"].as<std::string>(); g != "uniform" && g != "quadratic" && g != "karras")
    throw UsageError("--grid: expected uniform, quadratic or karras, got '" + g + "'");
  const bool condition = has_condition_flags(args);
  if (args["resample"].as<int64_t>() > 0 && !condition)
    throw UsageError("--resample needs --prompt, --suffix, --infill or --inpaint/--known (it resamples a conditioned chain)");
  if (args.count("model") && args.count("out")) return sample_from_export(args);
  if (!args.count("checkpoint") || !args.count("out"))
    throw UsageError("--checkpoint and --out are required (or --model and --out)");
  return sample_from_checkpoint(args, condition);
}

}  // namespace gsdiff::cli
