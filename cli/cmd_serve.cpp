// rrt serve CHECKPOINT [--host H] [--port P] [--scheduler depth|sequence|static]
//           [--kv propagate|recompute|copy] [--max-batch N] [--max-queue N] [--max-tokens N]
//           [--context N] [--device cpu|cuda] [--precision auto|fp32|bf16] [--tokenizer SPEC]
//           [--model-name NAME] [--exit-classifier FILE]
// An OpenAI-compatible completions server over the inference engine (docs/inference.md,
// "rrt serve"); runs until SIGINT or SIGTERM, then ends every request and exits 0.
#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "cli/commands.h"
#include "core/error.h"
#include "inference/exit_classifier.h"
#include "inference/load.h"
#ifdef RRT_HAVE_HTTPLIB
#include "serve/server.h"
#endif

namespace rrt::cli {

void add_serve_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "serve",
      "Serve a checkpoint over HTTP with the OpenAI completions API (POST /v1/completions, "
      "GET /v1/models, /health, /metrics), early exits and continuous depth-wise batching "
      "(docs/inference.md)");
  struct Opts {
    std::string checkpoint, host = "127.0.0.1", scheduler = "depth", kv = "propagate",
                            device = "cpu", precision = "auto", tokenizer, model_name,
                            exit_classifier;
    int port = 8000;
    int64_t max_batch = 8, max_queue = 64, max_tokens = 0, context = 0;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("checkpoint", o->checkpoint,
                  "an rrt checkpoint (step_XXXXXXXX.h5), an HF model directory (config.json) or a "
                  ".gguf file (read as its plain model)")
      ->required();
  cmd->add_option("--host", o->host, "address to listen on (0.0.0.0: every interface)");
  cmd->add_option("--port", o->port, "port (0: any free one, printed at start)")
      ->check(CLI::Range(0, 65535));
  cmd->add_option("--scheduler", o->scheduler,
                  "depth (continuous depth-wise), sequence (continuous sequence-wise) or static")
      ->check(CLI::IsMember({"depth", "sequence", "static"}));
  cmd->add_option("--kv", o->kv, "how an early-exited token's skipped KV is filled")
      ->check(CLI::IsMember({"propagate", "recompute", "copy"}));
  cmd->add_option("--max-batch", o->max_batch, "sequences in flight (rows per engine call)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--max-queue", o->max_queue,
                  "prompts that may wait for a slot; more are answered 429")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--max-tokens", o->max_tokens,
                  "the most tokens a request may ask for (default: the context)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--context", o->context,
                  "tokens per sequence, prompt + completion (default: the model's max_seq_len; "
                  "the KV cache holds max-batch x context)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--device", o->device, "engine: cpu or cuda (a GPU; a CUDA build)")
      ->check(CLI::IsMember({"cpu", "cuda"}));
  cmd->add_option("--precision", o->precision, "auto (fp32 on cpu, bf16 on cuda), fp32 or bf16")
      ->check(CLI::IsMember({"auto", "fp32", "bf16"}));
  cmd->add_option("--tokenizer", o->tokenizer, "tokenizer (default: the run's data.tokenizer)");
  cmd->add_option("--model-name", o->model_name,
                  "the id /v1/models lists (default: the checkpoint's file name)");
  cmd->add_option("--exit-classifier", o->exit_classifier,
                  "the exit classifier of this checkpoint (rrt exit-classifier train): requests "
                  "may then ask for \"exit\": \"classifier\"")
      ->check(CLI::ExistingFile);
  cmd->callback([o] {
#ifndef RRT_HAVE_HTTPLIB
    RRT_FAIL("serve",
             "this rrt was built without cpp-httplib: install libcpp-httplib-dev "
             "(tools/setup.sh) and rebuild");
#else
    // Every thread the server starts inherits the blocked signals; this one waits for them.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);

    inference::ServedModel m = inference::load_served_model(
        o->checkpoint, inference::capacity_for_batch(o->max_batch, o->context), o->tokenizer,
        o->device, o->precision);
    std::unique_ptr<inference::ExitClassifier> classifier;
    if (!o->exit_classifier.empty())
      classifier = std::make_unique<inference::ExitClassifier>(inference::load_exit_classifier(
          o->exit_classifier,
          inference::model_identity(m.checkpoint.config.model, *m.checkpoint.params)));
    serve::ServerOptions so;
    so.exit_classifier = classifier.get();
    so.host = o->host;
    so.port = o->port;
    so.model_name = o->model_name.empty() ? std::filesystem::path(o->checkpoint).filename().string()
                                          : o->model_name;
    so.batching = inference::parse_batching(o->scheduler);
    so.fill = inference::parse_kv_fill(o->kv);
    so.max_batch = o->max_batch;
    so.max_queue = o->max_queue;
    so.max_tokens = o->max_tokens;
    serve::Server server(*m.engine, *m.tokenizer, so);
    const int port = server.start();
    std::fprintf(stderr,
                 "rrt serve: %s on http://%s:%d (%s scheduler, max batch %ld, context %ld, "
                 "%s engine)\n",
                 so.model_name.c_str(), so.host.c_str(), port, o->scheduler.c_str(),
                 static_cast<long>(so.max_batch), static_cast<long>(m.engine->capacity().max_seq),
                 m.engine->device());
    std::fflush(stderr);
    int sig = 0;
    sigwait(&signals, &sig);
    std::fprintf(stderr, "rrt serve: %s, stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    server.stop();
    std::fprintf(stderr, "rrt serve: stopped\n");
#endif
  });
}

}  // namespace rrt::cli
