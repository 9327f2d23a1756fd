#include "config/objective.h"

#include <charconv>
#include <cmath>
#include <numeric>

#include "core/error.h"

namespace rrt {

namespace {

bool parse_int(const std::string& s, int64_t& out) {
  const char* end = s.data() + s.size();
  auto [p, ec] = std::from_chars(s.data(), end, out);
  return ec == std::errc() && p == end;
}

bool parse_number(const std::string& s, double& out) {
  const char* end = s.data() + s.size();
  auto [p, ec] = std::from_chars(s.data(), end, out);
  return ec == std::errc() && p == end && std::isfinite(out);
}

// "aggressive(0.1)" -> 0.1
bool parse_aggressive(const std::string& s, double& c) {
  const std::string head = "aggressive(";
  return s.size() > head.size() + 1 && s.starts_with(head) && s.back() == ')' &&
         parse_number(s.substr(head.size(), s.size() - head.size() - 1), c);
}

std::string join(const std::vector<int64_t>& v) {
  std::string s;
  for (int64_t x : v) s += (s.empty() ? "" : ", ") + std::to_string(x);
  return s;
}

}  // namespace

std::string check_exit_items(const std::vector<std::string>& items) {
  if (items.empty()) return "must not be empty; write none, all, or loop numbers like [1, 2, 3]";
  if (items.size() == 1 && (items[0] == "none" || items[0] == "all")) return "";
  int64_t previous = 0;
  for (const std::string& item : items) {
    int64_t k;
    if (item == "none" || item == "all")
      return "'" + item + "' stands alone; write it as the whole value, not inside a list";
    if (!parse_int(item, k) || k < 1)
      return "unknown item '" + item + "'; expected none, all, or loop numbers 1..K";
    if (k <= previous)
      return "loop numbers must be ascending without repeats, got " + item + " after " +
             std::to_string(previous);
    previous = k;
  }
  return "";
}

std::string check_weight_items(const std::vector<std::string>& items) {
  if (items.empty())
    return "must not be empty; write aggressive(0.1), weighted, uniform or numbers";
  double c;
  if (items.size() == 1 && (items[0] == "weighted" || items[0] == "uniform")) return "";
  if (items.size() == 1 && items[0].starts_with("aggressive")) {
    if (!parse_aggressive(items[0], c) || c < 0)
      return "expected aggressive(c) with a number c >= 0, like aggressive(0.1), got '" + items[0] +
             "'";
    return "";
  }
  double sum = 0;
  for (const std::string& item : items) {
    if (!parse_number(item, c) || c < 0)
      return "unknown item '" + item +
             "'; expected aggressive(c), weighted, uniform, or numbers >= 0 (one per exit)";
    sum += c;
  }
  return sum > 0 ? "" : "the weights are all 0: at least one exit must count";
}

void derive_exit_head(RunConfig& config) {
  ExitHeadConfig& head = config.model.exit_head;
  const std::vector<std::string>& exits = config.early_exit.exits;
  const int64_t K = config.model.recursion.loops;
  head.loops.clear();
  if (head.lora_rank <= 0 || !check_exit_items(exits).empty() || exits[0] == "none") return;
  for (int64_t k = 1; k < K; ++k) {
    bool listed = exits[0] == "all";
    for (const std::string& item : exits) {
      int64_t x = 0;
      listed = listed || (parse_int(item, x) && x == k);
    }
    if (listed) head.loops.push_back(k);
  }
}

TrainingLoss training_loss_from(const RunConfig& config) {
  const EarlyExitConfig& e = config.early_exit;
  const DistillConfig& d = config.distill;
  const int64_t K = config.model.recursion.loops;
  TrainingLoss loss;

  const std::string exits_error = check_exit_items(e.exits);
  RRT_CHECK(exits_error.empty(), "early_exit.exits", exits_error);
  if (e.exits[0] == "none") {
    loss.exit_loops = {K};
  } else if (e.exits[0] == "all") {
    for (int64_t k = 1; k <= K; ++k) loss.exit_loops.push_back(k);
  } else {
    for (const std::string& item : e.exits) {
      int64_t k = 0;
      parse_int(item, k);
      RRT_CHECK(k <= K, "early_exit.exits", "exit loop ", k,
                " is beyond the last loop: ", "recursion.loops is ", K, ", so exits are loops 1..",
                K);
      loss.exit_loops.push_back(k);
    }
    RRT_CHECK(loss.exit_loops.back() == K, "early_exit.exits", "the final loop ", K,
              " is always an exit (the model's output) and must be listed: write [",
              join(loss.exit_loops), ", ", K, "]");
  }
  const int64_t n = static_cast<int64_t>(loss.exit_loops.size());
  RRT_CHECK(n == 1 || config.model.recursion.sharing == Sharing::cycle, "early_exit.exits",
            "exits at loop ends need recursion.sharing: cycle; with sequence sharing each layer "
            "repeats in a row and no loop ends before the last layer");

  const std::string weights_error = check_weight_items(e.weights);
  RRT_CHECK(weights_error.empty(), "early_exit.weights", weights_error);
  const std::string& w = e.weights[0];
  double c = 0;
  if (e.weights.size() == 1 && parse_aggressive(w, c)) {
    loss.exit_weights.assign(n, c);
    loss.exit_weights.back() = 1.0;
  } else if (w == "uniform") {
    loss.exit_weights.assign(n, 1.0 / static_cast<double>(n));
  } else if (w == "weighted") {
    const double total = static_cast<double>(
        std::accumulate(loss.exit_loops.begin(), loss.exit_loops.end(), int64_t{0}));
    for (int64_t k : loss.exit_loops) loss.exit_weights.push_back(static_cast<double>(k) / total);
  } else {
    RRT_CHECK(static_cast<int64_t>(e.weights.size()) == n, "early_exit.weights", e.weights.size(),
              " weights for ", n, " exit", n == 1 ? "" : "s", " (loops ", join(loss.exit_loops),
              "); give one number per exit, or aggressive(c), weighted, ", "uniform");
    for (const std::string& item : e.weights) {
      double x = 0;
      parse_number(item, x);
      loss.exit_weights.push_back(x);
    }
  }

  loss.self_distill = e.self_distill;
  RRT_CHECK(!e.self_distill || n > 1, "early_exit.self_distill",
            "self-distillation trains intermediate exits towards the final one, but the only exit "
            "is the final loop; set early_exit.exits (e.g. all) or self_distill: false");

  const ExitHeadConfig& head = config.model.exit_head;
  if (head.lora_rank > 0) {
    RRT_CHECK(n > 1, "early_exit.head_lora_rank",
              "head adapters sit on the intermediate exits, and the only exit is the final loop; "
              "set early_exit.exits (e.g. all) or head_lora_rank: 0");
    const std::vector<int64_t> intermediate(loss.exit_loops.begin(), loss.exit_loops.end() - 1);
    RRT_CHECK(head.loops == intermediate, "early_exit.head_lora_rank",
              "the model's head adapters (loops ", join(head.loops),
              ") are not the intermediate "
              "exits (",
              join(intermediate), "); call derive_exit_head on a config built in code");
  }

  RRT_CHECK(e.train == "all" || e.train == "lora" || e.train == "head_lora", "early_exit.train",
            "unknown value '", e.train, "'; expected all, lora or head_lora");
  if (e.train == "lora") {
    const LoraConfig& l = config.model.lora;
    RRT_CHECK(l.rank_attention > 0 || l.rank_mlp > 0 || head.lora_rank > 0, "early_exit.train",
              "train: lora freezes everything but the LoRA, and this model has none (lora.rank "
              "and early_exit.head_lora_rank are 0); set lora.rank or train: all");
    loss.train = TrainScope::lora;
  } else if (e.train == "head_lora") {
    RRT_CHECK(head.lora_rank > 0, "early_exit.train",
              "train: head_lora trains only the exits' head adapters, and there are none; set "
              "early_exit.head_lora_rank (and exits before the last loop)");
    loss.train = TrainScope::head_lora;
  }

  loss.teacher = !d.teacher.empty();
  loss.divergence = d.divergence == "reverse_kl" ? ops::Divergence::reverse_kl
                    : d.divergence == "tv"       ? ops::Divergence::tv
                                                 : ops::Divergence::forward_kl;
  loss.temperature = d.temperature;
  loss.alpha = d.alpha;
  return loss;
}

}  // namespace rrt
