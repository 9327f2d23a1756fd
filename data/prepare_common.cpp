#include "data/prepare_common.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "core/error.h"
#include "data/prepare_state.h"
#include "data/shard_set.h"
#include "data/tokenizer.h"

namespace rrt {

namespace fs = std::filesystem;

std::string prepare_shard_name(int64_t index) {
  char name[32];
  std::snprintf(name, sizeof(name), "shard_%05lld.h5", static_cast<long long>(index));
  return name;
}

bool is_prepare_shard_name(const std::string& name) {
  return name.size() > 9 && name.rfind("shard_", 0) == 0 &&
         name.compare(name.size() - 3, 3, ".h5") == 0;
}

bool is_prepare_temporary(const std::string& name) {
  return name.find(".tmp") != std::string::npos;
}

PrepareOutput scan_prepare_output(const std::string& out_dir) {
  RRT_CHECK(!out_dir.empty(), "prepare", "no output directory; give one (--out DIR)");
  std::error_code error;
  fs::create_directories(out_dir, error);
  RRT_CHECK(!error && fs::is_directory(out_dir), out_dir,
            "cannot create the output directory: ", error ? error.message() : "not a directory");
  PrepareOutput output;
  for (const auto& entry : fs::directory_iterator(out_dir, error)) {
    const std::string name = entry.path().filename().string();
    if (is_prepare_temporary(name) &&
        (name.rfind("shard_", 0) == 0 || name.rfind(kPrepareState, 0) == 0))
      output.temporaries.push_back(name);
    else if (is_prepare_shard_name(name))
      output.shards.push_back(name);
  }
  RRT_CHECK(!error, out_dir, "cannot list the output directory: ", error.message());
  std::sort(output.shards.begin(), output.shards.end());
  output.unfinished = fs::exists(fs::path(out_dir) / kShardSetIncomplete, error);
  if (!output.unfinished) {
    RRT_CHECK(output.shards.empty(), out_dir, "already holds ", output.shards.size(),
              " token shard(s) (", output.shards.empty() ? "" : output.shards.front(),
              ", ...); remove them or choose an empty output directory");
    fs::remove(fs::path(out_dir) / kPrepareState, error);  // left by a finished preparation
  }
  return output;
}

void refuse_other_preparation(const std::string& out_dir, const nlohmann::ordered_json& recorded,
                              const nlohmann::ordered_json& now) {
  const std::string difference = fingerprint_difference(recorded, now);
  RRT_CHECK(difference.empty(), out_dir,
            "holds an unfinished preparation of other inputs or options (", difference,
            "); rerun it with the same ones to resume, or delete the directory (rm -r ", out_dir,
            ") to start again");
}

namespace {

// Files under the output directory are outputs (shards, the manifest), never inputs.
void drop_outputs(InputList& list, const std::string& out_dir) {
  std::error_code error;
  const fs::path out = fs::weakly_canonical(out_dir, error);
  if (error) return;
  std::vector<InputFile> kept;
  for (InputFile& file : list.files) {
    const fs::path path = fs::weakly_canonical(file.path, error);
    const auto mismatch = std::mismatch(out.begin(), out.end(), path.begin(), path.end());
    if (!error && mismatch.first == out.end())
      list.skipped.push_back({file.path, "inside the output directory"});
    else
      kept.push_back(std::move(file));
  }
  list.files = std::move(kept);
}

}  // namespace

InputList collect_prepare_inputs(const PrepareOptions& options) {
  RRT_CHECK(!options.inputs.empty(), "prepare",
            "no inputs; give text, .jsonl, .jsonl.zst, .jsonl.gz or .parquet files, or "
            "directories of them");
  RRT_CHECK(options.shard_tokens >= 1, "prepare", "shard_tokens must be positive, got ",
            options.shard_tokens);
  RRT_CHECK(!options.text_field.empty(), "prepare", "the text field must not be empty");
  RRT_CHECK(options.threads >= 0, "prepare", "threads must be >= 0 (0: all), got ",
            options.threads);
  InputList list = collect_inputs(options.inputs);
  if (!options.out_dir.empty()) drop_outputs(list, options.out_dir);
  for (const std::string& line : list.skipped_report())
    std::fprintf(stderr, "[prepare] %s\n", line.c_str());
  RRT_CHECK(!list.files.empty(), options.inputs.front(),
            "no input files found; directories contribute every text, .jsonl, .zst, .gz and "
            ".parquet file under them",
            list.skipped.empty() ? "" : " (see what was skipped above)");
  return list;
}

int prepare_threads(const PrepareOptions& options) {
  return options.threads > 0 ? options.threads
                             : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
}

bool admit_prepared_item(const PrepareOptions& options, const Tokenizer& tokenizer,
                         const InputFile& file, const RawItem& item, const ItemResult& result,
                         std::map<std::string, int64_t>& skipped,
                         std::vector<std::string>& examples) {
  if (result.status == ItemStatus::blank) return false;
  if (result.status == ItemStatus::bad) {
    const std::string where = item_location(file, item.item);
    RRT_CHECK(options.skip_bad, where, result.message,
              "; fix the input, or pass --skip-bad to skip and count such documents");
    skipped[result.bad_class] += 1;
    if (examples.size() < kPrepareSkipExamples) examples.push_back(where + ": " + result.bad_class);
    return false;
  }
  const int64_t vocab = tokenizer.vocab_size();
  for (int32_t id : result.ids)
    RRT_CHECK(id >= 0 && id < vocab, item_location(file, item.item), "tokenizer ", tokenizer.name(),
              " produced id ", id, " outside its vocabulary [0, ", vocab, ")");
  return true;
}

nlohmann::ordered_json prepare_input_record(const InputFile& file, const FinishedFile& done) {
  char crc[16];
  std::snprintf(crc, sizeof(crc), "%08x", done.crc32);
  return {{"path", file.path},
          {"format", file.description()},
          {"bytes", done.bytes},
          {"crc32", crc},
          {"text_bytes", done.text_bytes}};
}

nlohmann::ordered_json prepare_manifest_extra(const PrepareOptions& options, int64_t text_bytes,
                                              const nlohmann::ordered_json& inputs,
                                              const std::vector<SkippedFile>& skipped_files,
                                              const std::map<std::string, int64_t>& skipped,
                                              const std::vector<std::string>& examples) {
  nlohmann::ordered_json extra;
  extra["text_field"] = options.text_field;
  extra["text_bytes"] = text_bytes;
  extra["inputs"] = inputs;
  nlohmann::ordered_json skipped_files_json = nlohmann::ordered_json::array();
  for (const SkippedFile& s : skipped_files)
    skipped_files_json.push_back({{"path", s.path}, {"reason", s.reason}});
  extra["skipped_files"] = skipped_files_json;
  extra["skipped_documents"] = skipped;
  extra["skipped_examples"] = examples;
  return extra;
}

PrepareProgress::PrepareProgress(bool enabled, int64_t total_bytes, int threads, std::string label)
    : enabled_(enabled),
      total_(total_bytes),
      threads_(threads),
      label_(std::move(label)),
      interval_(progress_interval(5)) {}

void PrepareProgress::start(const PrepareSummary& s) {
  tokens0_ = s.tokens;
  text0_ = s.text_bytes;
}

void PrepareProgress::update(int64_t input_bytes, const PrepareSummary& s) {
  // RRT_PROGRESS_SECONDS=0: a line after every batch.
  if (!enabled_ || seconds_since(last_) < interval_) return;
  last_ = ProgressClock::now();
  const double t = std::max(seconds_since(start_), 1e-9);
  const double fraction = total_ > 0 ? static_cast<double>(input_bytes) / total_ : 0;
  const double eta = fraction > 0 ? t / fraction * (1 - fraction) : 0;
  std::fprintf(stderr,
               "[%s] %.0f%% of %.1f MB read, %lld documents, %.2fM tokens, %lld shards, "
               "%.1f MB/s read, %.2fM tokens/s, ETA %s\n",
               label_.c_str(), 100 * fraction, total_ / 1e6, static_cast<long long>(s.documents),
               s.tokens / 1e6, static_cast<long long>(s.shards), input_bytes / 1e6 / t,
               (s.tokens - tokens0_) / 1e6 / t, format_duration(eta).c_str());
  std::fflush(stderr);
}

void PrepareProgress::done(const PrepareSummary& s) const {
  if (!enabled_) return;
  const double t = std::max(seconds_since(start_), 1e-9);
  std::fprintf(stderr,
               "[%s] done: %lld documents, %.2fM tokens, %lld shards, %.1f MB read "
               "(%.1f MB of text) at %.1f MB/s, %.2fM tokens/s, %d thread(s), %s\n",
               label_.c_str(), static_cast<long long>(s.documents), s.tokens / 1e6,
               static_cast<long long>(s.shards), s.input_bytes / 1e6, s.text_bytes / 1e6,
               (s.text_bytes - text0_) / 1e6 / t, (s.tokens - tokens0_) / 1e6 / t, threads_,
               format_duration(t).c_str());
}

}  // namespace rrt
