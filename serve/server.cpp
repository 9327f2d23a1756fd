#include "serve/server.h"

#include <httplib.h>

#include <chrono>
#include <csignal>
#include <ctime>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/tokenizer.h"
#include "serve/completion_request.h"
#include "serve/engine_thread.h"
#include "serve/metrics.h"

namespace rrt::serve {

namespace {

using json = nlohmann::ordered_json;

// The end-of-text token's name in /tokenizer_info and /tokenize (it decodes to no text).
constexpr const char* kEosText = "<|endoftext|>";

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

void send_error(httplib::Response& res, const ApiError& e, ServerMetrics& m) {
  m.request_rejected(e.status);
  res.status = e.status;
  res.set_content(e.body(), "application/json");
}

// How much of a completion's text may go out now: all of it once done; before that, not the
// last (longest stop sequence - 1) bytes, which may be the start of a stop sequence, nor a
// UTF-8 character whose bytes have not all come.
size_t sendable(const std::string& text, bool done, size_t holdback) {
  if (done) return text.size();
  size_t n = text.size() > holdback ? text.size() - holdback : 0;
  size_t start = n;
  for (int back = 0; back < 4 && start > 0; ++back) {
    const unsigned char c = static_cast<unsigned char>(text[start - 1]);
    --start;
    if ((c & 0xC0) != 0x80) {  // a lead byte (or ASCII): does its character end within n?
      const size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : 4;
      if (start + len > n) n = start;
      break;
    }
  }
  return n;
}

// The OpenAI "logprobs" object for tokens [from, to) of a job's listing: with echo, the prompt's
// tokens come first (the first without a log-probability), then the generated ones.
json logprobs_json(const Job& j, const Tokenizer& tok, bool echo, size_t from, size_t to,
                   size_t offset) {
  json tokens = json::array(), lps = json::array(), tops = json::array(), offsets = json::array();
  const std::vector<int32_t>& prompt = j.request.prompt;
  const size_t P = echo ? prompt.size() : 0;
  for (size_t i = from; i < to; ++i) {
    const bool in_prompt = i < P;
    const int32_t id = in_prompt ? prompt[i] : j.tokens[i - P];
    const std::string s = tok.decode({id});
    tokens.push_back(s);
    offsets.push_back(offset);
    offset += s.size();
    const TokenLogprob* lp = nullptr;
    if (in_prompt) {
      if (i > 0 && i < j.prompt_logprobs.size()) lp = &j.prompt_logprobs[i];
    } else if (i - P < j.logprobs.size()) {
      lp = &j.logprobs[i - P];
    }
    if (lp == nullptr) {
      lps.push_back(nullptr);
      tops.push_back(nullptr);
      continue;
    }
    lps.push_back(lp->logprob);
    json top = json::object();
    for (const auto& [tid, v] : lp->top) {
      const std::string ts = tok.decode({tid});
      if (!top.contains(ts)) top[ts] = v;  // ids that decode alike: the likelier one
    }
    tops.push_back(top);
  }
  return json{{"tokens", tokens},
              {"token_logprobs", lps},
              {"top_logprobs", tops},
              {"text_offset", offsets}};
}

// What a streaming response has sent of one job.
struct Sent {
  bool echo_sent = false;
  size_t text = 0, tokens = 0;
  bool finished = false;
};

}  // namespace

Server::Server(inference::Engine& engine, const Tokenizer& tokenizer, const ServerOptions& o)
    : engine_(engine), tok_(tokenizer), o_(o) {
  const inference::EngineCapacity& cap = engine.capacity();
  RRT_CHECK(o_.max_batch >= 1 && o_.max_batch <= cap.slots, "serve", "--max-batch ", o_.max_batch,
            " needs an engine with as many slots (", cap.slots, ")");
  RRT_CHECK(o_.max_queue >= 1, "serve", "--max-queue must be at least 1");
  RRT_CHECK(tokenizer.vocab_size() <= engine.vocab(), "serve", "the tokenizer's ",
            tokenizer.vocab_size(), " ids exceed the model's vocabulary of ", engine.vocab());
  limits_ = std::make_unique<ModelLimits>();
  limits_->vocab = engine.vocab();
  limits_->max_seq = o_.max_seq > 0 ? std::min(o_.max_seq, cap.max_seq) : cap.max_seq;
  limits_->max_tokens = o_.max_tokens > 0 ? o_.max_tokens : limits_->max_seq;
  limits_->loops = engine.stages();
  limits_->exits_before_last = engine.exits_before_last();
  limits_->exit_classifier = o_.exit_classifier != nullptr;
  metrics_ = std::make_unique<ServerMetrics>(engine.stages());
}

Server::~Server() { stop(); }

int Server::start() {
  // A client that goes away mid-write must not kill the process.
  std::signal(SIGPIPE, SIG_IGN);
  inference::GenerateOptions g;
  g.batching = o_.batching;
  g.max_batch = o_.max_batch;
  g.exit.fill = o_.fill;
  g.exit.classifier = o_.exit_classifier;
  g.stop_token = o_.stop_at_eos ? tok_.eos_id() : -1;
  engine_thread_ = std::make_unique<EngineThread>(engine_, g, tok_, *metrics_, o_.max_queue);
  http_ = std::make_unique<httplib::Server>();
  const int threads =
      o_.threads > 0 ? o_.threads : static_cast<int>(o_.max_batch + o_.max_queue + 4);
  http_->new_task_queue = [threads] {
    return new httplib::ThreadPool(static_cast<size_t>(threads));
  };
  http_->set_payload_max_length(size_t{64} << 20);
  http_->set_keep_alive_timeout(2);
  routes();
  int port = o_.port;
  if (port == 0) {
    port = http_->bind_to_any_port(o_.host);
    RRT_CHECK(port > 0, "serve", "cannot bind ", o_.host, " to a free port");
  } else {
    RRT_CHECK(http_->bind_to_port(o_.host, port), "serve", "cannot bind ", o_.host, ":", port,
              " (in use? try another --port)");
  }
  created_ = static_cast<int64_t>(std::time(nullptr));
  listener_ = std::thread([this] { http_->listen_after_bind(); });
  return port;
}

void Server::stop() {
  if (stopped_ || !http_) return;
  stopped_ = true;
  // Requests end first (their threads wake and answer), then the listener and its threads.
  engine_thread_->stop();
  http_->stop();
  if (listener_.joinable()) listener_.join();
}

void Server::routes() {
  httplib::Server& s = *http_;
  s.set_exception_handler(
      [this](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "unknown error";
        try {
          std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        send_error(res, ApiError(500, "server_error", "internal error: " + what), *metrics_);
      });
  s.set_error_handler(httplib::Server::HandlerWithResponse(
      [this](const httplib::Request& req, httplib::Response& res) {
        if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
        const std::string msg = res.status == 404 ? "no route " + req.method + " " + req.path +
                                                        " (POST /v1/completions, GET /v1/models, "
                                                        "GET /health, GET /metrics)"
                                                  : "HTTP " + std::to_string(res.status);
        const int status = res.status;
        send_error(res, ApiError(status, "invalid_request_error", msg), *metrics_);
        return httplib::Server::HandlerResponse::Handled;
      }));

  s.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    const bool up = engine_thread_ && !engine_thread_->stopped();
    res.status = up ? 200 : 503;
    res.set_content(up ? "{\"status\":\"ok\"}" : "{\"status\":\"stopping\"}", "application/json");
  });
  s.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics_->render(engine_thread_->now()), "text/plain; version=0.0.4");
  });
  // vLLM's tokenizer endpoints: lm-evaluation-harness's local-completions finds them and then
  // tokenizes with the served model's own tokenizer (byte, SentencePiece or GGUF BPE: none of
  // them need a Hugging Face tokenizer on the client). The end-of-text token has no text, so it
  // is named by kEosText: /tokenize turns that marker into the EOS id (as Hugging Face
  // tokenizers turn special tokens' text into their ids), so a task whose text starts with it
  // scores its sequences after an EOS, as rrt eval's scorer does (tools/lm_eval_exits.sh).
  s.Get("/tokenizer_info", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(dump(json{{"eos_token", kEosText},
                              {"bos_token", kEosText},
                              {"pad_token", nullptr},
                              {"tokenizer_class", tok_.name()},
                              {"vocab_size", tok_.vocab_size()},
                              {"model_max_length", limits_->max_seq}}),
                    "application/json");
  });
  s.Post("/tokenize", [this](const httplib::Request& req, httplib::Response& res) {
    const json j = json::parse(req.body, nullptr, false);
    if (!j.is_object() || !j.contains("prompt") || !j["prompt"].is_string()) {
      send_error(
          res,
          ApiError(400, "invalid_request_error", "/tokenize needs {\"prompt\": text}", "prompt"),
          *metrics_);
      return;
    }
    const std::string text = j["prompt"].get<std::string>();
    std::vector<int32_t> ids;
    for (size_t at = 0;;) {
      const size_t eos = text.find(kEosText, at);
      const std::vector<int32_t> piece =
          tok_.encode(std::string_view(text).substr(at, eos == std::string::npos ? eos : eos - at));
      ids.insert(ids.end(), piece.begin(), piece.end());
      if (eos == std::string::npos) break;
      ids.push_back(tok_.eos_id());
      at = eos + std::string(kEosText).size();
    }
    res.set_content(
        dump(json{{"tokens", ids}, {"count", ids.size()}, {"max_model_len", limits_->max_seq}}),
        "application/json");
  });
  s.Post("/detokenize", [this](const httplib::Request& req, httplib::Response& res) {
    const json j = json::parse(req.body, nullptr, false);
    bool ok = j.is_object() && j.contains("tokens") && j["tokens"].is_array();
    std::vector<int32_t> ids;
    if (ok)
      for (const json& t : j["tokens"]) {
        ok = ok && t.is_number_integer() && t.get<int64_t>() >= 0 &&
             t.get<int64_t>() < limits_->vocab;
        if (ok) ids.push_back(t.get<int32_t>());
      }
    if (!ok) {
      send_error(res,
                 ApiError(400, "invalid_request_error",
                          "/detokenize needs {\"tokens\": [ids in the vocabulary]}", "tokens"),
                 *metrics_);
      return;
    }
    res.set_content(dump(json{{"prompt", tok_.decode(ids)}}), "application/json");
  });
  s.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
    // The model, then one id per exit ("<name>@exit<k>": every token from exit k).
    json data = json::array();
    const int64_t first_exit = limits_->exits_before_last ? 1 : limits_->loops;
    for (int64_t k = 0; k <= limits_->loops; ++k) {
      if (k > 0 && k < first_exit) continue;
      data.push_back(
          json{{"id", k == 0 ? o_.model_name : o_.model_name + "@exit" + std::to_string(k)},
               {"object", "model"},
               {"created", created_},
               {"owned_by", "rrt"},
               {"max_model_len", limits_->max_seq},
               {"loops", limits_->loops},
               {"exit_loop", k == 0 ? json(nullptr) : json(k)}});
    }
    res.set_content(dump(json{{"object", "list"}, {"data", data}}), "application/json");
  });
  s.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
    const double received = engine_thread_->now();
    CompletionParams p;
    try {
      p = parse_completion_request(req.body, tok_, *limits_);
    } catch (const ApiError& e) {
      send_error(res, e, *metrics_);
      return;
    }
    auto group = std::make_shared<Group>();
    group->jobs.resize(p.prompts.size());
    size_t holdback = 0;
    for (const std::string& st : p.stop) holdback = std::max(holdback, st.size() - 1);
    for (size_t i = 0; i < p.prompts.size(); ++i) {
      Job& j = group->jobs[i];
      j.request.prompt = p.prompts[i];
      j.request.max_new_tokens = p.max_tokens;
      j.request.exit = p.exit;
      j.request.sampling = p.sampling;
      j.request.stream = static_cast<int64_t>(i);  // as rrt generate's i-th prompt
      j.request.token_logits = p.logprobs.has_value();
      j.request.prompt_logits = p.echo && p.logprobs.has_value();
      j.top_logprobs = p.logprobs ? *p.logprobs : -1;
      j.stop = p.stop;
      j.received = received;
    }
    if (!engine_thread_->submit(group)) {
      if (engine_thread_->stopped())
        send_error(res, ApiError(503, "server_error", "the server is shutting down"), *metrics_);
      else
        send_error(res,
                   ApiError(429, "rate_limit_error",
                            "the queue is full (" + std::to_string(o_.max_queue) +
                                " prompts wait for a slot): retry later",
                            "", "queue_full"),
                   *metrics_);
      return;
    }
    static std::atomic<int64_t> counter{0};
    const std::string id = "cmpl-" + std::to_string(++counter);
    const json head{{"id", id},
                    {"object", "text_completion"},
                    {"created", static_cast<int64_t>(std::time(nullptr))},
                    {"model", p.model.empty() ? o_.model_name : p.model}};

    if (!p.stream) {
      std::unique_lock<std::mutex> l(group->mu);
      group->cv.wait(l, [&] { return group->all_done(); });
      for (const Job& j : group->jobs)
        if (!j.error.empty()) {
          const bool down = j.error == "the server is shutting down";
          send_error(res, ApiError(down ? 503 : 500, "server_error", j.error), *metrics_);
          return;
        }
      json choices = json::array();
      int64_t prompt_tokens = 0, completion_tokens = 0;
      for (size_t i = 0; i < group->jobs.size(); ++i) {
        const Job& j = group->jobs[i];
        const size_t P = j.request.prompt.size();
        prompt_tokens += static_cast<int64_t>(P);
        completion_tokens += static_cast<int64_t>(j.tokens.size());
        json c{{"text", (p.echo ? p.prompt_texts[i] : std::string()) + j.text},
               {"index", i},
               {"logprobs", nullptr},
               {"finish_reason", j.finish_reason},
               {"token_ids", j.tokens},
               {"exit_loops", j.loops}};
        if (p.logprobs)
          c["logprobs"] = logprobs_json(j, tok_, p.echo, 0, (p.echo ? P : 0) + j.tokens.size(),
                                        p.echo ? 0 : p.prompt_texts[i].size());
        choices.push_back(std::move(c));
      }
      json out = head;
      out["choices"] = choices;
      out["usage"] = {{"prompt_tokens", prompt_tokens},
                      {"completion_tokens", completion_tokens},
                      {"total_tokens", prompt_tokens + completion_tokens}};
      res.set_content(dump(out), "application/json");
      return;
    }

    // Server-sent events: one chunk per prompt whenever it has news, then "data: [DONE]".
    auto sent = std::make_shared<std::vector<Sent>>(group->jobs.size());
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider(
        "text/event-stream",
        [this, group, sent, head, p, holdback](size_t, httplib::DataSink& sink) {
          std::string out;
          bool all_finished = true;
          {
            std::unique_lock<std::mutex> l(group->mu);
            group->cv.wait_for(l, std::chrono::milliseconds(50));
            for (size_t i = 0; i < group->jobs.size(); ++i) {
              const Job& j = group->jobs[i];
              Sent& s = (*sent)[i];
              if (s.finished) continue;
              if (!j.error.empty()) {
                out += "data: " + ApiError(500, "server_error", j.error).body() + "\n\n";
                s.finished = true;
                continue;
              }
              const size_t P = j.request.prompt.size();
              const size_t text_end = sendable(j.text, j.done, holdback);
              const bool news =
                  !s.echo_sent && p.echo ? j.admitted && (j.done || !j.tokens.empty()) : false;
              const size_t tok_end = j.tokens.size();
              if (!news && text_end <= s.text && tok_end <= s.tokens && !j.done) {
                all_finished = false;
                continue;
              }
              std::string text = j.text.substr(s.text, text_end > s.text ? text_end - s.text : 0);
              size_t lp_from = (p.echo ? P : 0) + s.tokens, lp_to = (p.echo ? P : 0) + tok_end;
              size_t offset = (p.echo ? 0 : p.prompt_texts[i].size()) + s.text;
              if (p.echo && !s.echo_sent) {
                text = p.prompt_texts[i] + text;
                lp_from = 0;
                offset = 0;
                s.echo_sent = true;
              }
              json c{{"text", text},
                     {"index", i},
                     {"logprobs", nullptr},
                     {"finish_reason", j.done ? json(j.finish_reason) : json(nullptr)},
                     {"token_ids", std::vector<int32_t>(j.tokens.begin() + s.tokens,
                                                        j.tokens.begin() + tok_end)},
                     {"exit_loops",
                      std::vector<int32_t>(j.loops.begin() + s.tokens, j.loops.begin() + tok_end)}};
              if (p.logprobs)
                c["logprobs"] = logprobs_json(j, tok_, p.echo, lp_from, lp_to, offset);
              s.text = std::max(s.text, text_end);
              s.tokens = tok_end;
              s.finished = j.done;
              if (!j.done) all_finished = false;
              json chunk = head;
              chunk["choices"] = json::array({c});
              out += "data: " + dump(chunk) + "\n\n";
            }
          }
          if (!out.empty() && !sink.write(out.data(), out.size())) {
            engine_thread_->cancel(group);
            return false;
          }
          if (all_finished) {
            static const std::string kDone = "data: [DONE]\n\n";
            sink.write(kDone.data(), kDone.size());
            sink.done();
            return true;
          }
          if (out.empty() && !sink.is_writable()) {  // the client went away
            engine_thread_->cancel(group);
            return false;
          }
          return true;
        },
        [this, group](bool success) {
          if (!success) engine_thread_->cancel(group);
        });
  });
}

}  // namespace rrt::serve
