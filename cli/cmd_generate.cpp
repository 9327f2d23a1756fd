// rrt generate CHECKPOINT [--prompt TEXT]... [--prompts FILE|-] [--max-new-tokens N]
//              [--temperature T] [--top-p P] [--seed S]
//              [--exit none|oracle|confidence|saturation|classifier] [--threshold T]
//              [--exit-classifier FILE] [--kv propagate|recompute|copy] [--device cpu|cuda]
//              [--batching depth|sequence|static]
//              [--max-batch N] [--ignore-eos] [--tokenizer SPEC] [--json]
// Text generation with early exit over the inference engine (docs/inference.md): prints each
// prompt's continuation and the loop every generated token exited at.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "checkpoint/checkpoint_config.h"
#include "checkpoint/model_source.h"
#include "cli/commands.h"
#include "config/config_io.h"
#include "core/error.h"
#include "inference/exit_classifier.h"
#include "inference/generate.h"
#include "inference/load.h"

namespace rrt::cli {

namespace {

std::vector<std::string> read_prompt_lines(std::istream& in) {
  std::vector<std::string> out;
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) out.push_back(line);
  return out;
}

// A token's text with control characters visible, for the per-token exit listing.
std::string visible(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '\n')
      out += "\\n";
    else if (c == '\t')
      out += "\\t";
    else
      out += c;
  }
  return out;
}

}  // namespace

void add_generate_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "generate",
      "Generate text from a checkpoint with early exit and depth-wise batching; prints the text "
      "and the loop each token exited at (docs/inference.md)");
  struct Opts {
    std::string checkpoint, prompts_file, exit_classifier,
        exit = "none", kv = "propagate", device = "cpu", precision = "auto", batching = "depth",
        tokenizer;
    std::vector<std::string> prompts;
    int64_t max_new = 64, max_batch = 8;
    double temperature = 0, top_p = 1, threshold = 0.9;
    uint64_t seed = 1;
    bool ignore_eos = false, json = false;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("checkpoint", o->checkpoint,
                  "an rrt checkpoint (step_XXXXXXXX.h5), an HF model directory (config.json) or a "
                  ".gguf file (read as its plain model)")
      ->required();
  cmd->add_option("--prompt", o->prompts, "a prompt (repeatable)");
  cmd->add_option("--prompts", o->prompts_file,
                  "a file of prompts, one per line ('-': standard input; the default when no "
                  "--prompt is given)");
  cmd->add_option("--max-new-tokens", o->max_new, "tokens to generate per prompt")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--temperature", o->temperature, "0: greedy (default)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--top-p", o->top_p, "nucleus sampling: keep the most likely tokens up to p")
      ->check(CLI::Range(1e-9, 1.0));
  cmd->add_option("--seed", o->seed, "sampling seed");
  cmd->add_option("--exit", o->exit,
                  "exit rule: none, confidence (the first loop whose max probability reaches "
                  "--threshold), saturation (the first loop whose state, through the final norm, "
                  "has a cosine similarity above --threshold with the previous loop's), "
                  "classifier (the first loop whose learned exit classifier, "
                  "--exit-classifier, gives a probability of agreeing with the full depth of at "
                  "least --threshold) or oracle (measurement: decodes at full depth first to "
                  "find each token's earliest agreeing loop, then replays those exits)")
      ->check(CLI::IsMember({"none", "oracle", "confidence", "saturation", "classifier"}));
  cmd->add_option("--threshold", o->threshold,
                  "confidence or classifier threshold (a probability, 0..1) or saturation "
                  "threshold (a cosine similarity, -1..1)")
      ->check(CLI::Range(-1.0, 1.0));
  cmd->add_option("--exit-classifier", o->exit_classifier,
                  "the exit classifier of this checkpoint (rrt exit-classifier train) for "
                  "--exit classifier")
      ->check(CLI::ExistingFile);
  cmd->add_option("--device", o->device, "engine: cpu or cuda (a GPU; a CUDA build)")
      ->check(CLI::IsMember({"cpu", "cuda"}));
  cmd->add_option("--precision", o->precision,
                  "arithmetic: auto (fp32 on cpu, bf16 on cuda), fp32, or bf16 (on cpu: bf16 "
                  "weights, states and KV cache; needs AVX512_BF16 or AMX)")
      ->check(CLI::IsMember({"auto", "fp32", "bf16"}));
  cmd->add_option("--kv", o->kv,
                  "how an early-exited token's skipped KV is filled: propagate (k and v "
                  "projections of the exited state), recompute (run the skipped loops after "
                  "emitting), copy (the last computed loop's KV)")
      ->check(CLI::IsMember({"propagate", "recompute", "copy"}));
  cmd->add_option("--batching", o->batching, "scheduler: depth, sequence or static")
      ->check(CLI::IsMember({"depth", "sequence", "static"}));
  cmd->add_option("--max-batch", o->max_batch, "sequences (and rows per engine call) at once")
      ->check(CLI::PositiveNumber);
  cmd->add_flag("--ignore-eos", o->ignore_eos, "keep generating after the end-of-text token");
  cmd->add_option("--tokenizer", o->tokenizer,
                  "tokenizer: a tokenizer.json, SentencePiece .model, .gguf or HF checkpoint "
                  "folder (default: the run's data.tokenizer)");
  cmd->add_flag("--json", o->json, "one JSON object per prompt instead of text");
  cmd->callback([o] {
    std::vector<std::string> texts = o->prompts;
    if (!o->prompts_file.empty() || texts.empty()) {
      if (o->prompts_file.empty() || o->prompts_file == "-") {
        const auto lines = read_prompt_lines(std::cin);
        texts.insert(texts.end(), lines.begin(), lines.end());
      } else {
        std::ifstream f(o->prompts_file);
        RRT_CHECK(f.good(), "generate", "cannot read the prompts file ", o->prompts_file);
        const auto lines = read_prompt_lines(f);
        texts.insert(texts.end(), lines.begin(), lines.end());
      }
    }
    RRT_CHECK(!texts.empty(), "generate",
              "no prompt: give --prompt, --prompts FILE or lines on "
              "standard input");
    // The tokenizer first, to size the KV cache for the longest prompt.
    const CheckpointContents header = read_model_source_header(o->checkpoint);
    const RunConfig cfg = checkpoint_run_config(header, o->checkpoint + " (/config)");
    std::unique_ptr<Tokenizer> tok =
        make_tokenizer(o->tokenizer.empty() ? cfg.data.tokenizer : o->tokenizer);
    check_tokenizer_fits_model(*tok, cfg.model.model.vocab, "generate");
    std::vector<inference::Request> reqs;
    int64_t longest = 0;
    for (const std::string& t : texts) {
      inference::Request q;
      q.prompt = tok->encode(t);
      RRT_CHECK(!q.prompt.empty(), "generate", "the prompt '", t, "' encodes to no token");
      q.max_new_tokens = o->max_new;
      longest = std::max<int64_t>(longest, static_cast<int64_t>(q.prompt.size()));
      reqs.push_back(std::move(q));
    }
    const int64_t max_seq = longest + o->max_new;
    RRT_CHECK(max_seq <= cfg.model.model.max_seq_len, "generate", "the longest prompt (", longest,
              " tokens) plus ", o->max_new, " new tokens exceed the model's max_seq_len ",
              cfg.model.model.max_seq_len);
    inference::ServedModel m = inference::load_served_model(
        o->checkpoint, inference::capacity_for_batch(o->max_batch, max_seq), "none", o->device,
        o->precision);
    inference::GenerateOptions g;
    g.batching = inference::parse_batching(o->batching);
    g.max_batch = o->max_batch;
    g.sampling = {o->temperature, o->top_p, o->seed};
    g.stop_token = o->ignore_eos ? -1 : tok->eos_id();
    g.exit.fill = inference::parse_kv_fill(o->kv);
    g.exit.threshold = o->threshold;
    g.exit.rule = o->exit == "confidence"   ? inference::ExitRule::confidence
                  : o->exit == "saturation" ? inference::ExitRule::saturation
                  : o->exit == "classifier" ? inference::ExitRule::classifier
                  : o->exit == "oracle"     ? inference::ExitRule::oracle
                                            : inference::ExitRule::none;
    RRT_CHECK((g.exit.rule != inference::ExitRule::confidence &&
               g.exit.rule != inference::ExitRule::classifier) ||
                  o->threshold >= 0,
              "generate", "a ", o->exit, " threshold is a probability in [0, 1], got ",
              o->threshold);
    RRT_CHECK(g.exit.rule != inference::ExitRule::classifier || !o->exit_classifier.empty(),
              "generate",
              "--exit classifier needs --exit-classifier FILE (rrt exit-classifier train)");
    std::unique_ptr<inference::ExitClassifier> classifier;
    if (!o->exit_classifier.empty()) {
      classifier = std::make_unique<inference::ExitClassifier>(inference::load_exit_classifier(
          o->exit_classifier,
          inference::model_identity(m.checkpoint.config.model, *m.checkpoint.params)));
      g.exit.classifier = classifier.get();
    }
    std::vector<std::vector<int32_t>> oracle;
    if (g.exit.rule == inference::ExitRule::oracle) {
      inference::GenerateOptions full = g;
      full.exit.rule = inference::ExitRule::none;
      full.record_oracle = true;
      for (const inference::Completion& c : inference::generate(*m.engine, reqs, full))
        oracle.push_back(c.oracle_loops);
      g.exit.oracle_loops = &oracle;
    }
    inference::RunStats stats;
    const std::vector<inference::Completion> out = inference::generate(*m.engine, reqs, g, &stats);
    for (size_t i = 0; i < out.size(); ++i) {
      const inference::Completion& c = out[i];
      if (o->json) {
        nlohmann::ordered_json j{{"prompt", texts[i]},
                                 {"text", tok->decode(c.tokens)},
                                 {"tokens", c.tokens},
                                 {"exit_loops", c.exit_loops}};
        std::printf("%s\n", j.dump().c_str());
        continue;
      }
      std::printf("[%zu] %s%s\n", i + 1, texts[i].c_str(), tok->decode(c.tokens).c_str());
      std::printf("exits:");
      for (size_t t = 0; t < c.tokens.size(); ++t)
        std::printf(" %s@%d", visible(tok->decode({c.tokens[t]})).c_str(), c.exit_loops[t]);
      std::printf("\n\n");
    }
    std::fprintf(stderr,
                 "%ld tokens in %.2f s (%.1f tokens/s), %s batching, exit %s, mean loops %.2f of "
                 "%ld per token after the first\n",
                 static_cast<long>(stats.generated), stats.seconds,
                 static_cast<double>(stats.generated) / stats.seconds, o->batching.c_str(),
                 o->exit.c_str(), stats.mean_loops(), static_cast<long>(m.engine->stages()));
  });
}

}  // namespace rrt::cli
