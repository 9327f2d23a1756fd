#include "data/prepare_ranks.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <memory>
#include <numeric>

#include "core/durable_file.h"
#include "core/error.h"
#include "core/json_file.h"
#include "data/prepare_common.h"
#include "data/prepare_pipeline.h"
#include "data/prepare_state.h"
#include "data/shard.h"
#include "data/shard_set.h"
#include "data/tokenizer.h"

namespace rrt {

namespace fs = std::filesystem;

namespace {

constexpr const char* kPartsState = "state.json";
constexpr int64_t kCopyTokens = 1 << 20;  // tokens moved from a part into a shard at a time

fs::path parts_dir(const PrepareOptions& options) {
  return fs::path(options.out_dir) / kPrepareParts;
}

std::string part_path(const PrepareOptions& options, int64_t file, const char* extension) {
  char name[48];
  std::snprintf(name, sizeof(name), "file_%05lld.%s", static_cast<long long>(file), extension);
  return (parts_dir(options) / name).string();
}

nlohmann::ordered_json read_json(const std::string& path, const std::string& out_dir) {
  const std::string hint = "; delete the directory (rm -r " + out_dir + ") and prepare again";
  auto j = read_ordered_json_file(path, hint);
  RRT_CHECK(j.is_object(), path, "is not a JSON object", hint);
  return j;
}

// One input file's tokens, as stage 2 reads them.
struct Part {
  int64_t tokens = 0, documents = 0, text_bytes = 0;
  nlohmann::ordered_json input;  // the manifest's record of the file
  std::map<std::string, int64_t> skipped;
  std::vector<std::string> examples;
};

Part read_part(const PrepareOptions& options, int64_t file, const InputFile& input) {
  const std::string path = part_path(options, file, "json");
  const nlohmann::ordered_json j = read_json(path, options.out_dir);
  Part part;
  try {
    RRT_CHECK(j.at("format") == "rrt-prepare-part" && j.at("path") == input.path, path,
              "is not the part of input ", input.path, "; delete the directory (rm -r ",
              options.out_dir, ") and prepare again");
    part.tokens = j.at("tokens").get<int64_t>();
    part.documents = j.at("documents").get<int64_t>();
    part.text_bytes = j.at("text_bytes").get<int64_t>();
    part.input = j.at("input");
    part.skipped = j.at("skipped").get<std::map<std::string, int64_t>>();
    part.examples = j.at("examples").get<std::vector<std::string>>();
  } catch (const nlohmann::json::exception& e) {
    RRT_FAIL(path, "is not a readable part (", e.what(), "); delete the directory (rm -r ",
             options.out_dir, ") and prepare again");
  }
  return part;
}

// Appends to a temporary file, committed by commit(); removed if never committed.
class BinaryOut {
 public:
  explicit BinaryOut(std::string path) : path_(std::move(path)), temp_(temporary_path(path_)) {
    file_ = std::fopen(temp_.c_str(), "wb");
    RRT_CHECK(file_, temp_, "cannot create: ", std::strerror(errno));
  }
  ~BinaryOut() {
    if (file_) std::fclose(file_);
    if (!committed_) std::remove(temp_.c_str());
  }
  template <typename T>
  void write(const T* data, size_t n) {
    RRT_CHECK(std::fwrite(data, sizeof(T), n, file_) == n, temp_,
              "cannot write: ", std::strerror(errno));
  }
  void commit() {
    const int closed = std::fclose(file_);
    file_ = nullptr;
    RRT_CHECK(closed == 0, temp_, "cannot write: ", std::strerror(errno));
    commit_temporary_file(temp_, path_, path_);
    committed_ = true;
  }

 private:
  std::string path_, temp_;
  std::FILE* file_ = nullptr;
  bool committed_ = false;
};

// Stage 1 for one input file: its documents' tokens (.tokens, uint32), the offsets where they
// end (.ends, int64) and its totals (.json, written last: the part exists once it does).
void tokenise_file(const PrepareOptions& options, const Tokenizer& tokenizer,
                   const std::vector<InputFile>& files, int64_t f, int threads,
                   PrepareProgress& progress, PrepareSummary& running, int64_t& bytes_before) {
  const std::vector<InputFile> one{files[static_cast<size_t>(f)]};
  BinaryOut tokens(part_path(options, f, "tokens")), ends(part_path(options, f, "ends"));
  Part part;
  InputReader reader(one, options.text_field, ResumePoint{});
  PreparePipeline pipeline(reader, one, options.text_field, tokenizer, threads);
  ProcessedBatch processed;
  while (pipeline.next(processed)) {
    const std::vector<RawItem>& items = processed.batch.items;
    for (size_t i = 0; i < items.size(); ++i) {
      if (!admit_prepared_item(options, tokenizer, one[0], items[i], processed.results[i],
                               part.skipped, part.examples))
        continue;
      const std::vector<int32_t>& ids = processed.results[i].ids;
      tokens.write(ids.data(), ids.size());
      part.tokens += static_cast<int64_t>(ids.size());
      part.documents += 1;
      ends.write(&part.tokens, 1);
      running.tokens += static_cast<int64_t>(ids.size());
      running.documents += 1;
    }
    for (const FinishedFile& done : processed.batch.finished) {
      part.input = prepare_input_record(one[0], done);
      part.text_bytes = done.text_bytes;
    }
    progress.update(bytes_before + processed.batch.input_bytes, running);
    if (processed.batch.error) std::rethrow_exception(processed.batch.error);
  }
  bytes_before += one[0].size;
  tokens.commit();
  ends.commit();
  nlohmann::ordered_json j;
  j["format"] = "rrt-prepare-part";
  j["path"] = one[0].path;
  j["tokens"] = part.tokens;
  j["documents"] = part.documents;
  j["text_bytes"] = part.text_bytes;
  j["input"] = part.input;
  j["skipped"] = part.skipped;
  j["examples"] = part.examples;
  write_file_atomically(part_path(options, f, "json"), j.dump(1) + "\n");
}

// Which rank tokenises each file: the largest first, each to the rank with the fewest bytes so
// far (the lowest rank on ties), so ranks finish together when files differ in size.
std::vector<int> assign_files(const std::vector<InputFile>& files, int world) {
  std::vector<size_t> order(files.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return files[a].size > files[b].size; });
  std::vector<int64_t> load(static_cast<size_t>(world), 0);
  std::vector<int> owner(files.size(), 0);
  for (size_t f : order) {
    const auto least = std::min_element(load.begin(), load.end()) - load.begin();
    owner[f] = static_cast<int>(least);
    load[static_cast<size_t>(least)] += files[f].size + 1;
  }
  return owner;
}

// Stage 0, on rank 0: refuses what prepare_shards refuses, keeps the parts and shards of an
// interrupted preparation of the same inputs and options, and records the fingerprint. Returns
// whether it resumes.
bool prepare_parts_directory(const PrepareOptions& options,
                             const nlohmann::ordered_json& fingerprint) {
  const PrepareOutput output = scan_prepare_output(options.out_dir);
  const fs::path dir(options.out_dir);
  const fs::path state_path = parts_dir(options) / kPartsState;
  std::error_code error;
  bool resumed = false;
  if (output.unfinished && fs::exists(state_path, error)) {
    const nlohmann::ordered_json state = read_json(state_path.string(), options.out_dir);
    refuse_other_preparation(options.out_dir, state.value("fingerprint", nlohmann::ordered_json()),
                             fingerprint);
    resumed = true;  // its committed parts and shards are this preparation's: keep them
  } else {
    // A fresh start, or the journal of a one-process preparation (which resumes by shards, not
    // by files): start again.
    for (const std::string& name : output.shards) fs::remove(dir / name, error);
    fs::remove_all(parts_dir(options), error);
    if (!output.unfinished) mark_shard_set_incomplete(options.out_dir);
  }
  fs::remove(dir / kPrepareState, error);
  for (const std::string& name : output.temporaries) fs::remove(dir / name, error);
  fs::create_directories(parts_dir(options), error);
  RRT_CHECK(!error, parts_dir(options).string(), "cannot create: ", error.message());
  for (const auto& entry : fs::directory_iterator(parts_dir(options), error))
    if (is_prepare_temporary(entry.path().filename().string())) fs::remove(entry.path(), error);
  if (!resumed) {
    nlohmann::ordered_json state;
    state["format"] = "rrt-prepare-parts";
    state["fingerprint"] = fingerprint;
    write_file_atomically(state_path.string(), state.dump(1) + "\n");
  }
  return resumed;
}

// Removes everything the preparation wrote (rank 0, after any rank failed).
void remove_preparation(const PrepareOptions& options) {
  std::error_code ignored;
  const fs::path dir(options.out_dir);
  for (const auto& entry : fs::directory_iterator(dir, ignored)) {
    const std::string name = entry.path().filename().string();
    if (is_prepare_shard_name(name) || (is_prepare_temporary(name) && name.rfind("shard_", 0) == 0))
      fs::remove(entry.path(), ignored);
  }
  fs::remove_all(parts_dir(options), ignored);
  fs::remove(dir / kShardSetIncomplete, ignored);
}

// The token stream is the parts in input order; shard i holds its tokens [i S, (i + 1) S).
class PartStream {
 public:
  PartStream(const PrepareOptions& options, std::vector<Part> parts)
      : options_(options), parts_(std::move(parts)), begins_(parts_.size() + 1, 0) {
    for (size_t p = 0; p < parts_.size(); ++p) begins_[p + 1] = begins_[p] + parts_[p].tokens;
  }
  int64_t tokens() const { return begins_.back(); }

  // Appends tokens [begin, end) to `writer` and counts the documents whose EOS lies among them;
  // returns that count.
  int64_t copy(int64_t begin, int64_t end, ShardWriter* writer) {
    int64_t documents = 0;
    std::vector<int32_t> buffer;
    for (size_t p = part_at(begin); p < parts_.size() && begins_[p] < end; ++p) {
      const int64_t from = std::max(begin, begins_[p]) - begins_[p];
      const int64_t to = std::min(end, begins_[p + 1]) - begins_[p];
      if (from >= to) continue;
      if (writer) {
        const std::string path = part_path(options_, static_cast<int64_t>(p), "tokens");
        std::ifstream in(path, std::ios::binary);
        in.seekg(from * static_cast<int64_t>(sizeof(int32_t)));
        for (int64_t at = from; at < to; at += kCopyTokens) {
          const int64_t n = std::min(kCopyTokens, to - at);
          buffer.resize(static_cast<size_t>(n));
          in.read(reinterpret_cast<char*>(buffer.data()), n * 4);
          RRT_CHECK(in, path, "is shorter than its part records; delete the directory (rm -r ",
                    options_.out_dir, ") and prepare again");
          writer->append(buffer.data(), n);
        }
      }
      for (int64_t e : ends(p)) documents += e > from && e <= to;
    }
    if (writer)
      for (int64_t d = 0; d < documents; ++d) writer->end_document();
    return documents;
  }

 private:
  size_t part_at(int64_t token) const {
    return static_cast<size_t>(std::upper_bound(begins_.begin(), begins_.end(), token) -
                               begins_.begin() - 1);
  }
  const std::vector<int64_t>& ends(size_t p) {
    if (cached_ == p) return ends_;
    const std::string path = part_path(options_, static_cast<int64_t>(p), "ends");
    ends_.assign(static_cast<size_t>(parts_[p].documents), 0);
    std::ifstream in(path, std::ios::binary);
    in.read(reinterpret_cast<char*>(ends_.data()),
            static_cast<std::streamsize>(ends_.size() * sizeof(int64_t)));
    RRT_CHECK(in, path, "is shorter than its part records; delete the directory (rm -r ",
              options_.out_dir, ") and prepare again");
    cached_ = p;
    return ends_;
  }

  const PrepareOptions& options_;
  std::vector<Part> parts_;
  std::vector<int64_t> begins_;
  std::vector<int64_t> ends_;
  size_t cached_ = static_cast<size_t>(-1);
};

// Runs one stage on every rank; every rank learns whether all succeeded. After stage 0 a
// failure anywhere makes rank 0 remove the preparation.
template <typename Stage>
void run_stage(const PrepareRanks& ranks, const PrepareOptions& options, const char* what,
               bool clean_up_on_failure, Stage&& stage) {
  std::exception_ptr error;
  try {
    stage();
  } catch (...) {
    error = std::current_exception();
  }
  const bool ok = ranks.all_ok(!error);
  if (!ok && clean_up_on_failure && ranks.rank == 0) remove_preparation(options);
  if (error) std::rethrow_exception(error);
  RRT_CHECK(ok, options.out_dir, "another rank failed while ", what,
            " (its error is in its output); nothing of the preparation is left");
}

}  // namespace

PrepareSummary prepare_shards_on_ranks(const PrepareOptions& options, const Tokenizer& tokenizer,
                                       const PrepareRanks& ranks) {
  RRT_CHECK(ranks.world >= 1 && ranks.rank >= 0 && ranks.rank < ranks.world, "prepare", "rank ",
            ranks.rank, " of ", ranks.world, " is not a rank of the job");
  PrepareSummary summary;
  InputList list;
  bool resumed = false;
  // Stage 0: every rank collects the same inputs (sorted walks); rank 0 sets up the directory.
  run_stage(ranks, options, "checking the inputs and the output directory", false, [&] {
    list = collect_prepare_inputs(options);
    if (ranks.rank == 0)
      resumed = prepare_parts_directory(
          options, prepare_fingerprint(list.files, tokenizer.name(), tokenizer.vocab_size(),
                                       options.shard_tokens, options.text_field, options.skip_bad));
  });
  const std::vector<InputFile>& files = list.files;
  const int threads = prepare_threads(options);
  const std::string label = ranks.world == 1 ? "prepare"
                                             : "prepare rank " + std::to_string(ranks.rank) + "/" +
                                                   std::to_string(ranks.world);
  if (resumed && options.progress)
    std::fprintf(stderr, "[%s] resuming %s from its committed parts and shards\n", label.c_str(),
                 options.out_dir.c_str());

  // Stage 1: each rank tokenises its files into parts.
  const std::vector<int> owner = assign_files(files, ranks.world);
  int64_t my_bytes = 0;
  for (size_t f = 0; f < files.size(); ++f)
    if (owner[f] == ranks.rank) my_bytes += files[f].size;
  PrepareProgress progress(options.progress, my_bytes, threads, label);
  run_stage(ranks, options, "tokenising its input files", true, [&] {
    PrepareSummary running;
    int64_t bytes_before = 0;
    for (size_t f = 0; f < files.size(); ++f) {
      if (owner[f] != ranks.rank) continue;
      const int64_t file = static_cast<int64_t>(f);
      if (fs::exists(part_path(options, file, "json"))) {
        bytes_before += files[f].size;
        continue;
      }
      tokenise_file(options, tokenizer, files, file, threads, progress, running, bytes_before);
      if (options.after_part) options.after_part(file);
    }
  });

  // Stage 2: the shards, rank r writing shards r, r + W, ...
  std::vector<Part> parts;
  std::vector<ShardInfo> shards;
  run_stage(ranks, options, "writing its shards", true, [&] {
    for (size_t f = 0; f < files.size(); ++f)
      parts.push_back(read_part(options, static_cast<int64_t>(f), files[f]));
    PartStream stream(options, parts);
    const int64_t total = stream.tokens();
    const int64_t count = (total + options.shard_tokens - 1) / options.shard_tokens;
    RRT_CHECK(count <= kMaxPrepareShards, options.out_dir, "more than ", kMaxPrepareShards,
              " shards; raise shard_tokens");
    for (const Part& part : parts) summary.documents += part.documents;
    RRT_CHECK(summary.documents > 0, options.inputs.front(),
              "the inputs hold no documents (every one is empty, blank or was skipped)");
    for (int64_t i = 0; i < count; ++i) {
      const int64_t begin = i * options.shard_tokens;
      const int64_t end = std::min(total, begin + options.shard_tokens);
      ShardInfo info;
      info.path = (fs::path(options.out_dir) / prepare_shard_name(i)).string();
      info.tokenizer = tokenizer.name();
      info.tokens = end - begin;
      const bool mine = i % ranks.world == ranks.rank;
      if (mine && !fs::exists(info.path)) {
        ShardWriter writer(info.path, tokenizer.name(), tokenizer.vocab_size(), tokenizer.eos_id(),
                           std::min(options.shard_tokens, kShardChunkTokens));
        info.documents = stream.copy(begin, end, &writer);
        writer.finish();
        if (options.after_shard) options.after_shard(i);
      } else if (ranks.rank == 0) {
        info.documents = stream.copy(begin, end, nullptr);  // for the manifest
      }
      shards.push_back(info);
    }
    summary.tokens = total;
  });

  // Stage 3: rank 0 writes the manifest; the set is complete once it has.
  nlohmann::ordered_json inputs = nlohmann::ordered_json::array();
  std::vector<std::string> examples;
  for (const Part& part : parts) {
    inputs.push_back(part.input);
    summary.text_bytes += part.text_bytes;
    for (const auto& [what, n] : part.skipped) summary.skipped_documents[what] += n;
    for (const std::string& example : part.examples)
      if (examples.size() < kPrepareSkipExamples) examples.push_back(example);
  }
  run_stage(ranks, options, "writing the manifest", true, [&] {
    if (ranks.rank != 0) return;
    std::error_code ignored;
    // The parts go first, so a complete set never holds them (a kill right here leaves
    // INCOMPLETE and shards without parts: the rerun starts afresh, which is slow but right).
    fs::remove_all(parts_dir(options), ignored);
    mark_shard_set_complete(
        options.out_dir, shards,
        prepare_manifest_extra(options, summary.text_bytes, inputs, list.skipped,
                               summary.skipped_documents, examples));
  });
  summary.dtype = shard_dtype_for(tokenizer.vocab_size());
  summary.shards = static_cast<int64_t>(shards.size());
  summary.input_files = static_cast<int64_t>(files.size());
  for (const InputFile& file : files) summary.input_bytes += file.size;
  summary.skipped_files = static_cast<int64_t>(list.skipped.size());
  summary.resumed = resumed;
  summary.seconds = progress.seconds();
  if (ranks.rank == 0) progress.done(summary);
  return summary;
}

}  // namespace rrt
