// The run config stored in a checkpoint, read for use from any working directory.
//
// A run config's paths (data.path, data.sources, data.tokenizer, train.init_from,
// distill.teacher) may be relative: relative to the directory `rrt train` was launched from,
// which `rrt sweep` sets to the sweep's directory. Read from elsewhere (`rrt generate
// runs/sweep/arm/step.h5` from the repository root) they named nothing. Every checkpoint
// records that directory (/state attribute launch_dir, checkpoint/checkpoint.h); commands that
// read a checkpoint's config take a relative path from there when it names nothing from here.
#pragma once

#include <string>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "config/run_config.h"

namespace rrt {

// The config text with each relative path that does not exist from the current directory but
// does from `launch_dir` made absolute (launch_dir / path). Paths that exist from here, absolute
// paths, "byte" and paths found nowhere are kept as written (the reader that opens them says
// what is missing). An empty launch_dir (files written before rrt recorded it, HF and GGUF
// sources) returns the text unchanged.
std::string resolve_launch_relative_paths(const std::string& config_yaml,
                                          const std::string& launch_dir);

// parse_run_config of the header's config, its paths resolved as above before `overrides`
// (relative to this directory, as the user wrote them) apply. `where` names the file in errors.
RunConfig checkpoint_run_config(const CheckpointContents& header, const std::string& where,
                                const std::vector<std::string>& overrides = {});

}  // namespace rrt
