#include "data/prepare.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <system_error>
#include <thread>

#include "core/durable_file.h"
#include "core/error.h"
#include "core/progress.h"
#include "data/input_format.h"
#include "data/prepare_pipeline.h"
#include "data/prepare_state.h"
#include "data/shard.h"
#include "data/shard_set.h"
#include "data/tokenizer.h"

namespace rrt {

namespace fs = std::filesystem;

namespace {

constexpr int64_t kMaxShards = 100000;  // shard_%05d keeps file-name order = stream order
constexpr size_t kExamples = 10;        // bad documents named in the report and the manifest

std::string shard_name(int64_t index) {
  char name[32];
  std::snprintf(name, sizeof(name), "shard_%05lld.h5", static_cast<long long>(index));
  return name;
}

bool is_shard_name(const std::string& name) {
  return name.size() > 9 && name.rfind("shard_", 0) == 0 &&
         name.compare(name.size() - 3, 3, ".h5") == 0;
}

bool is_temporary(const std::string& name) { return name.find(".tmp") != std::string::npos; }

// Creates out_dir if needed. Refuses one that holds a complete shard set (or shards of unknown
// origin), and an unfinished preparation of other inputs or options; returns the state of an
// unfinished one of the same inputs and options, after deleting what it wrote past its last
// recorded shard (a shard committed just before the kill, temporaries).
std::optional<PrepareState> check_output_directory(const std::string& out_dir,
                                                   const nlohmann::ordered_json& fingerprint) {
  RRT_CHECK(!out_dir.empty(), "prepare", "no output directory; give one (--out DIR)");
  std::error_code error;
  fs::create_directories(out_dir, error);
  RRT_CHECK(!error && fs::is_directory(out_dir), out_dir,
            "cannot create the output directory: ", error ? error.message() : "not a directory");
  std::vector<std::string> shards, temporaries;
  for (const auto& entry : fs::directory_iterator(out_dir, error)) {
    const std::string name = entry.path().filename().string();
    if (is_temporary(name) && (name.rfind("shard_", 0) == 0 || name.rfind(kPrepareState, 0) == 0))
      temporaries.push_back(name);
    else if (is_shard_name(name))
      shards.push_back(name);
  }
  RRT_CHECK(!error, out_dir, "cannot list the output directory: ", error.message());
  std::sort(shards.begin(), shards.end());
  const bool unfinished = fs::exists(fs::path(out_dir) / kShardSetIncomplete, error);
  if (!unfinished) {
    RRT_CHECK(shards.empty(), out_dir, "already holds ", shards.size(), " token shard(s) (",
              shards.empty() ? "" : shards.front(),
              ", ...); remove them or choose an empty output directory");
    fs::remove(fs::path(out_dir) / kPrepareState, error);  // left by a finished preparation
    return std::nullopt;
  }
  std::optional<PrepareState> state = read_prepare_state(out_dir);
  if (state) {
    const std::string difference = fingerprint_difference(state->fingerprint, fingerprint);
    RRT_CHECK(difference.empty(), out_dir,
              "holds an unfinished preparation of other inputs or options (", difference,
              "); rerun it with the same ones to resume, or delete the directory (rm -r ", out_dir,
              ") to start again");
    for (const ShardInfo& s : state->shards)
      RRT_CHECK(std::binary_search(shards.begin(), shards.end(), s.path), out_dir,
                "is missing shard ", s.path, ", which its ", kPrepareState,
                " records; delete the directory (rm -r ", out_dir, ") and prepare again");
  }
  for (const std::string& name : shards) {
    const bool recorded = state && std::any_of(state->shards.begin(), state->shards.end(),
                                               [&](const ShardInfo& s) { return s.path == name; });
    if (!recorded) fs::remove(fs::path(out_dir) / name, error);
  }
  for (const std::string& name : temporaries) fs::remove(fs::path(out_dir) / name, error);
  return state;
}

class Progress {
 public:
  Progress(bool enabled, int64_t total_bytes, int threads)
      : enabled_(enabled),
        total_(total_bytes),
        threads_(threads),
        interval_(progress_interval(5)) {}

  void update(int64_t input_bytes, const PrepareSummary& s) {
    // RRT_PROGRESS_SECONDS=0: a line after every batch.
    if (!enabled_ || seconds_since(last_) < interval_) return;
    last_ = ProgressClock::now();
    const double t = std::max(seconds_since(start_), 1e-9);
    const double fraction = total_ > 0 ? static_cast<double>(input_bytes) / total_ : 0;
    const double eta = fraction > 0 ? t / fraction * (1 - fraction) : 0;
    std::fprintf(stderr,
                 "[prepare] %.0f%% of %.1f MB read, %lld documents, %.2fM tokens, %lld shards, "
                 "%.1f MB/s read, %.2fM tokens/s, ETA %s\n",
                 100 * fraction, total_ / 1e6, static_cast<long long>(s.documents), s.tokens / 1e6,
                 static_cast<long long>(s.shards), input_bytes / 1e6 / t,
                 (s.tokens - tokens0_) / 1e6 / t, format_duration(eta).c_str());
    std::fflush(stderr);
  }

  void start(const PrepareSummary& s) {
    tokens0_ = s.tokens;
    text0_ = s.text_bytes;
  }

  void done(const PrepareSummary& s) const {
    if (!enabled_) return;
    const double t = std::max(seconds_since(start_), 1e-9);
    std::fprintf(stderr,
                 "[prepare] done: %lld documents, %.2fM tokens, %lld shards, %.1f MB read "
                 "(%.1f MB of text) at %.1f MB/s, %.2fM tokens/s, %d thread(s), %s\n",
                 static_cast<long long>(s.documents), s.tokens / 1e6,
                 static_cast<long long>(s.shards), s.input_bytes / 1e6, s.text_bytes / 1e6,
                 (s.text_bytes - text0_) / 1e6 / t, (s.tokens - tokens0_) / 1e6 / t, threads_,
                 format_duration(t).c_str());
  }

  double seconds() const { return seconds_since(start_); }

 private:
  bool enabled_;
  int64_t total_;
  int threads_;
  double interval_;
  int64_t tokens0_ = 0, text0_ = 0;
  ProgressClock::time_point start_ = ProgressClock::now(), last_ = ProgressClock::now();
};

// Cuts the stream of encoded documents into shards of shard_tokens tokens and keeps the resume
// journal: after each shard is committed, prepare_state.json records it and where to go on.
class ShardSink {
 public:
  ShardSink(const PrepareOptions& options, const Tokenizer& tokenizer,
            const std::vector<InputFile>& files, PrepareState state)
      : options_(options), tokenizer_(tokenizer), files_(files), state_(std::move(state)) {
    summary_.dtype = shard_dtype_for(tokenizer.vocab_size());
    summary_.documents = state_.documents;
    summary_.tokens = state_.tokens;
    summary_.text_bytes = state_.text_bytes;
    summary_.shards = static_cast<int64_t>(state_.shards.size());
    summary_.skipped_documents = state_.skipped;
    skip_tokens_ = state_.next.skip_tokens;
  }

  // On an exception every shard of the set goes, with the journal and the marker: nothing
  // half-made is left (a kill leaves them, for the rerun to resume from).
  ~ShardSink() {
    if (finished_) return;
    writer_.reset();
    std::error_code ignored;
    const fs::path dir(options_.out_dir);
    for (const ShardInfo& s : state_.shards) fs::remove(dir / s.path, ignored);
    fs::remove(dir / kPrepareState, ignored);
    fs::remove(dir / kShardSetIncomplete, ignored);
  }

  void add(const RawItem& item, ItemResult& result) {
    const InputFile& file = files_[static_cast<size_t>(item.file)];
    if (result.status == ItemStatus::blank) return;
    if (result.status == ItemStatus::bad) {
      const std::string where = item_location(file, item.item);
      RRT_CHECK(options_.skip_bad, where, result.message,
                "; fix the input, or pass --skip-bad to skip and count such documents");
      summary_.skipped_documents[result.bad_class] += 1;
      if (state_.skipped_examples.size() < kExamples)
        state_.skipped_examples.push_back(where + ": " + result.bad_class);
      return;
    }
    std::vector<int32_t>& ids = result.ids;
    const int64_t vocab = tokenizer_.vocab_size();
    for (int32_t id : ids)
      RRT_CHECK(id >= 0 && id < vocab, item_location(file, item.item), "tokenizer ",
                tokenizer_.name(), " produced id ", id, " outside its vocabulary [0, ", vocab, ")");
    int64_t written = 0;
    if (skip_tokens_ > 0) {
      // The first document of a resumed preparation: its first tokens are in the last shard.
      RRT_CHECK(skip_tokens_ < static_cast<int64_t>(ids.size()), item_location(file, item.item),
                "resuming inside this document, after its token ", skip_tokens_,
                ", but it has only ", ids.size(), " now; delete ", options_.out_dir,
                " and prepare again");
      written = skip_tokens_;
      skip_tokens_ = 0;
    }
    const int64_t total = static_cast<int64_t>(ids.size());
    while (written < total) {
      if (!writer_) open_shard();
      const int64_t take = std::min(total - written, options_.shard_tokens - writer_->tokens());
      writer_->append(ids.data() + written, take);
      written += take;
      summary_.tokens += take;
      if (written == total) {
        writer_->end_document();  // the shard holding EOS counts the document
        summary_.documents += 1;
      }
      if (writer_->tokens() == options_.shard_tokens) {
        const ResumePoint next = written == total ? ResumePoint{item.file, item.item + 1, 0}
                                                  : ResumePoint{item.file, item.item, written};
        close_shard(next);
      }
    }
  }

  void file_finished(const FinishedFile& done) {
    const InputFile& file = files_[static_cast<size_t>(done.file)];
    char crc[16];
    std::snprintf(crc, sizeof(crc), "%08x", done.crc32);
    state_.inputs.push_back({{"path", file.path},
                             {"format", file.description()},
                             {"bytes", done.bytes},
                             {"crc32", crc},
                             {"text_bytes", done.text_bytes}});
    summary_.text_bytes += done.text_bytes;
  }

  PrepareSummary finish(const std::vector<SkippedFile>& skipped_files) {
    if (writer_) close_shard(ResumePoint{static_cast<int64_t>(files_.size()), 0, 0});
    nlohmann::ordered_json extra;
    extra["text_field"] = options_.text_field;
    extra["text_bytes"] = summary_.text_bytes;
    extra["inputs"] = state_.inputs;
    nlohmann::ordered_json skipped_files_json = nlohmann::ordered_json::array();
    for (const SkippedFile& s : skipped_files)
      skipped_files_json.push_back({{"path", s.path}, {"reason", s.reason}});
    extra["skipped_files"] = skipped_files_json;
    extra["skipped_documents"] = summary_.skipped_documents;
    extra["skipped_examples"] = state_.skipped_examples;
    std::vector<ShardInfo> infos = state_.shards;
    for (ShardInfo& info : infos) {
      info.path = (fs::path(options_.out_dir) / info.path).string();
      info.tokenizer = tokenizer_.name();
    }
    // The journal goes first, so a complete set never holds one (a kill right here leaves
    // INCOMPLETE without a journal: the rerun starts afresh, which is slow but right).
    std::error_code ignored;
    fs::remove(fs::path(options_.out_dir) / kPrepareState, ignored);
    mark_shard_set_complete(options_.out_dir, infos, extra);  // the manifest last: set is whole
    finished_ = true;
    return summary_;
  }

  const PrepareSummary& summary() const { return summary_; }

 private:
  void open_shard() {
    RRT_CHECK(summary_.shards < kMaxShards, options_.out_dir, "more than ", kMaxShards,
              " shards; raise shard_tokens");
    const std::string path = (fs::path(options_.out_dir) / shard_name(summary_.shards)).string();
    writer_ = std::make_unique<ShardWriter>(path, tokenizer_.name(), tokenizer_.vocab_size(),
                                            tokenizer_.eos_id(),
                                            std::min(options_.shard_tokens, kShardChunkTokens));
  }

  void close_shard(const ResumePoint& next) {
    writer_->finish();
    ShardInfo info;
    info.path = fs::path(writer_->path()).filename().string();
    info.documents = writer_->documents();
    info.tokens = writer_->tokens();
    state_.shards.push_back(info);
    writer_.reset();
    summary_.shards += 1;
    // The journal follows the shard: a kill between the two leaves a shard the journal does not
    // list, which the rerun deletes and writes again.
    state_.next = next;
    state_.documents = summary_.documents;
    state_.tokens = summary_.tokens;
    state_.text_bytes = summary_.text_bytes;
    state_.skipped = summary_.skipped_documents;
    write_prepare_state(options_.out_dir, state_);
    if (options_.after_shard) options_.after_shard(summary_.shards - 1);
  }

  const PrepareOptions& options_;
  const Tokenizer& tokenizer_;
  const std::vector<InputFile>& files_;
  PrepareState state_;
  std::unique_ptr<ShardWriter> writer_;
  PrepareSummary summary_;
  int64_t skip_tokens_ = 0;
  bool finished_ = false;
};

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

PrepareSummary prepare_shards(const PrepareOptions& options) {
  const auto tokenizer = make_tokenizer(options.tokenizer);
  return prepare_shards(options, *tokenizer);
}

PrepareSummary prepare_shards(const PrepareOptions& options, const Tokenizer& tokenizer) {
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
  const std::vector<InputFile>& files = list.files;

  const nlohmann::ordered_json fingerprint =
      prepare_fingerprint(files, tokenizer.name(), tokenizer.vocab_size(), options.shard_tokens,
                          options.text_field, options.skip_bad);
  std::optional<PrepareState> resumed = check_output_directory(options.out_dir, fingerprint);
  PrepareState state;
  if (resumed) {
    state = std::move(*resumed);
  } else {
    state.fingerprint = fingerprint;
    mark_shard_set_incomplete(options.out_dir);
  }
  const int threads = options.threads > 0
                          ? options.threads
                          : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  int64_t total_bytes = 0;
  for (size_t f = static_cast<size_t>(state.next.file); f < files.size(); ++f)
    total_bytes += files[f].size;
  Progress progress(options.progress, total_bytes, threads);
  if (resumed && options.progress)
    std::fprintf(stderr, "[prepare] resuming %s after shard %zu (%lld tokens written)\n",
                 options.out_dir.c_str(), state.shards.size(),
                 static_cast<long long>(state.tokens));

  const ResumePoint start = state.next;
  ShardSink sink(options, tokenizer, files, std::move(state));
  progress.start(sink.summary());
  InputReader reader(files, options.text_field, start);
  {
    PreparePipeline pipeline(reader, files, options.text_field, tokenizer, threads);
    ProcessedBatch processed;
    while (pipeline.next(processed)) {
      const std::vector<RawItem>& items = processed.batch.items;
      for (size_t i = 0; i < items.size(); ++i) sink.add(items[i], processed.results[i]);
      for (const FinishedFile& done : processed.batch.finished) sink.file_finished(done);
      progress.update(processed.batch.input_bytes, sink.summary());
      if (processed.batch.error) std::rethrow_exception(processed.batch.error);
    }
  }
  RRT_CHECK(sink.summary().documents > 0, options.inputs.front(),
            "the inputs hold no documents (every one is empty, blank or was skipped)");
  PrepareSummary summary = sink.finish(list.skipped);
  summary.input_files = static_cast<int64_t>(files.size());
  for (const InputFile& file : files) summary.input_bytes += file.size;
  summary.skipped_files = static_cast<int64_t>(list.skipped.size());
  summary.resumed = resumed.has_value();
  summary.seconds = progress.seconds();
  progress.done(summary);
  return summary;
}

}  // namespace rrt
