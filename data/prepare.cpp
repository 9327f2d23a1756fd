#include "data/prepare.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <system_error>

#include "core/durable_file.h"
#include "core/error.h"
#include "data/input_format.h"
#include "data/prepare_common.h"
#include "data/prepare_pipeline.h"
#include "data/prepare_ranks.h"
#include "data/prepare_state.h"
#include "data/shard.h"
#include "data/shard_set.h"
#include "data/tokenizer.h"

namespace rrt {

namespace fs = std::filesystem;

namespace {

// Creates out_dir if needed. Refuses one that holds a complete shard set (or shards of unknown
// origin), and an unfinished preparation of other inputs or options; returns the state of an
// unfinished one of the same inputs and options, after deleting what it wrote past its last
// recorded shard (a shard committed just before the kill, temporaries).
std::optional<PrepareState> check_output_directory(const std::string& out_dir,
                                                   const nlohmann::ordered_json& fingerprint) {
  const PrepareOutput output = scan_prepare_output(out_dir);
  if (!output.unfinished) return std::nullopt;
  const std::vector<std::string>& shards = output.shards;
  std::error_code error;
  std::optional<PrepareState> state = read_prepare_state(out_dir);
  if (state) {
    refuse_other_preparation(out_dir, state->fingerprint, fingerprint);
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
  for (const std::string& name : output.temporaries) fs::remove(fs::path(out_dir) / name, error);
  return state;
}

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
    if (!admit_prepared_item(options_, tokenizer_, file, item, result, summary_.skipped_documents,
                             state_.skipped_examples))
      return;
    std::vector<int32_t>& ids = result.ids;
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
    state_.inputs.push_back(prepare_input_record(files_[static_cast<size_t>(done.file)], done));
    summary_.text_bytes += done.text_bytes;
  }

  PrepareSummary finish(const std::vector<SkippedFile>& skipped_files) {
    if (writer_) close_shard(ResumePoint{static_cast<int64_t>(files_.size()), 0, 0});
    const nlohmann::ordered_json extra =
        prepare_manifest_extra(options_, summary_.text_bytes, state_.inputs, skipped_files,
                               summary_.skipped_documents, state_.skipped_examples);
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
    RRT_CHECK(summary_.shards < kMaxPrepareShards, options_.out_dir, "more than ",
              kMaxPrepareShards, " shards; raise shard_tokens");
    const std::string path =
        (fs::path(options_.out_dir) / prepare_shard_name(summary_.shards)).string();
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

}  // namespace

PrepareSummary prepare_shards(const PrepareOptions& options) {
  const auto tokenizer = make_tokenizer(options.tokenizer);
  return prepare_shards(options, *tokenizer);
}

PrepareSummary prepare_shards(const PrepareOptions& options, const Tokenizer& tokenizer) {
  // A preparation that ranks began goes on as theirs did, by whole files.
  std::error_code error;
  if (!options.out_dir.empty() &&
      fs::exists(fs::path(options.out_dir) / kPrepareParts / "state.json", error) &&
      fs::exists(fs::path(options.out_dir) / kShardSetIncomplete, error))
    return prepare_shards_on_ranks(options, tokenizer, PrepareRanks{});
  const InputList list = collect_prepare_inputs(options);
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
  const int threads = prepare_threads(options);
  int64_t total_bytes = 0;
  for (size_t f = static_cast<size_t>(state.next.file); f < files.size(); ++f)
    total_bytes += files[f].size;
  PrepareProgress progress(options.progress, total_bytes, threads);
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
