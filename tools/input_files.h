// Checks of the command line's file arguments and eval options: one clear error naming the flag and path.
#pragma once
#include <cxxopts.hpp>

#include <initializer_list>
#include <string>

#include "train/config.h"

namespace gsdiff::cli {

// Throws std::invalid_argument "--FLAG 'PATH': <why>" when PATH is missing, a directory or unreadable.
void require_input_file(const std::string& flag, const std::string& path);
// require_input_file for each of `flags` that was given (repeatable string-list flags included).
void check_input_files(const cxxopts::ParseResult& args, std::initializer_list<const char*> flags);
// The eval options' ranges, named by their flags (--time-samples, --quadrature-tol, ...).
void check_eval_options(const EvalOptions& e);

}  // namespace gsdiff::cli
