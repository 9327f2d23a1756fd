// rrt serve-bench CHECKPOINT [--requests N] [--prompt-len A[-B]] [--output-len A[-B]]
//                 [--data DIR | --tokens FILE | --random-prompts] [--exits none,oracle,...]
//                 [--schedulers static,sequence,depth] [--kv propagate|recompute|copy] [--device
//                 cpu|cuda]
//                 [--max-batch N] [--repeats R] [--seed S] [--arrival-rate R] [--json]
//                 [--exit-classifier FILE]
// Throughput of static, continuous sequence-wise and continuous depth-wise batching over one
// engine, per exit setting, beside the paper-style theoretical gain (docs/inference.md).
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "checkpoint/checkpoint_config.h"
#include "checkpoint/model_source.h"
#include "cli/commands.h"
#include "config/config_io.h"
#include "core/error.h"
#include "inference/exit_classifier.h"
#include "inference/load.h"
#include "inference/serve_bench.h"

namespace rrt::cli {

namespace {

// "A" or "A-B" -> [A, B].
std::pair<int64_t, int64_t> parse_range(const std::string& s, const char* what) {
  const size_t dash = s.find('-');
  try {
    const int64_t a = std::stoll(s.substr(0, dash));
    const int64_t b = dash == std::string::npos ? a : std::stoll(s.substr(dash + 1));
    RRT_CHECK(a >= 1 && b >= a, "serve-bench", what, " needs 1 <= A <= B, got ", s);
    return {a, b};
  } catch (const std::logic_error&) {
    throw Error("serve-bench", std::string(what) + " takes A or A-B (token counts), got " + s);
  }
}

// One request per non-empty line: the prompt's token ids, separated by spaces.
std::vector<std::vector<int32_t>> read_token_file(const std::string& path) {
  std::ifstream f(path);
  RRT_CHECK(f.good(), "serve-bench", "cannot read the token file ", path);
  std::vector<std::vector<int32_t>> out;
  std::string line;
  while (std::getline(f, line)) {
    std::istringstream in(line);
    std::vector<int32_t> ids;
    int64_t id;
    while (in >> id) ids.push_back(static_cast<int32_t>(id));
    if (!ids.empty()) out.push_back(std::move(ids));
  }
  RRT_CHECK(!out.empty(), "serve-bench", "the token file ", path, " holds no prompt");
  return out;
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

}  // namespace

void add_serve_bench_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "serve-bench",
      "Throughput, latency, mean loops and agreement with full-depth decoding of static, "
      "sequence-wise and depth-wise batching per exit setting, with the theoretical gain "
      "(docs/inference.md)");
  struct Opts {
    std::string checkpoint, data, tokens, exit_classifier, prompt_len = "16-64",
                                                           output_len = "16-64";
    std::string exits = "none,oracle,confidence:0.9,confidence:0.6";
    std::string schedulers = "static,sequence,depth", kv = "propagate", device = "cpu",
                precision = "auto";
    int64_t requests = 32, max_batch = 8;
    int repeats = 3;
    uint64_t seed = 1;
    double arrival_rate = 0;
    bool random_prompts = false, json = false, verbose = false;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("checkpoint", o->checkpoint,
                  "an rrt checkpoint (step_XXXXXXXX.h5), an HF model directory (config.json) or a "
                  ".gguf file (read as its plain model)")
      ->required();
  cmd->add_option("--requests", o->requests, "requests in the workload")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--prompt-len", o->prompt_len,
                  "prompt tokens: A, or A-B for uniform in [A, B] (default 16-64)");
  cmd->add_option("--output-len", o->output_len,
                  "generated tokens per request: A or A-B (default 16-64)");
  cmd->add_option("--data", o->data,
                  "token shards whose validation split gives the prompts (default: the run's "
                  "data.path when it exists)");
  cmd->add_option("--tokens", o->tokens,
                  "a file of prompts as token ids, one request per line (lengths from the "
                  "file; --requests takes the first lines, cycling)")
      ->check(CLI::ExistingFile);
  cmd->add_flag("--random-prompts", o->random_prompts, "random token ids as prompts");
  cmd->add_option("--exits", o->exits,
                  "exit settings, comma-separated: none, oracle, confidence:T, saturation:T (a "
                  "cosine similarity of successive loops' normed states), classifier:T (the "
                  "learned exit classifier's probability, --exit-classifier), drawn:P1,...,PK "
                  "(each token's exit loop drawn with these probabilities) (default "
                  "none,oracle,confidence:0.9,confidence:0.6)");
  cmd->add_option("--exit-classifier", o->exit_classifier,
                  "the exit classifier of this checkpoint (rrt exit-classifier train) for "
                  "classifier:T settings")
      ->check(CLI::ExistingFile);
  cmd->add_option("--schedulers", o->schedulers, "static, sequence, depth (comma-separated)");
  cmd->add_option("--device", o->device, "engine: cpu or cuda (a GPU; a CUDA build)")
      ->check(CLI::IsMember({"cpu", "cuda"}));
  cmd->add_option("--precision", o->precision,
                  "arithmetic: auto (fp32 on cpu, bf16 on cuda), fp32, or bf16 (on cpu: bf16 "
                  "weights, states and KV cache; needs AVX512_BF16 or AMX)")
      ->check(CLI::IsMember({"auto", "fp32", "bf16"}));
  cmd->add_option("--kv", o->kv, "KV of skipped loops: propagate, recompute or copy")
      ->check(CLI::IsMember({"propagate", "recompute", "copy"}));
  cmd->add_option("--max-batch", o->max_batch, "sequences in flight = rows per engine call")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--repeats", o->repeats, "runs of every setting; medians are reported")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--seed", o->seed, "workload seed");
  cmd->add_flag("--json", o->json, "print JSON instead of the Markdown table");
  cmd->add_option("--arrival-rate", o->arrival_rate,
                  "requests per second of a Poisson arrival process (default 0: all requests "
                  "waiting at the start, an offline batch)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_flag("--verbose", o->verbose, "one line per run on standard error");
  cmd->callback([o] {
    const CheckpointContents header = read_model_source_header(o->checkpoint);
    const RunConfig cfg = checkpoint_run_config(header, o->checkpoint + " (/config)");
    inference::WorkloadOptions w;
    w.requests = o->requests;
    std::tie(w.prompt_min, w.prompt_max) = parse_range(o->prompt_len, "--prompt-len");
    std::tie(w.output_min, w.output_max) = parse_range(o->output_len, "--output-len");
    w.seed = o->seed;
    w.arrival_rate = o->arrival_rate;
    w.val_fraction = cfg.data.val_fraction;
    w.data_seed = cfg.data.seed;
    if (!o->random_prompts && o->tokens.empty()) {
      w.data_path = o->data.empty() ? cfg.data.path : o->data;
      if (o->data.empty() && !std::filesystem::exists(w.data_path)) {
        std::fprintf(stderr, "serve-bench: the run's data %s is not here; random prompts\n",
                     w.data_path.c_str());
        w.data_path.clear();
      }
    }
    inference::Workload work = inference::make_workload(w, cfg.model.model.vocab);
    if (!o->tokens.empty()) {
      const auto prompts = read_token_file(o->tokens);
      for (size_t r = 0; r < work.requests.size(); ++r)
        work.requests[r].prompt = prompts[r % prompts.size()];
      work.description =
          std::to_string(work.requests.size()) + " requests, prompts from " + o->tokens +
          ", output " + o->output_len + " tokens (seed " + std::to_string(o->seed) + ")" +
          (o->arrival_rate > 0
               ? ", Poisson arrivals at " + std::to_string(o->arrival_rate) + " requests/s"
               : "");
    }
    int64_t max_seq = 0;
    for (const auto& q : work.requests)
      max_seq =
          std::max<int64_t>(max_seq, static_cast<int64_t>(q.prompt.size()) + q.max_new_tokens);
    inference::ServedModel m = inference::load_served_model(
        o->checkpoint, inference::capacity_for_batch(o->max_batch, max_seq), "none", o->device,
        o->precision);
    inference::BenchOptions b;
    b.schedulers.clear();
    for (const std::string& s : split(o->schedulers))
      b.schedulers.push_back(inference::parse_batching(s));
    b.exits = inference::parse_exit_settings(o->exits);
    std::unique_ptr<inference::ExitClassifier> classifier;
    if (!o->exit_classifier.empty()) {
      classifier = std::make_unique<inference::ExitClassifier>(inference::load_exit_classifier(
          o->exit_classifier,
          inference::model_identity(m.checkpoint.config.model, *m.checkpoint.params)));
      b.classifier = classifier.get();
    }
    for (const inference::ExitSetting& e : b.exits)
      RRT_CHECK(e.rule != inference::ExitRule::classifier || b.classifier, "serve-bench",
                "the exit setting ", e.label(),
                " needs --exit-classifier FILE (rrt exit-classifier train)");
    b.fill = inference::parse_kv_fill(o->kv);
    b.max_batch = o->max_batch;
    b.repeats = o->repeats;
    b.verbose = o->verbose;
    const inference::BenchReport r = inference::run_serve_bench(*m.engine, work, b);
    if (o->json)
      std::printf("%s\n", inference::bench_json(r).c_str());
    else
      std::printf("Checkpoint %s (step %ld, %ld loops).\n%s", o->checkpoint.c_str(),
                  static_cast<long>(header.state.step), static_cast<long>(r.loops),
                  inference::bench_markdown(r).c_str());
  });
}

}  // namespace rrt::cli
