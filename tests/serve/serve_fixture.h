// A served tiny model for the rrt serve tests: a relaxed Llama (K = 3) with every weight random
// over the byte tokenizer's 257 ids, saved as a checkpoint the server loads like any other, the
// same model in memory as the reference (generate, rrt eval's scorer), and an HTTP client.
#pragma once

#include <gtest/gtest.h>
#include <httplib.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "config/config_io.h"
#include "data/tokenizer.h"
#include "inference/load.h"
#include "serve/server.h"
#include "tests/inference/tiny_models.h"

namespace rrt::testing {

using json = nlohmann::json;

inline RunConfig served_config() {
  RunConfig c;
  c.model = presets::tiny_relaxed(Family::llama, false, 3);
  c.model.model.vocab = 257;  // the byte tokenizer's
  c.model.model.max_seq_len = 512;
  c.model.model.n_layers = c.model.recursion.block_layers * c.model.recursion.loops;
  c.data.tokenizer = "byte";
  return c;
}

// The checkpoint file (written once per process) and the model it holds.
struct ServedCheckpoint {
  std::string path;
  std::unique_ptr<RecursiveModel> model;
};

inline ServedCheckpoint& served_checkpoint() {
  static ServedCheckpoint c = [] {
    ServedCheckpoint s;
    const RunConfig cfg = served_config();
    s.model = std::make_unique<RecursiveModel>(
        cfg.model, ModelCapacity{.max_batch = 2, .max_seq = cfg.model.model.max_seq_len});
    randomise(s.model->params(), cfg.model.model, 11);
    const std::filesystem::path dir =
        std::filesystem::path(::testing::TempDir()) / ("rrt_serve_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    s.path = (dir / "step_00000001.h5").string();
    save_checkpoint(s.path, to_yaml(cfg), s.model->params(), nullptr, TrainState{.step = 1});
    return s;
  }();
  return c;
}

// A server on a free loopback port over its own engine, loaded from the checkpoint.
struct RunningServer {
  explicit RunningServer(serve::ServerOptions o, int64_t context = 0) {
    model = inference::load_served_model(served_checkpoint().path,
                                         inference::capacity_for_batch(o.max_batch, context));
    o.port = 0;
    server = std::make_unique<serve::Server>(*model.engine, *model.tokenizer, o);
    port = server->start();
  }
  ~RunningServer() { server->stop(); }
  std::unique_ptr<httplib::Client> client() const {
    auto c = std::make_unique<httplib::Client>("127.0.0.1", port);
    c->set_read_timeout(60);
    return c;
  }
  // POST /v1/completions: (status, body).
  std::pair<int, std::string> post(const std::string& body) const {
    auto res = client()->Post("/v1/completions", body, "application/json");
    if (!res) return {-1, ""};
    return {res->status, res->body};
  }
  json complete(const json& body) const {
    const auto [status, text] = post(body.dump());
    EXPECT_EQ(status, 200) << text;
    return json::parse(text);
  }
  std::string get(const std::string& path) const {
    auto res = client()->Get(path.c_str());
    return res ? res->body : "";
  }

  inference::ServedModel model;
  std::unique_ptr<serve::Server> server;
  int port = 0;
};

// The "data: ..." events of a server-sent-event body, [DONE] excluded (checked to be last).
inline std::vector<json> sse_events(const std::string& body) {
  std::vector<json> out;
  size_t at = 0;
  bool done = false;
  while (at < body.size()) {
    const size_t end = body.find("\n\n", at);
    EXPECT_NE(end, std::string::npos) << "an event without its blank line";
    if (end == std::string::npos) break;
    const std::string ev = body.substr(at, end - at);
    at = end + 2;
    EXPECT_EQ(ev.rfind("data: ", 0), 0u) << ev;
    EXPECT_FALSE(done) << "an event after [DONE]";
    if (ev == "data: [DONE]") {
      done = true;
      continue;
    }
    out.push_back(json::parse(ev.substr(6)));
  }
  EXPECT_TRUE(done) << "no data: [DONE]";
  return out;
}

}  // namespace rrt::testing
