// Text -> token shards (`rrt prepare`). Rules in docs/data.md:
//   inputs       files and directories, in the order given (data/input_format.h): plain text,
//                .jsonl, gzip- or zstd-compressed text and .jsonl, and Parquet, each known by its
//                name and first bytes and streamed; a directory contributes every input file
//                under it (sorted by path) and reports what it skipped and why.
//   documents    a .jsonl line is a JSON object whose string field `text_field` is the document
//                (blank lines are not documents); a Parquet row's `text_field` column is one; any
//                other file is one document. A document must be non-empty valid UTF-8. Each is
//                encoded and followed by EOS.
//   bad input    a line that is not JSON, a missing field or a null, invalid UTF-8, an empty
//                document: an error naming file and line (or row), or with skip_bad skipped and
//                counted. Truncated or corrupt files are always errors.
//   shards       out_dir/shard_00000.h5, shard_00001.h5, ...: the token stream cut every
//                shard_tokens tokens (a document may continue in the next shard); identical for
//                every thread count.
//   resume       a preparation that was killed resumes from its last whole shard when run again
//                with the same inputs and options (out_dir/prepare_state.json).
//   ranks        under mpirun, ranks tokenise whole files each and then write shards each
//                (data/prepare_ranks.h): the same shard set as one process.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace rrt {

class Tokenizer;

struct PrepareOptions {
  std::vector<std::string> inputs;
  std::string out_dir;
  std::string tokenizer = "byte";  // "byte", a SentencePiece .model or a .gguf
  int64_t shard_tokens = 16 << 20;
  std::string text_field = "text";  // the JSON field or Parquet column holding the document
  bool skip_bad = false;  // skip (and count) bad documents instead of stopping at the first
  int threads = 0;        // tokenising threads; 0: one per hardware thread
  bool progress = true;   // a line to stderr every RRT_PROGRESS_SECONDS (5 s), and a final one
  // Called after each shard is committed and recorded (its index): the tests' way to kill a
  // preparation at an exact point.
  std::function<void(int64_t shard)> after_shard;
  // With several ranks (data/prepare_ranks.h): called after each input file's tokens are
  // committed as a part (the file's index).
  std::function<void(int64_t file)> after_part;
};

struct PrepareSummary {
  int64_t documents = 0, tokens = 0, shards = 0;
  std::string dtype;  // "uint16" or "uint32"
  int64_t input_files = 0;
  int64_t input_bytes = 0;    // bytes of the input files (compressed size for .zst/.gz)
  int64_t text_bytes = 0;     // bytes after decompression (for Parquet: the documents' bytes)
  int64_t skipped_files = 0;  // left out by directory walks (reported on stderr)
  // Documents skipped with skip_bad, by class: "invalid JSON", "missing field",
  // "invalid UTF-8", "empty document".
  std::map<std::string, int64_t> skipped_documents;
  bool resumed = false;  // continued an interrupted preparation
  double seconds = 0;
};

// Refuses an out_dir that already holds a complete shard set, or an unfinished one of other
// inputs or options; resumes an unfinished one of the same. On error, removes every shard of
// the set, so nothing half-made is left.
PrepareSummary prepare_shards(const PrepareOptions& options);
// The same with a tokenizer the caller holds (options.tokenizer is ignored).
PrepareSummary prepare_shards(const PrepareOptions& options, const Tokenizer& tokenizer);

}  // namespace rrt
