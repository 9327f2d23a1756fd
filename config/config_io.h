// Reading, checking and writing run configs (YAML). Every function is a loop over the field
// list of config/config_fields.h.
//
// Errors are rrt::Error whose where() says where the bad value came from:
//   "configs/tiny.yaml:12"               a line of the file (1-based)
//   "command line: optim.lr=fast"        a key=value override
//   "configs/tiny.yaml"                  a value left at its default that conflicts with another
// and whose message names the key, what is wrong and what would fix it:
//   [run.yaml:7] unknown key 'optim.lerning_rate'; did you mean 'optim.lr'?
//   [run.yaml:3] optim.lr: expected a number, got 'fast'
//   [run.yaml:5] recursion.loops: loops 3 does not divide model.n_layers 22 ...
#pragma once

#include <string>
#include <vector>

#include "config/run_config.h"

namespace rrt {

// Reads the file, applies the overrides ("optim.lr=1e-3", in order), derives
// recursion.block_layers = model.n_layers / recursion.loops and validates.
RunConfig load_run_config(const std::string& yaml_path,
                          const std::vector<std::string>& overrides = {});
// The same from YAML text; source_name stands for the file in error messages.
RunConfig parse_run_config(const std::string& yaml_text, const std::string& source_name,
                           const std::vector<std::string>& overrides = {});

// Reads the keys and derives block_layers, without the checks between fields (types and
// ranges of each key are still checked): a checkpoint's stored config, compared on resume, may
// predate a check that this rrt added.
RunConfig read_run_config_unchecked(const std::string& yaml_text, const std::string& source_name);

// Sets one key from "section.key=value" (type and range checked, block_layers re-derived).
// Checks between fields are left to validate_run_config. Errors name "command line: <arg>".
// Lists are written "lora.targets=q,v" or "lora.targets=[q, v]".
void apply_override(RunConfig& config, const std::string& key_equals_value);

// The complete resolved config, every key included; parse_run_config(to_yaml(c)) gives c back.
// This is what the trainer writes to <run_dir>/config.yaml and into each checkpoint.
std::string to_yaml(const RunConfig& config);

// Every field's rule, then the checks between fields (loops dividing n_layers, LoRA ranks,
// sequence length, ...), then validate(model). Throws rrt::Error whose where() is the key.
void validate_run_config(const RunConfig& config);

// "model.family", ..., "log.every": every key a file or an override may set.
std::vector<std::string> all_config_keys();

// The per-section key tables of docs/configs.md (markdown), generated from the field list.
std::string config_reference_markdown();

}  // namespace rrt
