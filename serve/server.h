// rrt serve: an OpenAI-compatible HTTP server over the inference engine (docs/inference.md,
// "rrt serve"), on cpp-httplib (Debian's libcpp-httplib-dev):
//   POST /v1/completions  completions, streamed as server-sent events with "stream": true
//   GET  /v1/models       the served model
//   GET  /health          200 "ok" while the engine thread runs
//   GET  /metrics         Prometheus text (serve/metrics.h)
// HTTP threads parse and check a request (serve/completion_request.h), hand its prompts to the
// engine thread (serve/engine_thread.h) and wait for their tokens; bad input is a 4xx with an
// OpenAI-style error body, a full queue a 429. A streaming client that goes away ends its
// requests at their next token, freeing their slots.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "inference/generate.h"

namespace rrt {
class Tokenizer;
}
namespace httplib {
class Server;
}

namespace rrt::serve {

class EngineThread;
class ServerMetrics;
struct ModelLimits;

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8000;  // 0: any free port (start() returns it)
  std::string model_name = "rrt";
  inference::Batching batching = inference::Batching::depth_wise;
  inference::KvFill fill = inference::KvFill::propagate;
  int64_t max_batch = 8;    // sequences in flight (the engine needs as many slots)
  int64_t max_queue = 64;   // prompts waiting for a slot; more: 429
  int64_t max_tokens = 0;   // the most a request may ask for; 0: the context
  int64_t max_seq = 0;      // context per sequence; 0: the engine's capacity
  int threads = 0;          // HTTP threads; 0: max_batch + max_queue + 4
  bool stop_at_eos = true;  // a completion ends at the tokenizer's end-of-text token
  // The model's exit classifier ("exit": "classifier"); null: such requests are a 400. Must
  // outlive the server.
  const inference::ExitClassifier* exit_classifier = nullptr;
};

class Server {
 public:
  // The engine (capacity: slots >= max_batch) and the tokenizer must outlive the server.
  Server(inference::Engine& engine, const Tokenizer& tokenizer, const ServerOptions& options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds and starts serving on background threads; returns the port. Throws rrt::Error when
  // the address cannot be bound.
  int start();
  // Ends every request, stops listening and joins the threads. Idempotent.
  void stop();

 private:
  void routes();

  inference::Engine& engine_;
  const Tokenizer& tok_;
  ServerOptions o_;
  std::unique_ptr<ModelLimits> limits_;
  std::unique_ptr<ServerMetrics> metrics_;
  std::unique_ptr<EngineThread> engine_thread_;
  std::unique_ptr<httplib::Server> http_;
  std::thread listener_;
  int64_t created_ = 0;  // unix seconds at start
  bool stopped_ = false;
};

}  // namespace rrt::serve
