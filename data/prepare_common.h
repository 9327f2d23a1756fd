// What the one-process and the many-rank `rrt prepare` share (internal to data/prepare*.cpp):
// the shards' names, the checked list of input files, the manifest's extra fields and the
// progress lines. Both write the same shard set for the same inputs and options.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/progress.h"
#include "data/input_format.h"
#include "data/prepare.h"
#include "data/prepare_read.h"

namespace rrt {

class Tokenizer;

// Shards beyond this would break "file-name order = stream order" (shard_%05d).
inline constexpr int64_t kMaxPrepareShards = 100000;
// Bad documents named in the report and the manifest.
inline constexpr size_t kPrepareSkipExamples = 10;

std::string prepare_shard_name(int64_t index);  // "shard_00012.h5"
bool is_prepare_shard_name(const std::string& name);
bool is_prepare_temporary(const std::string& name);

// What an output directory holds, once scan_prepare_output has created it if needed.
struct PrepareOutput {
  bool unfinished = false;               // INCOMPLETE is there: a preparation was interrupted
  std::vector<std::string> shards;       // shard file names, sorted
  std::vector<std::string> temporaries;  // a killed writer's shard or journal temporaries
};
// Refuses a directory that holds a complete shard set (or shards of unknown origin); from a
// finished preparation's directory removes a journal left behind.
PrepareOutput scan_prepare_output(const std::string& out_dir);

// Refuses to resume an unfinished preparation whose fingerprint (prepare_state.h) differs.
void refuse_other_preparation(const std::string& out_dir, const nlohmann::ordered_json& recorded,
                              const nlohmann::ordered_json& now);

// Checks the options, collects the input files (reporting on stderr what a directory walk left
// out) and drops files under the output directory; throws when no input file remains.
InputList collect_prepare_inputs(const PrepareOptions& options);

int prepare_threads(const PrepareOptions& options);  // 0 resolved to the hardware's threads

// Whether a processed item is a document to write: blank items are not; a bad one is an error
// naming file and line (or row), or with skip_bad counted in `skipped` (by class) and, for the
// first few, named in `examples`. Checks that every id lies in the tokenizer's vocabulary.
bool admit_prepared_item(const PrepareOptions& options, const Tokenizer& tokenizer,
                         const InputFile& file, const RawItem& item, const ItemResult& result,
                         std::map<std::string, int64_t>& skipped,
                         std::vector<std::string>& examples);

// The manifest's record of one input file, once it has been read completely.
nlohmann::ordered_json prepare_input_record(const InputFile& file, const FinishedFile& done);

// What manifest.json holds beside the shard list.
nlohmann::ordered_json prepare_manifest_extra(const PrepareOptions& options, int64_t text_bytes,
                                              const nlohmann::ordered_json& inputs,
                                              const std::vector<SkippedFile>& skipped_files,
                                              const std::map<std::string, int64_t>& skipped,
                                              const std::vector<std::string>& examples);

// The progress lines of a preparation: a line every RRT_PROGRESS_SECONDS (5 s) with the share
// of the input read, tokens/s and the ETA, and a last one with the totals.
class PrepareProgress {
 public:
  // label: "prepare", or "prepare rank 1/4".
  PrepareProgress(bool enabled, int64_t total_bytes, int threads, std::string label = "prepare");
  void start(const PrepareSummary& s);
  void update(int64_t input_bytes, const PrepareSummary& s);
  void done(const PrepareSummary& s) const;
  double seconds() const { return seconds_since(start_); }

 private:
  bool enabled_;
  int64_t total_;
  int threads_;
  std::string label_;
  double interval_;
  int64_t tokens0_ = 0, text0_ = 0;
  ProgressClock::time_point start_ = ProgressClock::now(), last_ = ProgressClock::now();
};

}  // namespace rrt
