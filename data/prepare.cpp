#include "data/prepare.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <system_error>

#include "core/error.h"
#include "data/shard.h"
#include "data/shard_set.h"
#include "data/tokenizer.h"

namespace rrt {

namespace fs = std::filesystem;

namespace {

constexpr int64_t kMaxShards = 100000;  // shard_%05d keeps file-name order = stream order
constexpr int64_t kProgressBytes = 8 << 20;

struct Source {
  fs::path path;
  bool jsonl = false;
};

std::string lower(std::string text) {
  for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

bool is_jsonl(const fs::path& path) { return lower(path.extension().string()) == ".jsonl"; }

// Inside directories: *.txt, *.md, *.jsonl and files without an extension.
bool wanted_in_directory(const fs::path& path) {
  const std::string ext = lower(path.extension().string());
  return ext.empty() || ext == ".txt" || ext == ".md" || ext == ".jsonl";
}

bool hidden(const fs::path& path) {
  const std::string name = path.filename().string();
  return !name.empty() && name[0] == '.';
}

std::vector<Source> collect_sources(const std::vector<std::string>& inputs) {
  std::vector<Source> sources;
  for (const std::string& input : inputs) {
    std::error_code error;
    const fs::file_status status = fs::status(input, error);
    RRT_CHECK(fs::exists(status), input,
              "input not found; give text files, .jsonl files or "
              "directories of them");
    if (fs::is_regular_file(status)) {
      sources.push_back({input, is_jsonl(input)});
      continue;
    }
    RRT_CHECK(fs::is_directory(status), input, "input is neither a file nor a directory");
    std::vector<fs::path> files;
    try {
      for (auto it = fs::recursive_directory_iterator(input); it != fs::end(it); ++it) {
        if (hidden(it->path())) {
          if (it->is_directory()) it.disable_recursion_pending();
          continue;
        }
        if (it->is_regular_file() && wanted_in_directory(it->path())) files.push_back(it->path());
      }
    } catch (const fs::filesystem_error& e) {
      RRT_FAIL(input, "cannot list the directory: ", e.what());
    }
    std::sort(files.begin(), files.end());
    for (const fs::path& file : files) sources.push_back({file, is_jsonl(file)});
  }
  return sources;
}

std::string shard_name(int64_t index) {
  char name[32];
  std::snprintf(name, sizeof(name), "shard_%05lld.h5", static_cast<long long>(index));
  return name;
}

bool is_shard_name(const std::string& name) {
  return name.size() > 9 && name.rfind("shard_", 0) == 0 &&
         name.compare(name.size() - 3, 3, ".h5") == 0;
}

// Creates out_dir if needed and refuses one that already holds shards.
void check_output_directory(const std::string& out_dir) {
  RRT_CHECK(!out_dir.empty(), "prepare", "no output directory; give one (--out DIR)");
  std::error_code error;
  fs::create_directories(out_dir, error);
  RRT_CHECK(!error && fs::is_directory(out_dir), out_dir,
            "cannot create the output directory: ", error ? error.message() : "not a directory");
  std::vector<std::string> shards;
  for (const auto& entry : fs::directory_iterator(out_dir, error)) {
    const std::string name = entry.path().filename().string();
    if (is_shard_name(name)) shards.push_back(name);
  }
  RRT_CHECK(!error, out_dir, "cannot list the output directory: ", error.message());
  std::sort(shards.begin(), shards.end());
  RRT_CHECK(shards.empty(), out_dir, "already holds ", shards.size(), " token shard(s) (",
            shards.front(), ", ...); remove them or choose an empty output directory");
}

class Progress {
 public:
  explicit Progress(bool enabled) : enabled_(enabled) {}
  void add_bytes(int64_t bytes, const PrepareSummary& summary) {
    bytes_ += bytes;
    if (enabled_ && bytes_ - reported_bytes_ >= kProgressBytes) {
      report("", summary);
      reported_bytes_ = bytes_;
    }
  }
  void report(const char* prefix, const PrepareSummary& summary) const {
    if (!enabled_) return;
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    const double mb = static_cast<double>(bytes_) / 1e6;
    std::fprintf(stderr,
                 "[prepare] %s%lld documents, %.2fM tokens, %lld shards, %.1f MB read at "
                 "%.1f MB/s\n",
                 prefix, static_cast<long long>(summary.documents),
                 static_cast<double>(summary.tokens) / 1e6, static_cast<long long>(summary.shards),
                 mb, mb / std::max(seconds, 1e-9));
  }

 private:
  bool enabled_;
  int64_t bytes_ = 0, reported_bytes_ = 0;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

// Cuts the stream of encoded documents into shards of shard_tokens tokens.
class ShardSink {
 public:
  ShardSink(const PrepareOptions& options, const Tokenizer& tokenizer)
      : options_(options), tokenizer_(tokenizer) {
    summary_.dtype = shard_dtype_for(tokenizer.vocab_size());
  }

  // On an exception the temporary shard and the shards already written are removed.
  ~ShardSink() {
    if (finished_) return;
    writer_.reset();
    std::error_code ignored;
    for (const std::string& path : written_) fs::remove(path, ignored);
    // Nothing of this set is left: the marker goes too.
    fs::remove(fs::path(options_.out_dir) / kShardSetIncomplete, ignored);
  }

  void add_document(std::string_view text, const std::string& where) {
    if (text.empty()) return;
    std::vector<int32_t> ids = tokenizer_.encode(text);
    const int64_t vocab = tokenizer_.vocab_size();
    for (int32_t id : ids) {
      RRT_CHECK(id >= 0 && id < vocab, where, "tokenizer ", tokenizer_.name(), " produced id ", id,
                " outside its vocabulary [0, ", vocab, ")");
    }
    ids.push_back(tokenizer_.eos_id());
    const int32_t* next = ids.data();
    int64_t left = static_cast<int64_t>(ids.size());
    while (left > 0) {
      if (!writer_) open_shard();
      const int64_t take = std::min(left, options_.shard_tokens - writer_->tokens());
      writer_->append(next, take);
      next += take;
      left -= take;
      if (left == 0) writer_->end_document();  // the shard holding EOS counts the document
      if (writer_->tokens() == options_.shard_tokens) close_shard();
    }
    summary_.documents += 1;
    summary_.tokens += static_cast<int64_t>(ids.size());
  }

  PrepareSummary finish() {
    if (writer_) close_shard();
    mark_shard_set_complete(options_.out_dir, infos_);  // the manifest last: the set is whole
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

  void close_shard() {
    writer_->finish();
    written_.push_back(writer_->path());
    ShardInfo info;
    info.path = writer_->path();
    info.tokenizer = tokenizer_.name();
    info.documents = writer_->documents();
    info.tokens = writer_->tokens();
    infos_.push_back(info);
    writer_.reset();
    summary_.shards += 1;
  }

  const PrepareOptions& options_;
  const Tokenizer& tokenizer_;
  std::unique_ptr<ShardWriter> writer_;
  std::vector<std::string> written_;
  std::vector<ShardInfo> infos_;
  PrepareSummary summary_;
  bool finished_ = false;
};

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  RRT_CHECK(in, path.string(), "cannot open: ", std::strerror(errno));
  std::string text;
  std::error_code error;
  const auto size = fs::file_size(path, error);
  if (!error) text.reserve(static_cast<size_t>(size));
  text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  RRT_CHECK(!in.bad(), path.string(), "read failed: ", std::strerror(errno));
  return text;
}

void add_jsonl(const fs::path& path, ShardSink& sink, Progress& progress) {
  std::ifstream in(path, std::ios::binary);
  RRT_CHECK(in, path.string(), "cannot open: ", std::strerror(errno));
  std::string line;
  int64_t line_number = 0;
  while (std::getline(in, line)) {
    ++line_number;
    progress.add_bytes(static_cast<int64_t>(line.size()) + 1, sink.summary());
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path.string() + ":" + std::to_string(line_number);
    nlohmann::json document;
    try {
      document = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      RRT_FAIL(where, "not valid JSON (", e.what(),
               "); each line of a .jsonl file must be one JSON object with a string field "
               "\"text\"");
    }
    const auto text = document.is_object() ? document.find("text") : document.end();
    RRT_CHECK(document.is_object() && text != document.end() && text->is_string(), where,
              "expected a JSON object with a string field \"text\"");
    sink.add_document(text->get_ref<const std::string&>(), where);
  }
  RRT_CHECK(!in.bad(), path.string(), "read failed: ", std::strerror(errno));
}

}  // namespace

PrepareSummary prepare_shards(const PrepareOptions& options) {
  const auto tokenizer = make_tokenizer(options.tokenizer);
  return prepare_shards(options, *tokenizer);
}

PrepareSummary prepare_shards(const PrepareOptions& options, const Tokenizer& tokenizer) {
  RRT_CHECK(!options.inputs.empty(), "prepare",
            "no inputs; give text files, .jsonl files or "
            "directories");
  RRT_CHECK(options.shard_tokens >= 1, "prepare", "shard_tokens must be positive, got ",
            options.shard_tokens);
  const std::vector<Source> sources = collect_sources(options.inputs);
  RRT_CHECK(!sources.empty(), options.inputs.front(),
            "no input files found; directories contribute *.txt, *.md, *.jsonl and files without "
            "an extension");
  check_output_directory(options.out_dir);

  mark_shard_set_incomplete(options.out_dir);
  Progress progress(options.progress);
  ShardSink sink(options, tokenizer);
  for (const Source& source : sources) {
    if (source.jsonl) {
      add_jsonl(source.path, sink, progress);
    } else {
      const std::string text = read_file(source.path);
      sink.add_document(text, source.path.string());
      progress.add_bytes(static_cast<int64_t>(text.size()), sink.summary());
    }
  }
  RRT_CHECK(sink.summary().documents > 0, options.inputs.front(),
            "the inputs hold no text (every document is empty)");
  PrepareSummary summary = sink.finish();
  progress.report("done: ", summary);
  return summary;
}

}  // namespace rrt
