// rrt convert --from HF_DIR|FILE.gguf|CHECKPOINT.h5 --loops K [--sharing cycle|sequence]
//             [--init RULE] [--lora-rank R|full] [--lora-init svd|svd_balanced|zero]
//             [--per-loop-norms]
//             [--score SHARDS|TEXT [--score-batches N] [--score-seq-len T]
//              [--score-micro-batch N] [--score-val-fraction F]] --out FILE.h5
// HF_DIR holds a LlamaForCausalLM, GemmaForCausalLM or GPTNeoXForCausalLM checkpoint; a .gguf
// file (llama.cpp's format: llama, qwen2, gemma, gemma3) is read through model/gguf_import.h, and
// an rrt checkpoint of a plain model (loops 1, no LoRA) through its stored run config, whose
// data and training settings the written config keeps.
// Writes a weights-only rrt checkpoint of the recursive / relaxed model, plus FILE.yaml: a run
// config whose model sections describe it and whose train.init_from points at it. With --score,
// the original and the converted model (per exit) are scored on the same tokens (FILE.score.json).
#include "cli/cmd_convert.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>

#include "checkpoint/checkpoint.h"
#include "checkpoint/model_source.h"
#include "cli/commands.h"
#include "cli/convert_score.h"
#include "config/config_io.h"
#include "core/durable_file.h"
#include "core/error.h"
#include "core/progress.h"
#include "data/tokenizer.h"
#include "model/convert.h"
#include "model/gguf_import.h"
#include "model/hf_import.h"

namespace rrt::cli {

namespace {

// "full" is the largest min(in, out) of any projection: ranks are capped per projection
// (ModelSpec::lora_rank), so it gives every projection its full rank.
int64_t parse_rank(const std::string& text, const ModelConfig& m, const char* option) {
  if (text == "full") {
    int64_t full = 0;
    for (int p = 0; p < kNumProj; ++p) {
      auto [out, in] = proj_shape(m, static_cast<Proj>(p));
      if (m.has_proj(static_cast<Proj>(p))) full = std::max(full, std::min(out, in));
    }
    return full;
  }
  size_t used = 0;
  int64_t r = -1;
  try {
    r = std::stoll(text, &used);
  } catch (const std::exception&) {
  }
  RRT_CHECK(used == text.size() && r >= 0, option, "expected a rank >= 0 or 'full', got '", text,
            "'");
  return r;
}

}  // namespace

void run_convert(const ConvertOpts& o) {
  const auto t0 = std::chrono::steady_clock::now();
  std::printf("reading %s\n", o.from.c_str());
  std::fflush(stdout);
  namespace fs = std::filesystem;
  const ModelSourceKind kind = model_source_kind(o.from, "--from");
  const bool gguf = kind == ModelSourceKind::gguf;
  const bool rrt_checkpoint = kind == ModelSourceKind::checkpoint;
  HfModel hf;
  RunConfig from_run;  // an rrt checkpoint's own run config: its data and training carry over
  // Progress of each stage on stderr (stdout keeps the lines scripts read); the heartbeats
  // speak up only when a stage takes longer than RRT_PROGRESS_SECONDS (10 s).
  auto stage_done = [](const char* what, ProgressClock::time_point since) {
    std::fprintf(stderr, "convert: %s in %s\n", what,
                 format_duration(seconds_since(since)).c_str());
    std::fflush(stderr);
  };
  std::optional<Heartbeat> beat;
  beat.emplace("convert: reading " + o.from);
  if (rrt_checkpoint) {
    CheckpointModel m = load_checkpoint_model(o.from);
    from_run = m.config;
    // Not the original's run directory (a run there would resume the original), nor its
    // teacher or exits: those belong to the model it was.
    from_run.train.run_dir = RunConfig{}.train.run_dir;
    from_run.distill = {};
    from_run.early_exit = {};
    hf.spec = m.config.model;
    hf.params = std::move(m.params);
  } else {
    if (!gguf) refuse_incomplete_output(o.from, "export", "export it again (rrt export)");
    hf = gguf ? load_gguf_model(o.from) : load_hf_model(o.from);
  }
  beat.reset();
  stage_done("read the source", t0);
  ConvertOptions c;
  c.loops = o.loops;
  c.sharing = o.sharing == "sequence" ? Sharing::sequence : Sharing::cycle;
  c.init = parse_init_rule(o.init);
  const ModelConfig& m = hf.spec.model;
  c.rank_attention =
      parse_rank(o.rank_attention.empty() ? o.rank : o.rank_attention, m, "--lora-rank-attention");
  c.rank_mlp = parse_rank(o.rank_mlp.empty() ? o.rank : o.rank_mlp, m, "--lora-rank-mlp");
  c.lora_init = parse_lora_init(o.lora_init);
  c.seed = o.seed;
  c.per_loop_norms = o.per_loop_norms;
  std::printf(
      "converting %s: %ld layers into %ld loops (%s sharing, %s init, LoRA rank %ld/%ld, "
      "%s%s)\n",
      to_string(m.family).c_str(), static_cast<long>(hf.spec.positions()),
      static_cast<long>(c.loops), o.sharing.c_str(), o.init.c_str(),
      static_cast<long>(c.rank_attention), static_cast<long>(c.rank_mlp), o.lora_init.c_str(),
      o.per_loop_norms ? ", per-loop norms" : "");
  std::fflush(stdout);
  const auto t_convert = ProgressClock::now();
  beat.emplace(std::string("convert: converting") +
               (c.lora_init != LoraInit::zero && (c.rank_attention > 0 || c.rank_mlp > 0)
                    ? " (truncated SVD of every tied layer)"
                    : ""));
  // A line per block layer and per position's SVDs, every RRT_PROGRESS_SECONDS (10 s).
  std::optional<ProgressMeter> meter;
  c.progress = [&meter](int64_t done, int64_t total, const std::string& what) {
    if (!meter) meter.emplace("convert", total);
    meter->step(done, what);
  };
  Converted out = convert_to_recursive(hf.spec, *hf.params, c);
  beat.reset();
  stage_done("converted", t_convert);
  RunConfig run = from_run;
  run.model = out.spec;
  run.model.model.n_layers = hf.spec.positions();
  run.train.init_from = o.out;
  // Training defaults that fit the converted model: sequences no longer than it allows, and
  // the checkpoint's own SentencePiece tokenizer when there is one (or its vocab needs one).
  run.train.seq_len = std::min<int64_t>(run.train.seq_len, run.model.model.max_seq_len);
  // The tokenizer travels with the model: a GGUF file carries its own (BPE); an HF directory
  // holds a SentencePiece tokenizer.model or a tokenizers tokenizer.json (read here, so a file
  // rrt cannot run, or one that does not fit the model, fails now and not at training).
  // The choice is checkpoint/model_source.h's, shared by every command that opens an HF
  // directory or a GGUF file.
  const SourceTokenizer chosen = source_tokenizer(o.from, kind, run.model.model.vocab);
  if (chosen.kind == SourceTokenizer::Kind::gguf) {
    // Byte-level BPE ("gpt2") or SentencePiece ("llama") metadata: read now, so a vocabulary
    // rrt cannot run is said here (the weights are still worth converting: a warning).
    run.data.tokenizer = chosen.path;
    try {
      const auto tok = make_tokenizer(run.data.tokenizer);
      check_tokenizer_fits_model(*tok, run.model.model.vocab, "convert " + o.from);
      std::printf("tokenizer: %s (%ld tokens, EOS %d)\n", run.data.tokenizer.c_str(),
                  static_cast<long>(tok->vocab_size()), tok->eos_id());
    } catch (const Error& e) {
      std::printf(
          "warning: rrt cannot use the tokenizer of %s (%s); set data.tokenizer to the model's "
          "tokenizer.json or tokenizer.model before preparing data\n",
          o.from.c_str(), e.what());
    }
  } else if (chosen.kind == SourceTokenizer::Kind::sentencepiece) {
    run.data.tokenizer = chosen.path;
  } else if (chosen.kind == SourceTokenizer::Kind::tokenizer_json) {
    run.data.tokenizer = chosen.path;
    const auto tok = make_tokenizer(run.data.tokenizer);
    check_tokenizer_fits_model(*tok, run.model.model.vocab, "convert " + chosen.path);
    std::printf("tokenizer: %s (%ld tokens, EOS %d)\n", run.data.tokenizer.c_str(),
                static_cast<long>(tok->vocab_size()), tok->eos_id());
  } else if (!rrt_checkpoint) {
    std::printf(
        "warning: %s holds no tokenizer.model or tokenizer.json; data.tokenizer stays "
        "'%s'. Set it to the model's tokenizer before preparing data (training refuses "
        "shards whose vocabulary does not fit the model's %ld tokens)\n",
        o.from.c_str(), run.data.tokenizer.c_str(), static_cast<long>(run.model.model.vocab));
  }  // an rrt checkpoint keeps its data.tokenizer
  const std::string yaml = to_yaml(run);
  const std::filesystem::path parent = std::filesystem::path(o.out).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent);
  const auto t_write = ProgressClock::now();
  beat.emplace("convert: writing " + o.out);
  save_checkpoint(o.out, yaml, *out.params, nullptr, {});
  beat.reset();
  stage_done("wrote the checkpoint", t_write);
  const std::string yaml_path = o.out.substr(0, o.out.rfind('.')) + ".yaml";
  std::ofstream(yaml_path) << "# Written by rrt convert from " << o.from
                           << ". Set data.path, then: rrt train " << yaml_path << "\n"
                           << yaml;
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!o.score.empty()) {
    // Before the last line, which scripts read; its seconds are the conversion's alone.
    const std::string stem = o.out.substr(0, o.out.rfind('.'));
    ScoreOptions so;
    so.path = o.score;
    so.batches = o.score_batches;
    so.seq_len = o.score_seq_len;
    so.micro_batch = o.score_micro_batch;
    so.val_fraction = o.score_val_fraction;
    so.tokenizer = run.data.tokenizer == "byte" || fs::exists(run.data.tokenizer)
                       ? run.data.tokenizer
                       : std::string();
    so.text_shards = stem + ".score_shards";
    so.data_seed = run.data.seed;
    if (run.train.device != "cpu") so.eval_overrides += " train.device=cpu";
    if (run.train.precision == "bf16") so.eval_overrides += " train.precision=fp32";
    const auto t_score = ProgressClock::now();
    beat.emplace("convert: scoring the original and the converted model");
    const ConversionScore score = score_conversion(hf.spec, *hf.params, out.spec, *out.params, so);
    beat.reset();
    stage_done("scored both models", t_score);
    std::printf("%s", conversion_score_text(score, o.out).c_str());
    write_file_atomically(stem + ".score.json", conversion_score_json(score) + "\n");
  }
  std::printf("wrote %s (%.2f M parameters, was %.2f M) and %s in %.1f s\n", o.out.c_str(),
              out.params->registry().total_numel() / 1e6, hf.params->registry().total_numel() / 1e6,
              yaml_path.c_str(), secs);
}

void add_convert_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "convert",
      "Convert an HF Llama, Gemma, GPT-NeoX, Qwen2, Qwen3, Gemma 3 or Gemma 2 checkpoint (or a "
      "plain rrt "
      "checkpoint) into a recursive or relaxed rrt checkpoint");
  auto o = std::make_shared<ConvertOpts>();
  cmd->add_option("--from", o->from,
                  "HF model directory (config.json + safetensors), a .gguf file, or an rrt "
                  "checkpoint (.h5) of a plain model")
      ->required()
      ->check(CLI::ExistingPath);
  cmd->add_option("--out", o->out, "output checkpoint (.h5); FILE.yaml is written beside it")
      ->required();
  cmd->add_option("--loops", o->loops, "K: loops of the shared block (must divide the layers)")
      ->capture_default_str();
  cmd->add_option("--sharing", o->sharing, "cycle or sequence")
      ->check(CLI::IsMember({"cycle", "sequence"}))
      ->capture_default_str();
  cmd->add_option("--init", o->init, "how the block is initialised from the original layers")
      ->check(CLI::IsMember(init_rule_names()))
      ->capture_default_str();
  cmd->add_option("--lora-rank", o->rank,
                  "LoRA rank of every projection (0: pure recursive; full: min(in, out) of each; "
                  "larger ranks are capped there)")
      ->capture_default_str();
  cmd->add_option("--lora-rank-attention", o->rank_attention, "rank of q, k, v, o (overrides)");
  cmd->add_option("--lora-rank-mlp", o->rank_mlp, "rank of gate, up, down (overrides)");
  cmd->add_flag("--per-loop-norms", o->per_loop_norms,
                "keep every position's own norms (and NeoX biases) instead of tying them; with "
                "full rank the result then equals the original exactly");
  cmd->add_option("--lora-init", o->lora_init,
                  "svd: truncated SVD of what tying lost, B = U S, A = V^T (the paper's); "
                  "svd_balanced: the same product, sqrt(S) in each; zero: B = 0, A random")
      ->check(CLI::IsMember(lora_init_names()))
      ->capture_default_str();
  cmd->add_option("--score", o->score,
                  "after writing, score the original and the converted model (every exit) on "
                  "these token shards, or on this text (tokenised with the model's tokenizer "
                  "into FILE.score_shards); prints both perplexities and writes FILE.score.json")
      ->check(CLI::ExistingPath);
  cmd->add_option("--score-batches", o->score_batches, "micro-batches scored")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--score-seq-len", o->score_seq_len, "tokens per scored sequence")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--score-micro-batch", o->score_micro_batch, "sequences per micro-batch")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option(
         "--score-val-fraction", o->score_val_fraction,
         "the scored validation split: this last fraction of the tokens (data.val_fraction)")
      ->check(CLI::Range(0.0, 0.999))
      ->capture_default_str();
  cmd->add_option("--seed", o->seed, "seed for random init / zero-LoRA A")->capture_default_str();
  cmd->callback([o] { run_convert(*o); });
}

}  // namespace rrt::cli
