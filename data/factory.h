// Datasets and loader options from a JSON config, with strict key checking.
#pragma once
#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/loader.h"

namespace gsdiff::data {

// Known dataset names: fashion-mnist, mnist, cifar10, text8, toy-gmm, toy-checkerboard, toy-markov.
std::vector<std::string> dataset_names();

// Builds a dataset from e.g.
//   {"name": "fashion-mnist", "root": "/usr/share/datasets/fashion-mnist", "split": "train"}
//   {"name": "cifar10", "root": "DIR", "split": "test"}
//   {"name": "text8", "path": "FILE", "split": "test", "seq_len": 256, "crops": "chunks",
//    "train_end": 90000000, "valid_end": 95000000}   (or "train_frac": 0.9, "valid_frac": 0.95)
//   {"name": "toy-gmm", "n": 10000, "data_seed": 0, "components": 8, "radius": 2.0, "std": 0.1}
//   {"name": "toy-checkerboard", "n": 10000, "data_seed": 0, "cells": 4}
//   {"name": "toy-markov", "n": 10000, "data_seed": 0, "seq_len": 8}
// Loader keys (batch_size, seed, shuffle, drop_last, prefetch, remainder) may sit in the same
// object. An unknown name throws std::invalid_argument listing the known names; an unknown
// key throws naming the key and the keys that dataset accepts; a wrongly typed value names it.
std::shared_ptr<Dataset> make_dataset(const nlohmann::json& cfg);

// Reads the loader keys of `cfg` (others are ignored here; make_dataset checks them).
// rank / world / device are not config: the trainer sets them from its environment.
LoaderOptions loader_options_from_json(const nlohmann::json& cfg);

}  // namespace gsdiff::data
