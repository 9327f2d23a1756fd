// rrt serve over HTTP on a free loopback port, driven by cpp-httplib's client: greedy completions
// equal generate's (what rrt generate runs) for every scheduler and exit rule; streamed equals
// unstreamed; echo + logprobs equal rrt eval's scores at every exit; requests arriving while
// others run change no one's greedy output; every bad input class gets its 4xx; a client gone
// mid-stream frees its slot and the server serves the next request.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <chrono>
#include <future>
#include <thread>

#include "evaluation/multiple_choice.h"
#include "inference/exit_classifier.h"
#include "inference/generate.h"
#include "tests/serve/serve_fixture.h"

namespace rrt {
namespace {

using namespace testing;
using inference::Batching;

const std::vector<std::string> kPrompts = {"Line 1:", "The cat sat on", "x"};

// Text as a JSON string carries it: the random model's bytes are seldom UTF-8, and the server
// (like any JSON writer) replaces what is not.
std::string as_json_text(const std::string& raw) {
  return json::parse(json(raw).dump(-1, ' ', false, json::error_handler_t::replace))
      .get<std::string>();
}

std::vector<inference::Request> reference_requests(const std::vector<std::string>& prompts,
                                                   int64_t max_new,
                                                   const inference::ExitPolicy& exit) {
  ByteTokenizer tok;
  std::vector<inference::Request> out;
  for (const std::string& p : prompts) {
    inference::Request q;
    q.prompt = tok.encode(p);
    q.max_new_tokens = max_new;
    q.exit = exit;
    out.push_back(q);
  }
  return out;
}

// What generate (rrt generate's code) gives for these requests in one batch.
std::vector<inference::Completion> reference(
    Batching b, const std::vector<inference::Request>& q,
    inference::KvFill fill = inference::KvFill::propagate) {
  inference::ServedModel m =
      inference::load_served_model(served_checkpoint().path, inference::capacity_for_batch(3, 0));
  inference::GenerateOptions o;
  o.batching = b;
  o.max_batch = 3;
  o.exit.fill = fill;
  o.stop_token = ByteTokenizer::kEos;
  return inference::generate(*m.engine, q, o);
}

struct ExitCase {
  const char* name;
  json fields;
  inference::ExitPolicy policy;
};

// A similarity the test model's loops sometimes exceed and sometimes do not.
constexpr double kSaturation = 0.5;

std::vector<ExitCase> exit_cases() {
  inference::ExitPolicy none, conf, sat, fixed;
  conf.rule = inference::ExitRule::confidence;
  conf.threshold = 0.012;
  sat.rule = inference::ExitRule::saturation;
  sat.threshold = kSaturation;
  fixed.exit_loop = 2;
  return {{"none", json{{"exit", "none"}}, none},
          {"confidence", json{{"exit", "confidence"}, {"threshold", 0.012}}, conf},
          {"saturation", json{{"exit", "saturation"}, {"threshold", kSaturation}}, sat},
          {"exit_loop", json{{"exit_loop", 2}}, fixed}};
}

TEST(Serve, GreedyCompletionsEqualGenerateForEverySchedulerAndExitRule) {
  bool some_early = false, saturation_early = false, saturation_late = false;
  for (Batching b : {Batching::static_batch, Batching::sequence_wise, Batching::depth_wise}) {
    serve::ServerOptions o;
    o.batching = b;
    o.max_batch = 3;
    RunningServer srv(o);
    for (const ExitCase& ec : exit_cases()) {
      json body{{"prompt", kPrompts}, {"max_tokens", 12}, {"temperature", 0}};
      body.update(ec.fields);
      const json r = srv.complete(body);
      const auto want = reference(b, reference_requests(kPrompts, 12, ec.policy));
      ASSERT_EQ(r["choices"].size(), kPrompts.size());
      ByteTokenizer tok;
      for (size_t i = 0; i < kPrompts.size(); ++i) {
        const json& c = r["choices"][i];
        const std::string where = to_string(b) + " / " + ec.name + " / prompt " + std::to_string(i);
        EXPECT_EQ(c["index"], i);
        EXPECT_EQ(c["token_ids"].get<std::vector<int32_t>>(), want[i].tokens) << where;
        EXPECT_EQ(c["exit_loops"].get<std::vector<int32_t>>(), want[i].exit_loops) << where;
        EXPECT_EQ(c["text"], as_json_text(tok.decode(want[i].tokens))) << where;
        EXPECT_EQ(c["finish_reason"], "length") << where;
        for (int32_t loop : want[i].exit_loops) {
          if (std::string(ec.name) == "exit_loop") EXPECT_EQ(loop, 2) << where;
          if (std::string(ec.name) == "none") EXPECT_EQ(loop, 3) << where;
          if (std::string(ec.name) == "confidence" && loop < 3) some_early = true;
          if (std::string(ec.name) == "saturation") {
            (loop < 3 ? saturation_early : saturation_late) = true;
          }
          (loop < 3 ? saturation_early : saturation_late) = true;
        }
      }
      EXPECT_EQ(r["usage"]["completion_tokens"], 36);
      EXPECT_EQ(r["object"], "text_completion");
    }
  }
  EXPECT_TRUE(some_early) << "the confidence threshold never fired: the test checks nothing";
  EXPECT_TRUE(saturation_early && saturation_late)
      << "the saturation threshold does not mix the exits: the test checks little";
}

// With the skipped loops recomputed, a fixed exit loop's tokens (the first included) are greedy
// decoding of that exit's full-sequence logits.
TEST(Serve, ExitLoopGivesThatExitsGreedyDecoding) {
  serve::ServerOptions o;
  o.fill = inference::KvFill::recompute;
  o.max_batch = 2;
  RunningServer srv(o);
  RecursiveModel& m = *served_checkpoint().model;
  ByteTokenizer tok;
  for (int64_t loop = 1; loop <= 3; ++loop) {
    const json r = srv.complete(
        json{{"prompt", "Line 7:"}, {"max_tokens", 6}, {"temperature", 0}, {"exit_loop", loop}});
    std::vector<int32_t> seq = tok.encode("Line 7:"), want;
    for (int i = 0; i < 6; ++i) {
      const std::vector<float> z = reference_exit_logits(m, seq, loop);
      want.push_back(argmax_row(z, static_cast<int64_t>(seq.size()) - 1, 257));
      seq.push_back(want.back());
    }
    EXPECT_EQ(r["choices"][0]["token_ids"].get<std::vector<int32_t>>(), want) << "loop " << loop;
    // The same exit by the model's name, as /v1/models lists it.
    const json named = srv.complete(json{{"model", "rrt@exit" + std::to_string(loop)},
                                         {"prompt", "Line 7:"},
                                         {"max_tokens", 6},
                                         {"temperature", 0}});
    EXPECT_EQ(named["choices"][0]["token_ids"].get<std::vector<int32_t>>(), want);
  }
}

std::string streamed_text(const std::vector<json>& events, size_t choice, json* ids = nullptr,
                          json* loops = nullptr, json* lps = nullptr,
                          std::string* finish = nullptr) {
  std::string text;
  for (const json& e : events)
    for (const json& c : e["choices"]) {
      if (c["index"] != choice) continue;
      text += c["text"].get<std::string>();
      if (ids)
        for (const json& t : c["token_ids"]) ids->push_back(t);
      if (loops)
        for (const json& t : c["exit_loops"]) loops->push_back(t);
      if (lps && !c["logprobs"].is_null())
        for (const json& t : c["logprobs"]["token_logprobs"]) lps->push_back(t);
      if (finish && !c["finish_reason"].is_null()) *finish = c["finish_reason"];
    }
  return text;
}

TEST(Serve, StreamedEqualsUnstreamed) {
  serve::ServerOptions o;
  o.max_batch = 3;
  RunningServer srv(o);
  // Sampled (seeded) and greedy, with confidence exits, logprobs and echo; then a stop sequence
  // cut out of the greedy text, which the stream must never show.
  const json unstopped = srv.complete(
      json{{"prompt", "The cat"}, {"max_tokens", 16}, {"temperature", 0}, {"exit", "none"}});
  const std::vector<int32_t> ids = unstopped["choices"][0]["token_ids"];
  // Two printable ASCII tokens after the first: a stop sequence that JSON carries as it is.
  size_t at = 1;
  while (at + 1 < ids.size() &&
         !(ids[at] >= 32 && ids[at] < 127 && ids[at + 1] >= 32 && ids[at + 1] < 127))
    ++at;
  ASSERT_LT(at + 1, ids.size()) << "no two ASCII tokens in a row to stop at";
  ByteTokenizer tok;
  const std::string raw = tok.decode(ids);
  const std::string stop = tok.decode({ids[at], ids[at + 1]});
  const std::string stopped_text = as_json_text(raw.substr(0, raw.find(stop)));
  for (const json& extra :
       {json{{"temperature", 0.9}, {"top_p", 0.9}, {"seed", 5}, {"logprobs", 2}},
        json{{"temperature", 0},
             {"exit", "confidence"},
             {"threshold", 0.012},
             {"echo", true},
             {"logprobs", 1}},
        json{{"temperature", 0}, {"stop", json::array({stop, "never seen"})}}}) {
    json body{{"prompt", json::array({"The cat", "Line 2:"})}, {"max_tokens", 16}};
    body.update(extra);
    const json whole = srv.complete(body);
    body["stream"] = true;
    const auto [status, text] = srv.post(body.dump());
    ASSERT_EQ(status, 200);
    const std::vector<json> events = sse_events(text);
    ASSERT_FALSE(events.empty());
    for (size_t i = 0; i < 2; ++i) {
      json ids = json::array(), loops = json::array(), lps = json::array();
      std::string finish;
      const std::string s = streamed_text(events, i, &ids, &loops, &lps, &finish);
      const json& c = whole["choices"][i];
      EXPECT_EQ(s, c["text"].get<std::string>()) << extra.dump();
      EXPECT_EQ(ids, c["token_ids"]) << extra.dump();
      EXPECT_EQ(loops, c["exit_loops"]) << extra.dump();
      EXPECT_EQ(finish, c["finish_reason"]) << extra.dump();
      if (!c["logprobs"].is_null()) EXPECT_EQ(lps, c["logprobs"]["token_logprobs"]);
    }
    if (extra.contains("stop")) {
      const json& c = whole["choices"][0];
      EXPECT_EQ(c["finish_reason"], "stop");
      EXPECT_EQ(c["text"], stopped_text);
      // No event ever carried the stop sequence's first byte past the cut.
      EXPECT_EQ(streamed_text(events, 0).find(stop), std::string::npos);
    }
  }
}

// lm-evaluation-harness's local-completions scores a continuation from echo + logprobs: the sum
// of its tokens' log-probabilities must be rrt eval's (evaluation/multiple_choice.h) at every
// exit.
TEST(Serve, EchoLogprobsEqualRrtEvalScoresAtEveryExit) {
  serve::ServerOptions o;
  o.max_batch = 2;
  RunningServer srv(o);
  ByteTokenizer tok;
  const std::vector<ChoiceExample> ex = {{"The capital of France is", {" Paris", " Rome"}, 0},
                                         {"Line 3: the cat", {" sat", " ran away"}, 1}};
  ChoiceEvaluation eval = score_choices(*served_checkpoint().model, tok, ex, 2, 96);
  for (size_t e = 0; e < ex.size(); ++e)
    for (size_t c = 0; c < ex[e].choices.size(); ++c) {
      const ChoiceTokens ct = tokenize_choice(tok, ex[e].context, ex[e].choices[c]);
      for (int64_t loop = 1; loop <= 3; ++loop) {
        const json r = srv.complete(json{{"prompt", ct.tokens},
                                         {"max_tokens", 1},
                                         {"temperature", 0},
                                         {"echo", true},
                                         {"logprobs", 1},
                                         {"exit_loop", loop}});
        const json& lp = r["choices"][0]["logprobs"];
        const size_t P = ct.tokens.size();
        ASSERT_EQ(lp["token_logprobs"].size(), P + 1);
        EXPECT_TRUE(lp["token_logprobs"][0].is_null());
        double sum = 0;
        for (size_t t = P - static_cast<size_t>(ct.continuation); t < P; ++t)
          sum += lp["token_logprobs"][t].get<double>();
        const double want = eval.log_likelihood[e][c][static_cast<size_t>(loop - 1)];
        EXPECT_NEAR(sum, want, 1e-4 * std::max(1.0, std::abs(want)))
            << "example " << e << " choice " << c << " exit " << loop;
        // The top alternative is at least as likely as the token (lm-eval's is_greedy).
        for (size_t t = 1; t < P; ++t) {
          const json& top = lp["top_logprobs"][t];
          ASSERT_EQ(top.size(), 1u);
          EXPECT_GE(top.begin().value().get<double>(),
                    lp["token_logprobs"][t].get<double>() - 1e-9);
        }
      }
    }
}

TEST(Serve, ArrivalsWhileOthersRunDoNotChangeGreedyOutput) {
  using Clock = std::chrono::steady_clock;
  for (Batching b : {Batching::static_batch, Batching::sequence_wise, Batching::depth_wise}) {
    serve::ServerOptions o;
    o.batching = b;
    o.max_batch = 3;
    o.stop_at_eos = false;  // every request runs its full length
    RunningServer srv(o);
    const std::vector<std::string> prompts = {"Line 1: the block", "ab", "Once upon a time"};
    const std::vector<int64_t> lengths = {480, 120, 60};
    std::vector<std::future<json>> running;
    std::vector<Clock::time_point> sent(prompts.size()), done(prompts.size());
    for (size_t i = 0; i < prompts.size(); ++i) {
      sent[i] = Clock::now();
      running.push_back(std::async(std::launch::async, [&, i] {
        json r = srv.complete(
            json{{"prompt", prompts[i]}, {"max_tokens", lengths[i]}, {"temperature", 0}});
        done[i] = Clock::now();
        return r;
      }));
      std::this_thread::sleep_for(std::chrono::milliseconds(5));  // arrive mid-run
    }
    std::vector<json> out;
    for (auto& f : running) out.push_back(f.get());
    // Otherwise nothing arrived while another ran and the test checks nothing.
    ASSERT_GT(done[0], sent[2]) << "the first request ended before the last was sent";
    for (size_t i = 0; i < prompts.size(); ++i) {
      inference::ServedModel m = inference::load_served_model(served_checkpoint().path,
                                                              inference::capacity_for_batch(1, 0));
      inference::GenerateOptions g;  // alone, full depth, greedy
      g.max_batch = 1;
      const auto want =
          inference::generate(*m.engine, reference_requests({prompts[i]}, lengths[i], {}), g);
      EXPECT_EQ(out[i]["choices"][0]["token_ids"].get<std::vector<int32_t>>(), want[0].tokens)
          << to_string(b) << " prompt " << i;
    }
  }
}

void expect_error(const RunningServer& srv, const std::string& body, int status,
                  const std::string& param = "", const std::string& code = "") {
  const auto [got, text] = srv.post(body);
  EXPECT_EQ(got, status) << body << " -> " << text;
  const json j = json::parse(text, nullptr, false);
  ASSERT_TRUE(j.is_object() && j.contains("error")) << text;
  EXPECT_TRUE(j["error"]["message"].is_string());
  EXPECT_TRUE(j["error"]["type"].is_string());
  if (!param.empty()) {
    EXPECT_EQ(j["error"]["param"], param) << text;
  }
  if (!code.empty()) {
    EXPECT_EQ(j["error"]["code"], code) << text;
  }
}

// "exit": "classifier" with the server's exit classifier gives generate's tokens and exit loops
// with the same classifier (here a probe on the cosine alone, so that it mixes the exits as the
// saturation threshold does); a server without one answers 400 naming "exit".
TEST(Serve, ClassifierExitEqualsGenerateWithTheSameClassifier) {
  const ServedCheckpoint& ck = served_checkpoint();
  const RunConfig cfg = served_config();
  inference::ExitClassifier c;
  c.model = inference::model_identity(cfg.model, ck.model->params());
  const int64_t D = cfg.model.model.d_model;
  for (int k = 1; k < 3; ++k) {
    inference::ProbeParams<float> p;
    p.resize(D + 1, 0);
    p.w1[static_cast<size_t>(D)] = 1e4f;
    p.b1[0] = static_cast<float>(-1e4 * kSaturation);
    c.probes.push_back(p);
  }
  serve::ServerOptions o;
  o.max_batch = 3;
  o.exit_classifier = &c;
  RunningServer srv(o);
  const json r = srv.complete(json{{"prompt", kPrompts},
                                   {"max_tokens", 12},
                                   {"temperature", 0},
                                   {"exit", "classifier"},
                                   {"threshold", 0.5}});
  inference::ServedModel m =
      inference::load_served_model(ck.path, inference::capacity_for_batch(3, 0));
  inference::GenerateOptions g;
  g.max_batch = 3;
  g.stop_token = ByteTokenizer::kEos;
  g.exit = {.rule = inference::ExitRule::classifier, .threshold = 0.5, .classifier = &c};
  const auto want = inference::generate(
      *m.engine,
      reference_requests(kPrompts, 12, {.rule = inference::ExitRule::classifier, .threshold = 0.5}),
      g);
  bool early = false, late = false;
  ASSERT_EQ(r["choices"].size(), kPrompts.size());
  for (size_t i = 0; i < kPrompts.size(); ++i) {
    EXPECT_EQ(r["choices"][i]["token_ids"].get<std::vector<int32_t>>(), want[i].tokens) << i;
    EXPECT_EQ(r["choices"][i]["exit_loops"].get<std::vector<int32_t>>(), want[i].exit_loops) << i;
    for (size_t t = 1; t < want[i].exit_loops.size(); ++t)
      (want[i].exit_loops[t] < 3 ? early : late) = true;
  }
  EXPECT_TRUE(early && late) << "the classifier does not mix the exits: the test checks little";
  serve::ServerOptions plain;
  plain.max_batch = 2;
  RunningServer without(plain);
  expect_error(without, R"({"prompt": "x", "exit": "classifier", "threshold": 0.5})", 400, "exit");
}

TEST(Serve, BadInputGetsItsFourHundredAndAnOpenAiErrorBody) {
  serve::ServerOptions o;
  o.max_batch = 1;
  o.max_queue = 2;
  o.max_tokens = 40;
  RunningServer srv(o, /*context=*/96);
  expect_error(srv, "{\"prompt\": \"x\", ", 400, "", "invalid_json");
  expect_error(srv, "[1, 2]", 400, "", "invalid_json");
  expect_error(srv, "{\"max_tokens\": 3}", 400, "prompt");
  expect_error(srv, R"({"prompt": "x", "max_tokens": "ten"})", 400, "max_tokens");
  expect_error(srv, R"({"prompt": "x", "max_tokens": 2.5})", 400, "max_tokens");
  expect_error(srv, R"({"prompt": "x", "max_tokens": 41})", 400, "max_tokens");
  expect_error(srv, R"({"prompt": "x", "temperature": "hot"})", 400, "temperature");
  expect_error(srv, R"({"prompt": "x", "top_p": 0})", 400, "top_p");
  expect_error(srv, R"({"prompt": "x", "stream": 1})", 400, "stream");
  expect_error(srv, R"({"prompt": "x", "logprobs": 9})", 400, "logprobs");
  expect_error(srv, R"({"prompt": "x", "stop": 7})", 400, "stop");
  expect_error(srv, R"({"prompt": "x", "exit": "sometimes"})", 400, "exit");
  expect_error(srv, R"({"prompt": "x", "exit_loop": 4})", 400, "exit_loop");
  // A probability for confidence, a cosine similarity for saturation.
  expect_error(srv, R"({"prompt": "x", "exit": "confidence", "threshold": -0.5})", 400,
               "threshold");
  expect_error(srv, R"({"prompt": "x", "exit": "saturation", "threshold": 1.5})", 400, "threshold");
  expect_error(srv, R"({"prompt": "x", "n": 2})", 400, "n");
  expect_error(srv, R"({"prompt": "x", "model": "m@exit9"})", 400, "model");
  expect_error(srv, R"({"prompt": "x", "model": "m@exitx"})", 400, "model");
  expect_error(srv, R"({"prompt": 5})", 400, "prompt");
  expect_error(srv, R"({"prompt": ""})", 400, "prompt");
  expect_error(srv, R"({"prompt": [1, 300]})", 400, "prompt");
  expect_error(srv, R"({"prompt": [1, "a"]})", 400, "prompt");
  // The context is 96 tokens: 90 prompt tokens + 10 new do not fit.
  expect_error(srv, json{{"prompt", std::string(90, 'a')}, {"max_tokens", 10}}.dump(), 400,
               "prompt", "context_length_exceeded");
  // Three prompts never fit a queue of two.
  expect_error(srv, R"({"prompt": ["a", "b", "c"], "max_tokens": 2})", 429, "", "queue_full");
  auto res = srv.client()->Get("/v1/nothing");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404);
  EXPECT_TRUE(json::parse(res->body).contains("error"));
  // Still serving.
  const json r = srv.complete(json{{"prompt", "x"}, {"max_tokens", 3}, {"temperature", 0}});
  EXPECT_EQ(r["choices"][0]["token_ids"].size(), 3u);
  const std::string metrics = srv.get("/metrics");
  EXPECT_NE(metrics.find("rrt_rejected_requests_total{status=\"400\"}"), std::string::npos);
  EXPECT_NE(metrics.find("rrt_rejected_requests_total{status=\"429\"}"), std::string::npos);
}

// Sends a streaming request on a raw socket, reads its first bytes and closes the socket.
void abandon_stream(int port, const std::string& body) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  const std::string req =
      "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
      "Content-Type: application/json\r\nContent-Length: " +
      std::to_string(body.size()) + "\r\n\r\n" + body;
  ASSERT_EQ(::send(fd, req.data(), req.size(), 0), static_cast<ssize_t>(req.size()));
  char buf[256];
  ASSERT_GT(::recv(fd, buf, sizeof(buf), 0), 0);  // the headers (and maybe a first event)
  ::close(fd);
}

// A series' value (the integer part), -1 when absent.
int64_t metric(const std::string& text, const std::string& series) {
  const size_t at = ("\n" + text).find("\n" + series + " ");
  return at == std::string::npos ? -1 : std::stoll(text.substr(at + series.size() + 1));
}

TEST(Serve, AClientGoneMidStreamFreesItsSlotAndTheServerGoesOn) {
  serve::ServerOptions o;
  o.max_batch = 1;        // the next request needs the abandoned one's slot
  o.stop_at_eos = false;  // it must not end by itself
  RunningServer srv(o);
  // Long enough that it is still running when the client goes (the stream is cut at a token).
  abandon_stream(
      srv.port,
      json{
          {"prompt", "a"}, {"max_tokens", 500}, {"temperature", 0.8}, {"seed", 1}, {"stream", true}}
          .dump());
  const auto t0 = std::chrono::steady_clock::now();
  std::string m;
  while ((metric(m = srv.get("/metrics"), "rrt_requests_total{outcome=\"cancelled\"}") != 1 ||
          metric(m, "rrt_running_requests") != 0) &&
         std::chrono::steady_clock::now() - t0 < std::chrono::seconds(20))
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(metric(m, "rrt_requests_total{outcome=\"cancelled\"}"), 1) << m;
  EXPECT_EQ(metric(m, "rrt_running_requests"), 0) << m;
  auto health = srv.client()->Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  const json r = srv.complete(json{{"prompt", "Line 1:"}, {"max_tokens", 5}, {"temperature", 0}});
  const auto want =
      reference(Batching::depth_wise, reference_requests({"Line 1:"}, 5, inference::ExitPolicy{}));
  EXPECT_EQ(r["choices"][0]["token_ids"].get<std::vector<int32_t>>(), want[0].tokens);
}

TEST(Serve, ModelsHealthAndMetrics) {
  serve::ServerOptions o;
  o.model_name = "tiny";
  RunningServer srv(o);
  const json models = json::parse(srv.get("/v1/models"));
  EXPECT_EQ(models["object"], "list");
  ASSERT_EQ(models["data"].size(), 4u);  // the model, then each of its 3 exits
  EXPECT_EQ(models["data"][0]["id"], "tiny");
  EXPECT_EQ(models["data"][2]["id"], "tiny@exit2");
  EXPECT_EQ(models["data"][2]["exit_loop"], 2);
  EXPECT_EQ(json::parse(srv.get("/health"))["status"], "ok");
  srv.complete(json{{"prompt", json::array({"Line 1:", "ab"})},
                    {"max_tokens", 6},
                    {"exit", "confidence"},
                    {"threshold", 0.012}});
  const std::string m = srv.get("/metrics");
  for (const char* s :
       {"rrt_queue_length", "rrt_running_rows{loop=\"1\"}", "rrt_running_rows{loop=\"3\"}",
        "rrt_tokens_per_second", "rrt_mean_loops_per_token", "rrt_generated_tokens_total",
        "rrt_time_to_first_token_seconds_count", "rrt_time_per_output_token_seconds_count"})
    EXPECT_GE(metric(m, s), 0) << s << " missing from:\n" << m;
  EXPECT_EQ(metric(m, "rrt_generated_tokens_total"), 12);
  // 12 tokens within the last 10 s: at least 1.2 tokens/s, whatever the machine.
  const size_t rate_at = m.find("\nrrt_tokens_per_second ");
  ASSERT_NE(rate_at, std::string::npos);
  EXPECT_GE(std::stod(m.substr(rate_at + 23)), 1.2) << m;
  EXPECT_EQ(metric(m, "rrt_time_to_first_token_seconds_count"), 2);
  EXPECT_EQ(metric(m, "rrt_time_per_output_token_seconds_count"), 10);
  EXPECT_NE(m.find("rrt_time_to_first_token_seconds_bucket{le=\"+Inf\"} 2"), std::string::npos);
  EXPECT_EQ(metric(m, "rrt_requests_total{outcome=\"length\"}"), 2);
}

}  // namespace
}  // namespace rrt

namespace rrt {
namespace {

// The vLLM tokenizer endpoints lm-evaluation-harness looks for: the model's own tokenizer, with
// EOS named by its marker (bos_token too: add_bos_token puts EOS first, as rrt eval does).
TEST(Serve, TokenizerEndpointsAreTheModelsTokenizer) {
  using namespace testing;
  RunningServer srv(serve::ServerOptions{});
  const json info = json::parse(srv.get("/tokenizer_info"));
  const std::string eos = info["eos_token"];
  EXPECT_EQ(info["bos_token"], eos);
  auto post = [&](const char* path, const json& body) {
    auto res = srv.client()->Post(path, body.dump(), "application/json");
    EXPECT_TRUE(res && res->status == 200) << path;
    return json::parse(res ? res->body : "{}");
  };
  ByteTokenizer tok;
  std::vector<int32_t> want = tok.encode("The cat");
  EXPECT_EQ(post("/tokenize", json{{"prompt", "The cat"}, {"add_special_tokens", false}})["tokens"],
            json(want));
  EXPECT_EQ(post("/tokenize", json{{"prompt", eos}})["tokens"], json({ByteTokenizer::kEos}));
  want.insert(want.begin(), ByteTokenizer::kEos);
  EXPECT_EQ(post("/tokenize", json{{"prompt", eos + "The cat"}})["tokens"], json(want));
  EXPECT_EQ(post("/detokenize", json{{"tokens", want}})["prompt"], "The cat");
  auto bad = srv.client()->Post("/detokenize", R"({"tokens": [1, 999]})", "application/json");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400);
}

// SIGINT / SIGTERM call stop(): it must end the requests in flight (a 503 for the unfinished,
// the stream closed) and return, not wait for them to run out.
TEST(Serve, StopEndsTheRequestsInFlight) {
  using namespace testing;
  serve::ServerOptions o;
  o.max_batch = 1;
  o.stop_at_eos = false;
  RunningServer srv(o);
  std::vector<std::future<std::pair<int, std::string>>> calls;
  for (int i = 0; i < 3; ++i) {
    calls.push_back(std::async(std::launch::async, [&, i] {
      return srv.post(json{{"prompt", "Line"}, {"max_tokens", 480}, {"stream", i == 2}}.dump());
    }));
  }
  // Stop once the server has received all three (running, queued or, on a fast machine,
  // finished): a request still on its way when the server stops gets no answer at all, which is
  // not what this test is about.
  auto received = [&](const std::string& m) {
    int64_t n = metric(m, "rrt_running_requests") + metric(m, "rrt_queue_length");
    for (const char* outcome : {"stop", "length", "cancelled"})
      n += std::max<int64_t>(
          0, metric(m, std::string("rrt_requests_total{outcome=\"") + outcome + "\"}"));
    return n;
  };
  const auto wait0 = std::chrono::steady_clock::now();
  std::string m;
  while (received(m = srv.get("/metrics")) < 3 &&
         std::chrono::steady_clock::now() - wait0 < std::chrono::seconds(20))
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_EQ(received(m), 3) << m;
  const auto t0 = std::chrono::steady_clock::now();
  srv.server->stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10));
  int unavailable = 0;
  for (int i = 0; i < 2; ++i) {
    const auto [status, body] = calls[static_cast<size_t>(i)].get();
    EXPECT_TRUE(status == 200 || status == 503) << status << " " << body;
    if (status == 503) {
      ++unavailable;
      EXPECT_TRUE(json::parse(body).contains("error")) << body;
    }
  }
  calls[2].get();  // the stream ends (with an error event, or cut), whatever it had
  // Three requests of 480 tokens through one slot cannot all have finished before the stop.
  EXPECT_GE(unavailable, 1);
}

}  // namespace
}  // namespace rrt
