// Reads --prompt / --infill / --suffix (text8 models) and --inpaint / --known (image models) into a Constraint.
#include "tools/condition_flags.h"

#include "core/decoder.h"
#include "sample/writers.h"
#include "tools/flags.h"

namespace gsdiff::cli {

namespace {

const std::vector<std::string> kTextFlags = {"prompt", "infill", "suffix"}, kImageFlags = {"inpaint", "known"};

bool any_of(const cxxopts::ParseResult& args, const std::vector<std::string>& flags) {
  for (const auto& f : flags)
    if (args.count(f)) return true;
  return false;
}

std::string given(const cxxopts::ParseResult& args, const std::vector<std::string>& flags) {
  std::string s;
  for (const auto& f : flags)
    if (args.count(f)) s += (s.empty() ? "--" : "/--") + f;
  return s;
}

std::string kind_name(const DataSpec& d) {
  return d.kind == data::DataKind::Image ? "images" : d.kind == data::DataKind::Tokens ? "tokens" : "real vectors";
}

// Text: the known tokens at their positions of [L].
Constraint text_constraint(const cxxopts::ParseResult& args, int64_t L) {
  auto known = torch::zeros({L}, torch::kBool), values = torch::zeros({L}, torch::kLong);
  auto put = [&](const std::vector<int64_t>& tok, int64_t at) {
    for (size_t i = 0; i < tok.size(); ++i)
      if (tok[i] >= 0) known[at + int64_t(i)] = true, values[at + int64_t(i)] = tok[i];
  };
  auto fits = [&](const std::string& flag, size_t n, const std::string& what) {
    if (int64_t(n) > L)
      throw UsageError(flag + ": expected at most " + std::to_string(L) + " characters" + what +
                       " (the model's sequence length), got " + std::to_string(n));
  };
  if (args.count("infill")) {
    if (args.count("prompt") || args.count("suffix"))
      throw UsageError("--infill: give the whole pattern alone, not with --prompt or --suffix");
    const auto pat = args["infill"].as<std::string>();
    fits("--infill", pat.size(), "");
    put(text8_tokens(pat, "--infill", kInfillPlaceholder), 0);
    return {known, values};
  }
  const auto pre = args.count("prompt") ? args["prompt"].as<std::string>() : "";
  const auto suf = args.count("suffix") ? args["suffix"].as<std::string>() : "";
  fits("--prompt", pre.size(), "");
  fits("--suffix", suf.size(), "");
  fits("--prompt and --suffix", pre.size() + suf.size(), " together");
  put(text8_tokens(pre, "--prompt"), 0);
  put(text8_tokens(suf, "--suffix"), L - int64_t(suf.size()));
  return {known, values};
}

std::string png_desc(const torch::Tensor& img) {
  return std::to_string(img.size(1)) + "x" + std::to_string(img.size(2)) + (img.size(0) == 1 ? " grey" : " RGB");
}

// Images: white mask pixels (>= 128 in any channel) are inpainted, the others keep --known's values.
Constraint image_constraint(const cxxopts::ParseResult& args, const DataSpec& d) {
  if (!args.count("inpaint")) throw UsageError("--known needs --inpaint MASK.png (which pixels to generate)");
  if (!args.count("known")) throw UsageError("--inpaint needs --known IMAGE.png (the pixels to keep)");
  const int64_t C = d.example_shape[0], H = d.example_shape[1], W = d.example_shape[2];
  const std::string size = std::to_string(H) + "x" + std::to_string(W);
  auto mask = read_png(args["inpaint"].as<std::string>());  // uint8 [c, h, w]
  if (mask.size(1) != H || mask.size(2) != W)
    throw UsageError("--inpaint: expected a " + size + " PNG (the model's image size), got " + png_desc(mask));
  auto img = read_png(args["known"].as<std::string>());
  if (img.size(0) != C || img.size(1) != H || img.size(2) != W)
    throw UsageError("--known: expected a " + size + (C == 1 ? " grey" : " RGB") + " PNG (the model's images), got " +
                     png_desc(img));
  auto hole = std::get<0>(mask.max(0)) >= 128;                      // [H, W]
  auto known = hole.logical_not().unsqueeze(0).expand({C, H, W}).contiguous();  // [C, H, W]
  auto values = d.tokens ? img.to(torch::kLong) : levels_to_unit(img).to(torch::kFloat64);  // DESIGN §4: v / 127.5 - 1
  return {known, values};
}

}  // namespace

std::vector<int64_t> text8_tokens(const std::string& text, const std::string& flag, char placeholder) {
  std::vector<int64_t> tok;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c >= 'a' && c <= 'z') {
      tok.push_back(c - 'a');
    } else if (c == ' ') {
      tok.push_back(26);
    } else if (placeholder && c == placeholder) {
      tok.push_back(-1);
    } else {
      throw UsageError(flag + ": character '" + std::string(1, c) + "' at position " + std::to_string(i) +
                       " is outside the text8 alphabet (a-z and space" +
                       (placeholder ? std::string(", '") + placeholder + "' for unknown" : std::string()) + ")");
    }
  }
  return tok;
}

bool has_condition_flags(const cxxopts::ParseResult& args) {
  return any_of(args, kTextFlags) || any_of(args, kImageFlags);
}

std::optional<Constraint> constraint_from_flags(const cxxopts::ParseResult& args, const DataSpec& d) {
  const bool text = any_of(args, kTextFlags), image = any_of(args, kImageFlags);
  if (!text && !image) return std::nullopt;
  if (text && image) throw UsageError(given(args, kTextFlags) + " and " + given(args, kImageFlags) + ": text and image flags together");
  if (text && !(d.kind == data::DataKind::Tokens && d.categories == 27 && d.example_shape.size() == 1))
    throw UsageError(given(args, kTextFlags) + ": expected a text model (text8 characters); this checkpoint's data is " +
                     kind_name(d) + " (use --inpaint/--known for images)");
  if (image && !(d.kind == data::DataKind::Image && d.example_shape.size() == 3))
    throw UsageError(given(args, kImageFlags) + ": expected an image model; this checkpoint's data is " + kind_name(d) +
                     (d.kind == data::DataKind::Tokens ? " (use --prompt, --infill or --suffix for text)" : ""));
  return text ? text_constraint(args, d.example_shape[0]) : image_constraint(args, d);
}

}  // namespace gsdiff::cli
