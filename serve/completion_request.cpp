#include "serve/completion_request.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "data/tokenizer.h"

namespace rrt::serve {

namespace {

using json = nlohmann::json;

ApiError invalid(const std::string& param, const std::string& message,
                 const std::string& code = "") {
  return ApiError(400, "invalid_request_error", message, param, code);
}

// A field that must be an integer (a JSON number without a fractional part).
int64_t integer(const json& j, const std::string& name, int64_t lo, int64_t hi) {
  if (!j.is_number_integer() &&
      !(j.is_number_float() && j.get<double>() == std::floor(j.get<double>())))
    throw invalid(name, "'" + name + "' must be an integer, got " + j.dump());
  const double v = j.get<double>();
  if (v < static_cast<double>(lo) || v > static_cast<double>(hi))
    throw invalid(name, "'" + name + "' must be in " + std::to_string(lo) + ".." +
                            std::to_string(hi) + ", got " + j.dump());
  return j.is_number_integer() ? j.get<int64_t>() : static_cast<int64_t>(v);
}

double number(const json& j, const std::string& name, double lo, double hi, bool open_lo = false) {
  if (!j.is_number()) throw invalid(name, "'" + name + "' must be a number, got " + j.dump());
  const double v = j.get<double>();
  if (v < lo || v > hi || (open_lo && v == lo))
    throw invalid(name, "'" + name + "' must be in " + (open_lo ? "(" : "[") + json(lo).dump() +
                            ", " + json(hi).dump() + "], got " + j.dump());
  return v;
}

bool boolean(const json& j, const std::string& name) {
  if (!j.is_boolean()) throw invalid(name, "'" + name + "' must be true or false, got " + j.dump());
  return j.get<bool>();
}

std::vector<int32_t> token_ids(const json& j, const ModelLimits& lim) {
  std::vector<int32_t> ids;
  for (const json& t : j) {
    if (!t.is_number_integer())
      throw invalid("prompt", "a token-id prompt holds integers only, got " + t.dump());
    const int64_t v = t.get<int64_t>();
    if (v < 0 || v >= lim.vocab)
      throw invalid("prompt", "token id " + std::to_string(v) + " is outside the vocabulary of " +
                                  std::to_string(lim.vocab));
    ids.push_back(static_cast<int32_t>(v));
  }
  return ids;
}

// prompt: "text", [ids], ["text", ...] or [[ids], ...].
void read_prompts(const json& p, const Tokenizer& tok, const ModelLimits& lim,
                  CompletionParams& out) {
  auto add_text = [&](const json& t) {
    const std::string text = t.get<std::string>();
    out.prompts.push_back(tok.encode(text));
    out.prompt_texts.push_back(text);
  };
  auto add_ids = [&](const json& ids) {
    out.prompts.push_back(token_ids(ids, lim));
    out.prompt_texts.push_back(tok.decode(out.prompts.back()));
  };
  if (p.is_string()) {
    add_text(p);
  } else if (p.is_array() && !p.empty() && p[0].is_number()) {
    add_ids(p);
  } else if (p.is_array() && !p.empty()) {
    for (const json& e : p) {
      if (e.is_string())
        add_text(e);
      else if (e.is_array())
        add_ids(e);
      else
        throw invalid("prompt", "a prompt list holds strings or token-id lists, got " + e.dump());
    }
  } else {
    throw invalid("prompt",
                  "'prompt' must be a string, a list of token ids, or a non-empty list of either");
  }
  for (size_t i = 0; i < out.prompts.size(); ++i)
    if (out.prompts[i].empty())
      throw invalid("prompt", "prompt " + std::to_string(i) + " encodes to no token");
}

}  // namespace

std::string ApiError::body() const {
  json e{{"message", what()},
         {"type", type},
         {"param", param.empty() ? json(nullptr) : json(param)},
         {"code", code.empty() ? json(nullptr) : json(code)}};
  return json{{"error", e}}.dump(-1, ' ', false, json::error_handler_t::replace);
}

CompletionParams parse_completion_request(const std::string& body, const Tokenizer& tokenizer,
                                          const ModelLimits& lim) {
  json j;
  try {
    j = json::parse(body);
  } catch (const json::parse_error& e) {
    throw invalid("", std::string("the body is not valid JSON: ") + e.what(), "invalid_json");
  }
  if (!j.is_object()) throw invalid("", "the body must be a JSON object", "invalid_json");
  CompletionParams c;
  c.sampling.temperature = 1.0;  // OpenAI's default
  c.sampling.seed = 0;
  if (!j.contains("prompt")) throw invalid("prompt", "'prompt' is required");
  if (j.contains("model") && !j["model"].is_null()) {
    if (!j["model"].is_string()) throw invalid("model", "'model' must be a string");
    c.model = j["model"].get<std::string>();
  }
  auto has = [&](const char* k) { return j.contains(k) && !j[k].is_null(); };
  if (has("max_tokens")) c.max_tokens = integer(j["max_tokens"], "max_tokens", 0, lim.max_tokens);
  if (has("temperature"))
    c.sampling.temperature = number(j["temperature"], "temperature", 0.0, 2.0);
  if (has("top_p")) c.sampling.top_p = number(j["top_p"], "top_p", 0.0, 1.0, true);
  if (has("seed"))
    c.sampling.seed =
        static_cast<uint64_t>(integer(j["seed"], "seed", 0, std::numeric_limits<int64_t>::max()));
  if (has("stream")) c.stream = boolean(j["stream"], "stream");
  if (has("echo")) c.echo = boolean(j["echo"], "echo");
  if (has("logprobs")) c.logprobs = static_cast<int>(integer(j["logprobs"], "logprobs", 0, 5));
  if (has("n") && integer(j["n"], "n", 1, 1) != 1) throw invalid("n", "'n' must be 1");
  if (has("best_of")) integer(j["best_of"], "best_of", 1, 1);
  if (has("stop")) {
    const json& s = j["stop"];
    if (s.is_string()) {
      c.stop.push_back(s.get<std::string>());
    } else if (s.is_array() && s.size() <= 4) {
      for (const json& e : s) {
        if (!e.is_string()) throw invalid("stop", "'stop' holds strings only, got " + e.dump());
        c.stop.push_back(e.get<std::string>());
      }
    } else {
      throw invalid("stop", "'stop' must be a string or a list of up to 4 strings");
    }
    for (const std::string& s : c.stop)
      if (s.empty()) throw invalid("stop", "a stop sequence must not be empty");
  }
  if (has("exit")) {
    if (!j["exit"].is_string())
      throw invalid("exit",
                    "'exit' must be \"none\", \"confidence\", \"saturation\" or \"classifier\"");
    const std::string rule = j["exit"].get<std::string>();
    if (rule == "none")
      c.exit.rule = inference::ExitRule::none;
    else if (rule == "confidence")
      c.exit.rule = inference::ExitRule::confidence;
    else if (rule == "saturation")
      c.exit.rule = inference::ExitRule::saturation;
    else if (rule == "classifier")
      c.exit.rule = inference::ExitRule::classifier;
    else
      throw invalid("exit",
                    "'exit' must be \"none\", \"confidence\", \"saturation\" or "
                    "\"classifier\", got \"" +
                        rule + "\"");
    if (c.exit.rule == inference::ExitRule::classifier && !lim.exit_classifier)
      throw invalid("exit",
                    "this server has no exit classifier: start rrt serve with "
                    "--exit-classifier FILE (rrt exit-classifier train) for \"exit\": "
                    "\"classifier\"");
  }
  // A probability for confidence and classifier, a cosine similarity (-1..1) for saturation.
  if (has("threshold"))
    c.exit.threshold = c.exit.rule == inference::ExitRule::saturation
                           ? number(j["threshold"], "threshold", -1.0, 1.0)
                           : number(j["threshold"], "threshold", 0.0, 1.0);
  if (has("exit_loop")) {
    c.exit.exit_loop = static_cast<int32_t>(integer(j["exit_loop"], "exit_loop", 1, lim.loops));
    if (c.exit.exit_loop < lim.loops && !lim.exits_before_last)
      throw invalid("exit_loop",
                    "this model's loop ends are not exits (sequence sharing or K = "
                    "1): 'exit_loop' must be " +
                        std::to_string(lim.loops));
  }
  // A model named "<name>@exit<k>" (as /v1/models lists them) serves exit k: clients that
  // send only standard fields (lm-evaluation-harness) score any exit by the model they name.
  const size_t at = c.model.rfind("@exit");
  if (at != std::string::npos && !has("exit_loop")) {
    const std::string k = c.model.substr(at + 5);
    if (k.empty() || k.size() > 3 || k.find_first_not_of("0123456789") != std::string::npos)
      throw invalid("model", "model '" + c.model + "': an exit is named <model>@exit<k>, k in 1.." +
                                 std::to_string(lim.loops));
    c.exit.exit_loop = static_cast<int32_t>(integer(json(std::stoi(k)), "model", 1, lim.loops));
    if (c.exit.exit_loop < lim.loops && !lim.exits_before_last)
      throw invalid("model", "this model's loop ends are not exits: only @exit" +
                                 std::to_string(lim.loops) + " is served");
  }
  if (j["prompt"].is_null()) throw invalid("prompt", "'prompt' is required");
  read_prompts(j["prompt"], tokenizer, lim, c);
  if (c.max_tokens == 0 && !c.echo)
    throw invalid("max_tokens", "'max_tokens' 0 returns nothing without 'echo'");
  for (size_t i = 0; i < c.prompts.size(); ++i) {
    const int64_t total =
        static_cast<int64_t>(c.prompts[i].size()) + std::max<int64_t>(c.max_tokens, 1) - 1;
    if (total > lim.max_seq)
      throw invalid("prompt",
                    "this server's context is " + std::to_string(lim.max_seq) + " tokens, but " +
                        (c.prompts.size() > 1 ? "prompt " + std::to_string(i) + " has "
                                              : "the "
                                                "prompt has ") +
                        std::to_string(c.prompts[i].size()) + " tokens and max_tokens is " +
                        std::to_string(c.max_tokens) +
                        " (prompt + max_tokens - 1 must fit); shorten the prompt or lower "
                        "max_tokens",
                    "context_length_exceeded");
  }
  return c;
}

}  // namespace rrt::serve
