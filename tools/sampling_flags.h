// `gsdiff sample`'s discrete-sampling flags: ReMDM remasking and its loop, unmask order, temperature / top-p, semi-AR blocks.
#pragma once
#include <cxxopts.hpp>
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "core/process.h"
#include "sample/semi_ar.h"
#include "sample/token_filter.h"
#include "tools/flags.h"

namespace gsdiff::cli {

// The string flags (--remask, --unmask), --remask-loop, and the numeric ones with their ranges (--temperature, --top-p, --length,
// --block, --t-on, --t-off, --alpha-on; --eta is declared by cmd_sample, shared with ddim).
void add_sampling_flags(cxxopts::Options& o);
std::vector<NumFlag> sampling_num_flags();
// Whether any of them (--eta excluded) was given: they need the DenoiseFn path of `gsdiff sample`.
bool has_sampling_flags(const cxxopts::ParseResult& args);

// SamplerOptions::method of ancestral / mdlm-cached from --remask, --eta, --unmask, --remask-loop (--t-on, --t-off,
// --alpha-on) (null when none was given). UsageError naming the flag: a choice outside the list, --eta above 1 or
// without --remask cap/rescale, --remask with --unmask, --remask-loop without --remask or with --t-off >= --t-on, a
// loop number without --remask-loop, or any of them for another sampler.
nlohmann::json masked_method_from_flags(const cxxopts::ParseResult& args, const std::string& sampler);
TokenFilterOptions filter_from_flags(const cxxopts::ParseResult& args);
BlockOptions blocks_from_flags(const cxxopts::ParseResult& args);  // length 0: no blocks

// The checks that need the process and the example shape: remasking / unmask order on a non-absorbing process,
// --temperature / --top-p on a continuous one, --length / --block without each other, on a non-text model, or
// not fitting the model's sequence length. UsageError naming the flag and what is allowed.
void check_sampling_flags(const cxxopts::ParseResult& args, const Process& p, const std::vector<int64_t>& example_shape);

}  // namespace gsdiff::cli
