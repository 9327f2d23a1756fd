// rrt prepare --out DIR [--tokenizer byte|FILE.model|tokenizer.json|FILE.gguf|HF-DIR]
//             [--shard-tokens N] INPUT...
#include <CLI/CLI.hpp>
#include <cstdio>

#include "cli/commands.h"
#include "data/prepare.h"

namespace rrt::cli {

void add_prepare_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("prepare", "Tokenise text into HDF5 token shards");
  auto o = std::make_shared<PrepareOptions>();
  auto quiet = std::make_shared<bool>(false);
  cmd->add_option("inputs", o->inputs,
                  "text files, directories (searched recursively) or .jsonl files with a "
                  "\"text\" field")
      ->required();
  cmd->add_option("--out", o->out_dir, "output directory for shard_NNNNN.h5 files")->required();
  cmd->add_option("--tokenizer", o->tokenizer,
                  "\"byte\" (256 bytes + EOS), a SentencePiece .model file, an HF "
                  "tokenizer.json, a .gguf file (its byte-level BPE tokenizer; also bpe:<path>) "
                  "or an HF checkpoint folder (its tokenizer.model, else its tokenizer.json)")
      ->capture_default_str();
  cmd->add_option("--shard-tokens", o->shard_tokens, "tokens per shard")->capture_default_str();
  cmd->add_flag("--quiet", *quiet, "no progress output");
  cmd->footer("Format and loader semantics: docs/data.md");
  cmd->callback([o, quiet] {
    o->progress = !*quiet;
    const PrepareSummary s = prepare_shards(*o);
    std::printf("prepared %ld documents, %ld tokens (%s) in %ld shard(s) under %s\n",
                static_cast<long>(s.documents), static_cast<long>(s.tokens), s.dtype.c_str(),
                static_cast<long>(s.shards), o->out_dir.c_str());
  });
}

}  // namespace rrt::cli
