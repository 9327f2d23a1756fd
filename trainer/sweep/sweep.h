// Ablation sweeps from one YAML file (docs/sweeps.md): a base run config, keys set for every run,
// and axes over any config key, grid (cartesian) or zip (paired), expanded into run directories
// that each hold a resolved config.yaml.
//
//   name: init                          # default: the file's stem
//   base: ../demo.yaml                  # a run config, relative to this file (or `config:` inline)
//   set: {train.steps: 150}             # every run
//   before: [base.yaml]                 # sweeps that must finish first (`--launch local` runs
//   them) convert: {from: runs/sweeps/base/base, init: stepwise, lora_init: svd} grid: # cartesian
//   product, first axis outermost
//     convert.init: [stepwise, average, lower]
//   zip:                                # one axis whose keys move together (or a list of groups)
//     label: [recursive, relaxed]       # optional names of its positions
//     lora.rank: [0, 8]
//
// Run names join one segment per axis with '_': "<last part of the key>-<value>" for a grid
// axis (`init-stepwise`), the label (or the keys' segments) for a zip group; characters outside
// [A-Za-z0-9.+-] become '-'. A sweep without axes has one run named after the sweep.
// The `convert` section (keys convert.from, convert.init, convert.lora_init, convert.seed, which
// axes may sweep too) starts each run from a recursive/relaxed model converted from a plain one
// (model/convert.h) into <run>/init.h5 (shared between runs whose conversions are equal); loops,
// sharing, per-loop norms and LoRA ranks come from the run's own config.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "config/run_config.h"

namespace rrt {

// convert.* of one run: how its starting weights are made (model/convert.h).
struct ConvertStep {
  std::string from;               // run directory (its final checkpoint), .h5, HF directory, .gguf
  std::string init = "stepwise";  // stepwise, average, lower, upper, random
  std::string lora_init = "svd";  // svd, zero
  uint64_t seed = 1;              // random init and the A of zero-initialised LoRA
};

struct SweepRun {
  std::string name;
  std::string dir;  // <sweep out>/<name>
  // The swept keys and the values of this run (override text), in axis order.
  std::vector<std::pair<std::string, std::string>> values;
  RunConfig config;                    // resolved and validated; train.run_dir = dir
  std::optional<ConvertStep> convert;  // set: train.init_from = dir/init.h5, made before training
};

struct Sweep {
  std::string file;  // the sweep file as given
  std::string name;
  std::string out_dir;                  // where the run directories go
  std::vector<std::string> before;      // prerequisite sweep files (paths usable from here)
  std::vector<std::string> swept_keys;  // every key an axis varies, in axis order
  std::vector<SweepRun> runs;
};

// Reads and expands a sweep file: every run's config is resolved and validated, so an unknown
// key, a bad value, an empty axis or zip lists of different lengths throw rrt::Error whose
// where() is the sweep file's line. out_dir "" means runs/sweeps/<name>. overrides (key=value)
// apply to every run after the sweep's own values; they may not set a swept key.
Sweep load_sweep(const std::string& path, const std::string& out_dir = "",
                 const std::vector<std::string>& overrides = {});
// The same from text; base paths are relative to base_dir.
Sweep parse_sweep(const std::string& yaml_text, const std::string& source,
                  const std::string& base_dir, const std::string& out_dir = "",
                  const std::vector<std::string>& overrides = {});

// "aggressive(0.1)" -> "aggressive-0.1": what a value contributes to a run name.
std::string name_segment(const std::string& text);

// The first line where two resolved configs (to_yaml) differ, each as "section.key: value";
// {"", ""} when they are equal.
std::pair<std::string, std::string> first_config_difference(const std::string& a,
                                                            const std::string& b);

// A run is finished when its final checkpoint (step train.steps) exists in its directory.
bool run_finished(const SweepRun& run);

// Writes <out>/sweep.json (the runs, their directories and swept values: what `rrt sweep
// summary` reads), <out>/runs.txt (every run directory, absolute, one a line) and each run's
// config.yaml. A run directory that already holds checkpoints must have been started with the
// same config (a changed sweep file is refused, naming the first differing line). Conversions
// are not made here (prepare_run does that).
void write_sweep(const Sweep& sweep);

// Makes <run>/init.h5 from convert.from when the run has a convert step, has not started and
// the file is not there yet. Throws when convert.from is not ready (an unfinished run) or does
// not fit the run's model. Returns true when it made init.h5. Identical conversions are made
// once: into shared_conversion_path(run), then hard-linked (copied where links fail) as each
// run's init.h5; *shared (when given) says the run reused one made before. Progress (each
// stage with its seconds) goes to stderr.
bool prepare_run(const SweepRun& run, bool* shared = nullptr);

// What decides a run's converted weights, as text: convert.from (absolute), init, lora_init,
// seed and the run's model sections; runs with equal texts share one conversion.
std::string conversion_key_text(const SweepRun& run);
// <sweep out>/_converted/<16 hex digits of the key's hash>.h5 (with a .txt of the key beside).
std::string shared_conversion_path(const SweepRun& run);

}  // namespace rrt
