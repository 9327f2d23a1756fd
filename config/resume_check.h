// Resume consistency (docs/runs.md, "Resume consistency"): a resume continues the run that wrote
// the checkpoint bit for bit only when the model, the objective, the data order and the schedule
// are the same. check_resume_config compares the checkpoint's stored config with the one the run
// was started with and refuses, naming every differing key with both values, unless the keys
// are listed in checkpoint.allow_config_change. check_data_tokenizer refuses shards written by a
// tokenizer other than the run's data.tokenizer.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "config/run_config.h"

namespace rrt {

// Whether changing `key` ("optim.lr") between the checkpoint and the resume breaks a bit-exact
// continuation. `now` matters for train.steps (it moves every step's learning rate unless the
// schedule is constant).
bool breaks_bit_exact_resume(const std::string& key, const RunConfig& stored, const RunConfig& now);

// A key whose value differs between two configs, its values as the config prints them.
struct ConfigDifference {
  std::string key, was, is;
};

// Every printed key whose value differs from `was` to `is`, in the config's order.
std::vector<ConfigDifference> config_differences(const RunConfig& was, const RunConfig& is);

// The differences from `stored` (trained on stored_world ranks) to `now` (now_world) that break
// a bit-exact resume and that now.checkpoint.allow_config_change does not allow ("all": none).
// train.micro_batch counts as the global batch, micro_batch x ranks, and is skipped when
// stored_world is unknown (<= 0); its values say "(global: ...)" when the world sizes differ.
std::vector<ConfigDifference> resume_breaking_differences(const RunConfig& stored,
                                                          int64_t stored_world,
                                                          const RunConfig& now, int64_t now_world);

// "" when every item of checkpoint.allow_config_change is "all", a section ("optim") or a key
// ("optim.lr"), else what is wrong (the rule of the config field).
std::string check_allow_config_change(const std::vector<std::string>& items);

// Throws rrt::Error (where "resume") naming the differing keys when `stored_yaml` (the
// checkpoint's /config) differs from `now` in keys that break a bit-exact resume and that
// now.checkpoint.allow_config_change does not allow. train.micro_batch is compared as the
// global batch, micro_batch x ranks (a checkpoint resumes on any world size), and only when the
// checkpoint records its world size (stored_world > 0).
void check_resume_config(const RunConfig& now, int64_t now_world, const std::string& stored_yaml,
                         int64_t stored_world, const std::string& checkpoint);

// Throws when the shards at now.data.path were written by a tokenizer (shards_tokenizer, the
// name stored in every shard) other than the one now.data.tokenizer names.
void check_data_tokenizer(const RunConfig& now, const std::string& shards_tokenizer);

// Throws when the shards' vocabulary (shards_vocab ids, written by shards_tokenizer) does not
// fit the model: ids the embedding lacks (more than model.vocab), or a model with more than
// twice the rows the data can ever use, the sign of data tokenised with another tokenizer than
// the model's (byte shards under a converted 49,152-token model). `what` names the command.
void check_data_vocabulary(const RunConfig& now, const std::string& shards_tokenizer,
                           int64_t shards_vocab, const std::string& what);

}  // namespace rrt
