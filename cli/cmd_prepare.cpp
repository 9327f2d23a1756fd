// rrt prepare --out DIR [--tokenizer byte|FILE.model|tokenizer.json|FILE.gguf|HF-DIR]
//             [--shard-tokens N] [--text-field NAME] [--threads N] [--skip-bad] [--quiet]
//             INPUT...
#include <CLI/CLI.hpp>
#include <cstdio>

#include "cli/commands.h"
#include "data/prepare.h"
#include "data/prepare_ranks.h"
#include "data/tokenizer.h"
#include "distributed/communicator.h"

namespace rrt::cli {

void add_prepare_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("prepare", "Tokenise text into HDF5 token shards");
  auto o = std::make_shared<PrepareOptions>();
  auto quiet = std::make_shared<bool>(false);
  cmd->add_option("inputs", o->inputs,
                  "files or directories (searched recursively): text, .jsonl, .jsonl.zst, "
                  ".jsonl.gz (also compressed text) and .parquet")
      ->required();
  cmd->add_option("--out", o->out_dir, "output directory for shard_NNNNN.h5 files")->required();
  cmd->add_option(
         "--tokenizer", o->tokenizer,
         "\"byte\" (256 bytes + EOS), a SentencePiece .model file, an HF "
         "tokenizer.json, a .gguf file (its byte-level BPE or SentencePiece tokenizer; also "
         "bpe:<path>) "
         "or an HF checkpoint folder (its tokenizer.model, else its tokenizer.json)")
      ->capture_default_str();
  cmd->add_option("--shard-tokens", o->shard_tokens, "tokens per shard")->capture_default_str();
  cmd->add_option("--text-field", o->text_field,
                  "the JSON field (.jsonl) or Parquet column that holds each document")
      ->capture_default_str();
  cmd->add_option("--threads", o->threads,
                  "tokenising threads (0: one per hardware thread); the shards are the same for "
                  "every count")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_flag("--skip-bad", o->skip_bad,
                "skip and count bad documents (invalid JSON or UTF-8, a missing field, an empty "
                "document) instead of stopping at the first");
  cmd->add_flag("--quiet", *quiet, "no progress output");
  cmd->footer(
      "A preparation that was interrupted resumes when run again with the same inputs and "
      "options. Under mpirun, ranks tokenise whole files each and write the same shard set as "
      "one process. Format, inputs and loader semantics: docs/data.md");
  cmd->callback([o, quiet] {
    o->progress = !*quiet;
    const std::unique_ptr<Communicator> comm = make_communicator();
    PrepareSummary s;
    if (comm->world_size() > 1) {
      // Under mpirun every rank tokenises whole files, then writes every W-th shard.
      PrepareRanks ranks;
      ranks.rank = comm->rank();
      ranks.world = comm->world_size();
      ranks.all_ok = [&comm](bool ok) {
        double failed = ok ? 0 : 1;
        comm->all_reduce_sum(&failed, 1);
        return failed == 0;
      };
      s = prepare_shards_on_ranks(*o, *make_tokenizer(o->tokenizer), ranks);
      if (!comm->is_root()) return;
    } else {
      s = prepare_shards(*o);
    }
    std::printf("prepared %ld documents, %ld tokens (%s) in %ld shard(s) under %s\n",
                static_cast<long>(s.documents), static_cast<long>(s.tokens), s.dtype.c_str(),
                static_cast<long>(s.shards), o->out_dir.c_str());
    for (const auto& [what, count] : s.skipped_documents)
      std::printf("skipped %ld document(s): %s (listed in %s/manifest.json)\n",
                  static_cast<long>(count), what.c_str(), o->out_dir.c_str());
  });
}

}  // namespace rrt::cli
