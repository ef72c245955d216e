// `gsdiff sample`'s conditioning flags (--prompt, --infill, --suffix, --inpaint, --known) read into a Constraint.
#pragma once
#include <cxxopts.hpp>

#include <optional>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "sample/constraint.h"

namespace gsdiff::cli {

// The placeholder of --infill: this character marks an unknown position.
constexpr char kInfillPlaceholder = '_';

// What the flags condition on: the data's kind, one example's shape ([L] text, [C, H, W] images), its number of
// categories (27 for text8, 256 for 8-bit images under a discrete process, 0 for real values) and whether the
// process takes token values (discrete processes and gaussian-embed).
struct DataSpec {
  data::DataKind kind;
  std::vector<int64_t> example_shape;
  int64_t categories;
  bool tokens;
};

// Whether any conditioning flag was given.
bool has_condition_flags(const cxxopts::ParseResult& args);

// The constraint of the flags given (nullopt: none). Every mistake is a UsageError naming the flag and what was
// expected: text flags on an image model and the reverse, text longer than the sequence, characters outside
// text8's alphabet (a-z and space), a mask or image of the wrong size or channels, --inpaint without --known.
std::optional<Constraint> constraint_from_flags(const cxxopts::ParseResult& args, const DataSpec& spec);

// text8 characters -> tokens (a..z = 0..25, space = 26); a character outside them is a UsageError naming `flag`,
// the character and its position. `placeholder` (when not 0) gives -1.
std::vector<int64_t> text8_tokens(const std::string& text, const std::string& flag, char placeholder = 0);

}  // namespace gsdiff::cli
