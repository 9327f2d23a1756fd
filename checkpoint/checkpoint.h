// Checkpoints: one HDF5 file per save, readable with h5py.
//   /config            the resolved run config (YAML text, a string dataset)
//   /params/<name>     every registered parameter, fp32, registry shape
//   /optim/m/<name>, /optim/v/<name>   AdamW moments (absent in weights-only files)
//   /state             attributes: step, adam_step, data_epoch, data_index, tokens_seen,
//                      format ("rrt-checkpoint"), format_version, checksum ("crc32"),
//                      world_size, mixture_counts (a run on data.sources only: sequences drawn
//                      per source, data/mixture.h's cursor), state_crc32 (of step ..
//                      tokens_seen, world_size and mixture_counts, int64 little-endian),
//                      launch_dir (the writer's working directory, which the config's
//                      relative paths are relative to: checkpoint/checkpoint_config.h)
//   every dataset      attribute crc32: CRC-32 of its values (checkpoint/checkpoint_verify.h)
// Writes go to "<path>.tmp.<pid>.<n>" (core/durable_file.h), are flushed and closed, then renamed
// over <path>: a crash or a full disk during the write leaves the previous checkpoint untouched.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "config/run_config.h"
#include "model/optimizer.h"
#include "model/parameters.h"

namespace rrt {

struct TrainState {
  int64_t step = 0;  // optimizer steps completed
  int64_t adam_step = 0;
  int64_t data_epoch = 0;  // train loader cursor
  int64_t data_index = 0;
  int64_t tokens_seen = 0;
  // Ranks that trained it: resume compares the global batch (micro_batch x ranks), not the
  // per-rank one. 0: unknown (files written before rrt recorded it, weights-only conversions).
  int64_t world_size = 0;
};

// optimizer may be null (weights only). mixture_counts: the mixture loader's cursor (empty for
// a run on data.path).
void save_checkpoint(const std::string& path, const std::string& config_yaml,
                     const ParameterSet& params, AdamW* optimizer, const TrainState& state,
                     const std::vector<int64_t>& mixture_counts = {});

struct CheckpointContents {
  std::string config_yaml;
  TrainState state;
  std::vector<int64_t> mixture_counts;  // empty unless the run trained on data.sources
  bool has_optimizer = false;
  // The file declares checksums (every dataset and the state carry one). Files written before
  // rrt verified checkpoints do not; they load with a warning on stderr.
  bool verified = false;
  // The working directory of the process that wrote the file (absolute); "" for files written
  // before rrt recorded it. Read the config through checkpoint_run_config
  // (checkpoint/checkpoint_config.h), which resolves relative paths against it.
  std::string launch_dir;
};

// Reads the config and state only (cheap); their checksums are verified.
CheckpointContents read_checkpoint_header(const std::string& path);
// Loads parameters (and the optimizer's moments when optimizer is non-null and the file has
// them). Every registered parameter must be present with its shape. Each dataset is read through
// HDF5's type conversion (any layout, compression filter HDF5 has, float width or byte order)
// and verified against its checksum: a damaged file throws CheckpointCorrupt
// (checkpoint/checkpoint_verify.h) naming the file and the dataset.
CheckpointContents load_checkpoint(const std::string& path, ParameterSet& params, AdamW* optimizer);

// The model a checkpoint holds: the run config stored inside it (its model sections describe
// the model) and the weights, values only (e.g. `rrt convert --from run/step_00000300.h5`).
struct CheckpointModel {
  RunConfig config;
  std::unique_ptr<ParameterSet> params;
  TrainState state;
};
CheckpointModel load_checkpoint_model(const std::string& path);

// "<dir>/step_00001234.h5"
std::string checkpoint_path(const std::string& dir, int64_t step);
// Checkpoint files in dir, oldest first (by step). Pruning: trainer/retention.h.
std::vector<std::string> list_checkpoints(const std::string& dir);

}  // namespace rrt
