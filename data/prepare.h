// Text -> token shards (`rrt prepare`). Rules in docs/data.md:
//   inputs       files and directories, in the order given. A directory contributes, recursively
//                and sorted by path, its *.txt, *.md, *.jsonl files and files without an
//                extension (hidden files and directories, named ".*", are skipped). A file named
//                explicitly is used whatever its extension.
//   documents    a .jsonl file holds one document per line (a JSON object with a string field
//                "text"; blank lines are skipped); any other file is one document. Empty
//                documents are skipped. Each document is encoded and followed by EOS.
//   shards       out_dir/shard_00000.h5, shard_00001.h5, ...: the token stream cut every
//                shard_tokens tokens (a document may continue in the next shard).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace rrt {

class Tokenizer;

struct PrepareOptions {
  std::vector<std::string> inputs;
  std::string out_dir;
  std::string tokenizer = "byte";  // "byte", a SentencePiece .model or a .gguf
  int64_t shard_tokens = 16 << 20;
  bool progress = true;  // a line to stderr every 8 MB of text read, and a final one
};

struct PrepareSummary {
  int64_t documents = 0, tokens = 0, shards = 0;
  std::string dtype;  // "uint16" or "uint32"
};

// Refuses an out_dir that already holds shards. On error, removes the shards it wrote.
PrepareSummary prepare_shards(const PrepareOptions& options);
// The same with a tokenizer the caller holds (options.tokenizer is ignored).
PrepareSummary prepare_shards(const PrepareOptions& options, const Tokenizer& tokenizer);

}  // namespace rrt
