#include "config/resume_check.h"

#include <algorithm>

#include "config/config_fields.h"
#include "config/config_io.h"
#include "core/error.h"
#include "data/tokenizer.h"

namespace rrt {

namespace {

// Sections whose every key shapes the model, the objective or the update.
constexpr const char* kWholeSections[] = {"model",      "recursion", "lora",
                                          "early_exit", "distill",   "optim"};
// Single keys elsewhere: the data order, the batch shape and what a batch's tokens attend to.
constexpr const char* kKeys[] = {"data.path",         "data.sources",  "data.tokenizer",
                                 "data.val_fraction", "data.seed",     "train.micro_batch",
                                 "train.grad_accum",  "train.seq_len", "train.steps",
                                 "data.document_mask"};

std::string section_of(const std::string& key) { return key.substr(0, key.find('.')); }

bool is_checked_key(const std::string& key) {
  const std::string section = section_of(key);
  for (const char* s : kWholeSections)
    if (section == s) return true;
  for (const char* k : kKeys)
    if (key == k) return true;
  return false;
}

bool allowed(const std::vector<std::string>& allow, const std::string& key) {
  for (const std::string& item : allow)
    if (item == "all" || item == key || item == section_of(key)) return true;
  return false;
}

// What the run reads, for messages: data.path, or the mixture's sources.
std::string data_named(const RunConfig& now) {
  if (now.data.sources.empty()) return now.data.path;
  std::string paths;
  for (const MixtureSource& s : now.data.sources) paths += (paths.empty() ? "" : ", ") + s.path;
  return "data.sources (" + paths + ")";
}

}  // namespace

bool breaks_bit_exact_resume(const std::string& key, const RunConfig& stored,
                             const RunConfig& now) {
  if (key == "train.steps")  // the schedule's length: every later learning rate moves
    return stored.optim.schedule != "constant" || now.optim.schedule != "constant";
  return is_checked_key(key);
}

std::string check_allow_config_change(const std::vector<std::string>& items) {
  RunConfig config;
  const std::vector<Field> fields = config_fields(config);
  for (size_t i = 0; i < items.size(); ++i) {
    const std::string& item = items[i];
    if (std::find(items.begin(), items.begin() + i, item) != items.begin() + i)
      return "item '" + item + "' appears twice";
    if (item == "all") continue;
    const bool known = std::any_of(fields.begin(), fields.end(), [&](const Field& f) {
      return f.key() == item || f.section == item;
    });
    if (!known) return "unknown item '" + item + "'; items are all, a section or a key";
    if (!is_checked_key(item) &&
        std::none_of(std::begin(kWholeSections), std::end(kWholeSections),
                     [&](const char* s) { return item == s; }) &&
        item != "data" && item != "train")
      return "'" + item + "' may change on resume anyway; list only keys that resume checks";
  }
  return "";
}

std::vector<ConfigDifference> config_differences(const RunConfig& was, const RunConfig& is) {
  RunConfig a = was, b = is;  // config_fields binds to non-const configs
  const std::vector<Field> fa = config_fields(a), fb = config_fields(b);
  std::vector<ConfigDifference> out;
  for (size_t i = 0; i < fb.size(); ++i) {
    if (fb[i].role != FieldRole::normal) continue;
    std::string x = format_value(fa[i].get()), y = format_value(fb[i].get());
    if (x != y) out.push_back({fb[i].key(), std::move(x), std::move(y)});
  }
  return out;
}

std::vector<ConfigDifference> resume_breaking_differences(const RunConfig& stored,
                                                          int64_t stored_world,
                                                          const RunConfig& now, int64_t now_world) {
  const std::vector<std::string>& allow = now.checkpoint.allow_config_change;
  std::vector<ConfigDifference> out;
  if (std::find(allow.begin(), allow.end(), "all") != allow.end()) return out;
  for (ConfigDifference& d : config_differences(stored, now)) {
    if (d.key == "train.micro_batch") continue;  // below: as the global batch
    if (breaks_bit_exact_resume(d.key, stored, now) && !allowed(allow, d.key))
      out.push_back(std::move(d));
  }
  // The global batch, micro_batch x ranks: a checkpoint resumes on any world size, and the same
  // per-rank batch on another number of ranks is another batch.
  const int64_t was = stored.train.micro_batch * stored_world;
  const int64_t is = now.train.micro_batch * now_world;
  if (stored_world > 0 && was != is && !allowed(allow, "train.micro_batch")) {
    ConfigDifference d{"train.micro_batch", std::to_string(stored.train.micro_batch),
                       std::to_string(now.train.micro_batch)};
    if (stored_world != now_world) {
      d.was = std::to_string(was) + " (global: " + d.was + " x " + std::to_string(stored_world) +
              " ranks)";
      d.is =
          std::to_string(is) + " (global: " + d.is + " x " + std::to_string(now_world) + " ranks)";
    }
    out.push_back(std::move(d));
  }
  return out;
}

void check_resume_config(const RunConfig& now, int64_t now_world, const std::string& stored_yaml,
                         int64_t stored_world, const std::string& checkpoint) {
  const std::vector<std::string>& allow = now.checkpoint.allow_config_change;
  if (std::find(allow.begin(), allow.end(), "all") != allow.end()) return;
  RunConfig stored;
  try {
    stored = read_run_config_unchecked(stored_yaml, checkpoint + " (/config)");
  } catch (const Error& e) {
    RRT_FAIL("resume", "cannot compare the run config with the one stored in ", checkpoint, ": ",
             e.what(),
             ". Set checkpoint.allow_config_change=all to resume without the comparison.");
  }
  std::string differences;
  std::vector<std::string> keys;
  for (const ConfigDifference& d :
       resume_breaking_differences(stored, stored_world, now, now_world)) {
    differences += "\n  " + d.key + ": " + d.was + " in the checkpoint, " + d.is + " now";
    keys.push_back(d.key);
  }
  if (keys.empty()) return;
  std::string list;
  for (size_t i = 0; i < keys.size(); ++i) list += (i ? "," : "") + keys[i];
  RRT_FAIL("resume", "the run config differs from the one ", checkpoint,
           " was trained with, in keys that change the model, the data order or the schedule, "
           "so the resumed run would not continue the same run:",
           differences,
           "\nRestore these values, start a new run in another train.run_dir, or, if the change "
           "is intended, allow it with checkpoint.allow_config_change=[",
           list, "] (docs/runs.md, \"After a refused resume\").");
}

void check_data_tokenizer(const RunConfig& now, const std::string& shards_tokenizer) {
  const std::string expected = tokenizer_name_for(now.data.tokenizer);
  RRT_CHECK(shards_tokenizer == expected, "data.tokenizer", "the shards at ", data_named(now),
            " were written with tokenizer '", shards_tokenizer, "', but the run's data.tokenizer (",
            now.data.tokenizer, ") is '", expected,
            "'; set data.tokenizer to the tokenizer the shards were prepared with, or prepare "
            "the data again with `rrt prepare --tokenizer ",
            now.data.tokenizer, "`");
}

void check_data_vocabulary(const RunConfig& now, const std::string& shards_tokenizer,
                           int64_t shards_vocab, const std::string& what) {
  const int64_t model_vocab = now.model.model.vocab;
  RRT_CHECK(shards_vocab <= model_vocab, "model.vocab", what, ": the data at ", data_named(now),
            " uses a vocabulary of ", shards_vocab, " tokens (tokenizer '", shards_tokenizer,
            "') but the model has only ", model_vocab,
            "; prepare the data with the model's own tokenizer");
  RRT_CHECK(shards_vocab * 2 >= model_vocab, "data.tokenizer", what, ": the data at ",
            data_named(now), " uses a vocabulary of ", shards_vocab, " tokens (tokenizer '",
            shards_tokenizer, "'), less than half of the model's ", model_vocab,
            ": it was not tokenised with the model's tokenizer. Prepare it with that tokenizer "
            "(`rrt prepare --tokenizer <the model's tokenizer.json, tokenizer.model or .gguf>`) "
            "and set data.tokenizer to it (docs/data.md)");
}

}  // namespace rrt
