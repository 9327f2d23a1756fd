// The body of POST /v1/completions (the OpenAI completions API, docs/inference.md "rrt serve")
// parsed and checked against the served model, and the OpenAI-style error a bad one gets.
//
// Fields: prompt (text, token ids, or a list of either: one choice per prompt), max_tokens,
// temperature, top_p, stop (a string or up to 4), seed, stream, logprobs (0..5: the chosen
// token's log-probability and the top ones), echo (the prompt comes back first, with its tokens'
// log-probabilities), n (1 only); rrt's own: exit ("none", "confidence", "saturation" or
// "classifier"), threshold, exit_loop
// (1..K: every token from that exit; a model named "<name>@exit<k>" means exit_loop k, for clients
// that send only standard fields). Unknown fields are ignored, as OpenAI's server does for
// ones it has retired; known ones with the wrong type or out of range are errors naming them.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "inference/generate.h"

namespace rrt {
class Tokenizer;
}

namespace rrt::serve {

// An error answered as {"error": {"message", "type", "param", "code"}} with an HTTP status.
struct ApiError : std::runtime_error {
  ApiError(int status, std::string type, std::string message, std::string param = "",
           std::string code = "")
      : std::runtime_error(message),
        status(status),
        type(std::move(type)),
        param(std::move(param)),
        code(std::move(code)) {}
  int status;
  std::string type, param, code;
  std::string body() const;  // the JSON document
};

// What the server knows of its model when it checks a request.
struct ModelLimits {
  int64_t vocab = 0;
  int64_t max_seq = 0;     // prompt + max_tokens per sequence (the engine's KV capacity)
  int64_t max_tokens = 0;  // the most tokens one request may ask for (rrt serve --max-tokens)
  int64_t loops = 1;       // K
  bool exits_before_last = false;
  bool exit_classifier = false;  // rrt serve --exit-classifier: "exit": "classifier" is served
};

struct CompletionParams {
  std::vector<std::vector<int32_t>> prompts;  // token ids, one per choice
  std::vector<std::string> prompt_texts;      // as given, or decoded from the ids (echo)
  int64_t max_tokens = 16;
  inference::SamplingConfig sampling;  // temperature 0: greedy
  std::vector<std::string> stop;
  bool stream = false;
  bool echo = false;
  std::optional<int> logprobs;  // top alternatives per token; unset: no logprobs
  inference::ExitPolicy exit;   // rule, threshold, exit_loop (fill is the server's)
  std::string model;
};

// Throws ApiError (400) for malformed JSON, a wrong type or value, a prompt that encodes to no
// token or holds ids outside the vocabulary, more than max_tokens, or a prompt plus max_tokens
// over the context (code "context_length_exceeded").
CompletionParams parse_completion_request(const std::string& body, const Tokenizer& tokenizer,
                                          const ModelLimits& limits);

}  // namespace rrt::serve
