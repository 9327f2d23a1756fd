#include "inference/serve_bench.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "core/progress.h"
#include "core/rng.h"
#include "data/loader.h"

namespace rrt::inference {

namespace {

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double load_average() {
  std::ifstream f("/proc/loadavg");
  double x = 0;
  f >> x;
  return x;
}

std::string fmt(const char* f, double x) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), f, x);
  return buf;
}

}  // namespace

Workload make_workload(const WorkloadOptions& o, int64_t vocab) {
  RRT_CHECK(o.requests > 0 && o.prompt_min >= 1 && o.prompt_max >= o.prompt_min &&
                o.output_min >= 1 && o.output_max >= o.output_min,
            "serve-bench",
            "needs requests > 0, 1 <= prompt_min <= prompt_max and 1 <= "
            "output_min <= output_max");
  const CounterRng rng(o.seed, 17);
  Workload w;
  std::unique_ptr<TokenLoader> data;
  std::vector<int32_t> seq(static_cast<size_t>(o.prompt_max)), unused(seq.size());
  if (!o.data_path.empty()) {
    data = std::make_unique<TokenLoader>(
        LoaderOptions{o.data_path, o.prompt_max, o.val_fraction, o.data_seed, 0, 1},
        Split::validation);
    RRT_CHECK(data->sequences() > 0, "serve-bench", "the validation split of ", o.data_path,
              " holds no sequence of ", o.prompt_max, " tokens");
    RRT_CHECK(data->vocab_size() <= vocab, "serve-bench", "the data's vocabulary (",
              data->vocab_size(), ") exceeds the model's (", vocab, ")");
  }
  for (int64_t r = 0; r < o.requests; ++r) {
    Request q;
    const int64_t P =
        o.prompt_min + rng.below(static_cast<uint64_t>(3 * r),
                                 static_cast<uint32_t>(o.prompt_max - o.prompt_min + 1));
    q.max_new_tokens =
        o.output_min + rng.below(static_cast<uint64_t>(3 * r + 1),
                                 static_cast<uint32_t>(o.output_max - o.output_min + 1));
    if (data) {
      data->next_batch(1, seq.data(), unused.data());
      q.prompt.assign(seq.begin(), seq.begin() + P);
    } else {
      for (int64_t t = 0; t < P; ++t)
        q.prompt.push_back(static_cast<int32_t>(
            rng.below(static_cast<uint64_t>(1000003 * (r + 1) + t), static_cast<uint32_t>(vocab))));
    }
    if (o.arrival_rate > 0) {
      // Exponential gap with mean 1 / rate before each request.
      const double gap = -std::log(rng.uniform(static_cast<uint64_t>(3 * r + 2))) / o.arrival_rate;
      q.arrival = (w.requests.empty() ? 0.0 : w.requests.back().arrival) + gap;
    }
    w.requests.push_back(std::move(q));
  }
  w.description = std::to_string(o.requests) + " requests, prompt " + std::to_string(o.prompt_min) +
                  "-" + std::to_string(o.prompt_max) + " tokens, output " +
                  std::to_string(o.output_min) + "-" + std::to_string(o.output_max) +
                  " tokens (uniform, seed " + std::to_string(o.seed) + "), prompts from " +
                  (o.data_path.empty() ? std::string("random token ids")
                                       : "the validation split of " + o.data_path);
  w.description += o.arrival_rate > 0
                       ? ", Poisson arrivals at " + fmt("%g", o.arrival_rate) + " requests/s"
                       : ", all waiting at time 0";
  return w;
}

std::string ExitSetting::label() const {
  if (rule == ExitRule::confidence) return "confidence " + fmt("%g", threshold);
  if (rule == ExitRule::saturation) return "saturation " + fmt("%g", threshold);
  if (rule == ExitRule::classifier) return "classifier " + fmt("%g", threshold);
  if (!drawn.empty()) {
    std::string s = "drawn ";
    for (size_t k = 0; k < drawn.size(); ++k) s += (k ? "/" : "") + fmt("%g", drawn[k]);
    return s;
  }
  return to_string(rule);
}

ExitSetting parse_exit_setting(const std::string& s) {
  if (s == "none") return {ExitRule::none, 0, {}};
  if (s == "oracle") return {ExitRule::oracle, 0, {}};
  const std::string pre = "confidence:";
  if (s.rfind(pre, 0) == 0) {
    const double t = std::stod(s.substr(pre.size()));
    RRT_CHECK(t >= 0 && t <= 1, "serve-bench", "a confidence threshold is in [0, 1], got ", t);
    return {ExitRule::confidence, t, {}};
  }
  const std::string sat = "saturation:";
  if (s.rfind(sat, 0) == 0) {
    const double t = std::stod(s.substr(sat.size()));
    RRT_CHECK(t >= -1 && t <= 1, "serve-bench",
              "a saturation threshold is a cosine similarity in [-1, 1], got ", t);
    return {ExitRule::saturation, t, {}};
  }
  const std::string cls = "classifier:";
  if (s.rfind(cls, 0) == 0) {
    const double t = std::stod(s.substr(cls.size()));
    RRT_CHECK(t >= 0 && t <= 1, "serve-bench",
              "a classifier threshold is a probability in [0, 1], got ", t);
    return {ExitRule::classifier, t, {}};
  }
  const std::string drawn = "drawn:";
  if (s.rfind(drawn, 0) == 0) {
    ExitSetting e{ExitRule::oracle, 0, {}};
    std::stringstream in(s.substr(drawn.size()));
    std::string item;
    double sum = 0;
    while (std::getline(in, item, ',')) {
      const double p = std::stod(item);
      RRT_CHECK(p >= 0 && p <= 1, "serve-bench", "an exit probability is in [0, 1], got ", p);
      e.drawn.push_back(p);
      sum += p;
    }
    RRT_CHECK(!e.drawn.empty() && std::fabs(sum - 1) < 1e-6, "serve-bench",
              "drawn exit probabilities (one per loop) must sum to 1, got ", s);
    return e;
  }
  throw Error("serve-bench",
              "unknown exit setting '" + s +
                  "': use none, oracle, confidence:T (e.g. 0.9), saturation:T (e.g. 0.99), "
                  "classifier:T (e.g. 0.8) or drawn:P1,...,PK");
}

std::vector<ExitSetting> parse_exit_settings(const std::string& list) {
  std::vector<std::string> items;
  std::stringstream in(list);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (item.empty()) continue;
    const bool number = item.find_first_not_of("0123456789.eE+-") == std::string::npos;
    if (number && !items.empty() && items.back().rfind("drawn:", 0) == 0)
      items.back() += "," + item;
    else
      items.push_back(item);
  }
  std::vector<ExitSetting> out;
  for (const std::string& s : items) out.push_back(parse_exit_setting(s));
  return out;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size())));
  return v[std::min(v.size() - 1, rank == 0 ? 0 : rank - 1)];
}

double modelled_block_seconds(Batching b, const std::vector<int64_t>& decode_tokens,
                              int64_t max_batch, const std::vector<int64_t>& exit_counts, double a,
                              double b_per_row) {
  const int64_t K = static_cast<int64_t>(exit_counts.size());
  double total = 0, loops = 0;
  for (int64_t k = 0; k < K; ++k) {
    total += static_cast<double>(exit_counts[k]);
    loops += static_cast<double>((k + 1) * exit_counts[k]);
  }
  const double m = total > 0 ? loops / total : static_cast<double>(K);
  std::vector<double> S(static_cast<size_t>(K), 1.0);  // P(loops >= k + 1)
  if (total > 0)
    for (int64_t k = 0; k < K; ++k) {
      double at_least = 0;
      for (int64_t j = k; j < K; ++j) at_least += static_cast<double>(exit_counts[j]);
      S[k] = at_least / total;
    }
  auto c = [&](double rows) { return rows > 0 ? a + b_per_row * rows : 0.0; };
  // The expected cost of stage k over n sequences whose rows there are Binomial(n, S_k): the
  // call happens unless no row needs it, and costs b per row that does.
  auto sync_step = [&](int64_t n) {
    double t = 0;
    for (int64_t k = 0; k < K; ++k)
      t += a * (1.0 - std::pow(1.0 - S[k], static_cast<double>(n))) +
           b_per_row * static_cast<double>(n) * S[k];
    return t;
  };
  // Slots hold the work a sequence still needs: decoding steps (synchronous schedulers) or
  // loops (depth-wise: steps x mean loops).
  const double unit = b == Batching::depth_wise ? m : 1.0;
  std::vector<double> left(static_cast<size_t>(max_batch), 0.0);
  size_t next = 0;
  double seconds = 0;
  while (true) {
    int64_t active = 0;
    for (double x : left) active += x > 1e-9;
    if (b != Batching::static_batch || active == 0)
      for (double& x : left)
        while (x <= 1e-9 && next < decode_tokens.size())
          x = static_cast<double>(decode_tokens[next++]) * unit;
    active = 0;
    for (double x : left) active += x > 1e-9;
    if (active == 0) break;
    seconds += b == Batching::depth_wise ? c(static_cast<double>(active)) : sync_step(active);
    for (double& x : left) x = std::max(0.0, x - 1.0);
  }
  return seconds;
}

BenchReport run_serve_bench(Engine& engine, const Workload& w, const BenchOptions& o) {
  RRT_CHECK(!o.exits.empty() && !o.schedulers.empty() && o.repeats >= 1, "serve-bench",
            "needs at least one exit setting, one scheduler and one repeat");
  BenchReport rep;
  rep.workload = w.description;
  rep.kv_fill = to_string(o.fill);
  rep.max_batch = o.max_batch;
  rep.repeats = o.repeats;
  rep.loops = engine.stages();
  rep.load_before = load_average();

  // Full-depth greedy decoding: the agreement reference and the oracle's exit table.
  GenerateOptions ref_opts;
  ref_opts.max_batch = o.max_batch;
  ref_opts.record_oracle = true;
  // (Its tokens do not depend on when requests arrive: it runs them as an offline batch.)
  std::vector<Request> offline = w.requests;
  for (Request& q : offline) q.arrival = 0;
  const auto t_ref = ProgressClock::now();
  const std::vector<Completion> ref = [&] {
    Heartbeat beat("serve-bench: full-depth reference decode");
    return generate(engine, offline, ref_opts);
  }();
  if (o.verbose)
    std::fprintf(stderr, "serve-bench: full-depth reference decode in %s\n",
                 format_duration(seconds_since(t_ref)).c_str());
  std::vector<std::vector<int32_t>> oracle;
  int64_t ref_tokens = 0;
  for (const Completion& c : ref) {
    oracle.push_back(c.oracle_loops);
    ref_tokens += static_cast<int64_t>(c.tokens.size());
  }
  // The drawn settings' tables: the loop of token t of request r from uniform(seed, r, t).
  std::vector<std::vector<std::vector<int32_t>>> drawn_tables(o.exits.size());
  for (size_t e = 0; e < o.exits.size(); ++e) {
    const std::vector<double>& p = o.exits[e].drawn;
    if (p.empty()) continue;
    RRT_CHECK(static_cast<int64_t>(p.size()) == engine.stages(), "serve-bench", "drawn exit ",
              o.exits[e].label(), " gives ", p.size(), " probabilities for a model with ",
              engine.stages(), " loops");
    for (size_t r = 0; r < w.requests.size(); ++r) {
      const CounterRng rng(0x0e17, r);
      std::vector<int32_t> loops;
      for (int64_t t = 0; t < w.requests[r].max_new_tokens; ++t) {
        double u = rng.uniform(static_cast<uint64_t>(t)), acc = 0;
        int32_t k = static_cast<int32_t>(p.size());
        for (size_t j = 0; j < p.size(); ++j)
          if (u < (acc += p[j])) {
            k = static_cast<int32_t>(j + 1);
            break;
          }
        loops.push_back(k);
      }
      drawn_tables[e].push_back(std::move(loops));
    }
  }
  std::vector<int64_t>& decode_tokens = rep.decode_tokens;
  for (const Request& q : w.requests) decode_tokens.push_back(q.max_new_tokens - 1);

  const size_t E = o.exits.size(), S = o.schedulers.size();
  struct Runs {
    std::vector<double> tps, p50, p99, ttft50, ttft99, block, other;
  };
  std::vector<std::vector<Runs>> runs(E, std::vector<Runs>(S));
  std::vector<std::vector<std::pair<double, double>>> calls(E);  // (rows, seconds) of decode
  rep.results.resize(E);
  for (size_t e = 0; e < E; ++e) {
    rep.results[e].exit = o.exits[e];
    rep.results[e].schedulers.resize(S);
  }
  // repeats x exit settings x schedulers runs, each a full decode of the workload: minutes on
  // a large model, so an "i/n, elapsed, ETA" line every RRT_PROGRESS_SECONDS on stderr.
  ProgressMeter meter("serve-bench", static_cast<int64_t>(o.repeats) * E * S);
  int64_t finished = 0;
  for (int r = 0; r < o.repeats; ++r)
    for (size_t e = 0; e < E; ++e)
      for (size_t s = 0; s < S; ++s) {
        GenerateOptions g;
        g.batching = o.schedulers[s];
        g.max_batch = o.max_batch;
        g.exit = {o.exits[e].rule,
                  o.exits[e].threshold,
                  o.fill,
                  o.exits[e].drawn.empty() ? &oracle : &drawn_tables[e],
                  0,
                  o.classifier};
        RunStats st;
        const std::vector<Completion> out = generate(engine, w.requests, g, &st);
        Runs& run = runs[e][s];
        run.tps.push_back(static_cast<double>(st.generated) / st.seconds);
        std::vector<double> lat, ttft;
        for (size_t q = 0; q < out.size(); ++q) {
          lat.push_back(out[q].finish_seconds - w.requests[q].arrival);
          ttft.push_back(out[q].first_token_seconds - w.requests[q].arrival);
        }
        run.p50.push_back(percentile(lat, 50));
        run.p99.push_back(percentile(lat, 99));
        run.ttft50.push_back(percentile(ttft, 50));
        run.ttft99.push_back(percentile(ttft, 99));
        double block = 0, other = 0;
        for (const EngineCall& c : st.calls) {
          if (c.kind == CallKind::decode) {
            block += c.seconds;
            calls[e].push_back({static_cast<double>(c.rows), c.seconds});
          } else {
            other += c.seconds;
          }
        }
        run.block.push_back(block);
        run.other.push_back(other);
        SchedulerResult& res = rep.results[e].schedulers[s];
        if (r == 0) {
          res.batching = o.schedulers[s];
          res.mean_loops = st.mean_loops();
          res.tokens = st.generated;
          int64_t agree = 0;
          for (size_t q = 0; q < out.size(); ++q)
            for (size_t i = 0; i < out[q].tokens.size() && i < ref[q].tokens.size(); ++i)
              agree += out[q].tokens[i] == ref[q].tokens[i];
          res.agreement = static_cast<double>(agree) / static_cast<double>(ref_tokens);
          if (o.schedulers[s] == Batching::depth_wise || rep.results[e].exit_counts.empty())
            rep.results[e].exit_counts = st.exit_counts;
        }
        if (o.verbose)
          std::fprintf(stderr, "  repeat %d  %-14s %-9s %8.1f tokens/s  mean loops %.3f\n", r + 1,
                       o.exits[e].label().c_str(), to_string(o.schedulers[s]).c_str(),
                       run.tps.back(), st.mean_loops());
        meter.step(++finished);
      }
  for (size_t e = 0; e < E; ++e) {
    ExitResult& res = rep.results[e];
    // Least squares c(n) = a + b n over every decode call of this setting.
    double n = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
    for (auto [x, y] : calls[e]) {
      n += 1;
      sx += x;
      sy += y;
      sxx += x * x;
      sxy += x * y;
    }
    const double den = n * sxx - sx * sx;
    res.fit_b = den > 0 ? (n * sxy - sx * sy) / den : 0.0;
    res.fit_a = n > 0 ? (sy - res.fit_b * sx) / n : 0.0;
    for (size_t s = 0; s < S; ++s) {
      SchedulerResult& sr = res.schedulers[s];
      sr.tokens_per_second = runs[e][s].tps;
      sr.median_tokens_per_second = median(runs[e][s].tps);
      sr.latency_p50 = median(runs[e][s].p50);
      sr.latency_p99 = median(runs[e][s].p99);
      sr.ttft_p50 = median(runs[e][s].ttft50);
      sr.ttft_p99 = median(runs[e][s].ttft99);
      sr.block_seconds = median(runs[e][s].block);
      sr.other_seconds = median(runs[e][s].other);
      sr.theory_block_seconds = modelled_block_seconds(o.schedulers[s], decode_tokens, o.max_batch,
                                                       res.exit_counts, res.fit_a, res.fit_b);
    }
  }
  rep.load_after = load_average();
  return rep;
}

namespace {

// The result of scheduler b in e, or null when it was not run.
const SchedulerResult* find_scheduler(const ExitResult& e, Batching b) {
  for (const SchedulerResult& x : e.schedulers)
    if (x.batching == b) return &x;
  return nullptr;
}

// The theory models the block's decode calls only, so the like-for-like comparison is of block
// time: depth-wise batching's gain over static and sequence-wise batching in measured block
// seconds beside the modelled ones (throughput also carries prefill, heads and KV filling).
std::string block_gains(const ExitResult& e) {
  const SchedulerResult* depth = find_scheduler(e, Batching::depth_wise);
  if (!depth || depth->block_seconds <= 0 || depth->theory_block_seconds <= 0) return "";
  std::string s;
  for (Batching b : {Batching::static_batch, Batching::sequence_wise}) {
    const SchedulerResult* x = find_scheduler(e, b);
    if (!x) continue;
    s += std::string(s.empty() ? "; depth-wise block-time gain over " : ", over ") +
         (b == Batching::static_batch ? "static: " : "sequence-wise: ") +
         fmt("%.2f", x->block_seconds / depth->block_seconds) + "x measured / " +
         fmt("%.2f", x->theory_block_seconds / depth->theory_block_seconds) + "x theory";
  }
  return s;
}

}  // namespace

std::string bench_markdown(const BenchReport& r) {
  std::string s = "Workload: " + r.workload + "; max_batch " + std::to_string(r.max_batch) +
                  ", KV fill " + r.kv_fill + ", " + std::to_string(r.repeats) +
                  " repeats (medians), load average " + fmt("%.2f", r.load_before) + " -> " +
                  fmt("%.2f", r.load_after) + ".\n\n";
  s += "| exit | scheduler | tokens/s | x static | x sequence | latency p50 / p99 (s) | TTFT p50 "
       "/ p99 (s) | mean "
       "loops | agreement | block s (measured) | block s (theory) | x static (theory) | x "
       "sequence (theory) | other s |\n";
  s += "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
  for (const ExitResult& e : r.results) {
    const SchedulerResult* st = find_scheduler(e, Batching::static_batch);
    const SchedulerResult* sq = find_scheduler(e, Batching::sequence_wise);
    auto ratio = [](double a, const SchedulerResult* b, bool theory) {
      if (!b) return std::string("-");
      return fmt("%.2f", theory ? b->theory_block_seconds / a : a / b->median_tokens_per_second);
    };
    for (const SchedulerResult& x : e.schedulers) {
      s += "| " + e.exit.label() + " | " + to_string(x.batching) + " | " +
           fmt("%.1f", x.median_tokens_per_second) + " | " +
           ratio(x.median_tokens_per_second, st, false) + " | " +
           ratio(x.median_tokens_per_second, sq, false) + " | " + fmt("%.2f", x.latency_p50) +
           " / " + fmt("%.2f", x.latency_p99) + " | " + fmt("%.3f", x.ttft_p50) + " / " +
           fmt("%.3f", x.ttft_p99) + " | " + fmt("%.2f", x.mean_loops) + " | " +
           fmt("%.3f", x.agreement) + " | " + fmt("%.2f", x.block_seconds) + " | " +
           fmt("%.2f", x.theory_block_seconds) + " | " + ratio(x.theory_block_seconds, st, true) +
           " | " + ratio(x.theory_block_seconds, sq, true) + " | " + fmt("%.2f", x.other_seconds) +
           " |\n";
    }
  }
  s += "\nExit distribution (fraction of decoded tokens per loop, depth-wise run) and the fitted "
       "per-call block latency c(n) = a + b n:\n\n";
  for (const ExitResult& e : r.results) {
    double total = 0;
    for (int64_t c : e.exit_counts) total += static_cast<double>(c);
    s += "- " + e.exit.label() + ": [";
    for (size_t k = 0; k < e.exit_counts.size(); ++k)
      s += (k ? ", " : "") + fmt("%.3f", total > 0 ? e.exit_counts[k] / total : 0.0);
    s += "], a = " + fmt("%.2f", e.fit_a * 1e3) + " ms, b = " + fmt("%.3f", e.fit_b * 1e3) +
         " ms per row";
    // The paper's regime: a call costs the same whatever its rows (c(n) = c(max_batch)).
    double flat[3] = {0, 0, 0};
    for (int b = 0; b < 3; ++b)
      flat[b] = modelled_block_seconds(static_cast<Batching>(b), r.decode_tokens, r.max_batch,
                                       e.exit_counts, 1.0, 0.0);
    if (flat[2] > 0)
      s += "; with a flat per-call latency depth-wise would be " + fmt("%.2f", flat[0] / flat[2]) +
           "x static and " + fmt("%.2f", flat[1] / flat[2]) + "x sequence-wise";
    s += block_gains(e);
    s += "\n";
  }
  return s;
}

std::string bench_json(const BenchReport& r) {
  using json = nlohmann::ordered_json;
  json j{{"workload", r.workload},    {"kv_fill", r.kv_fill}, {"max_batch", r.max_batch},
         {"repeats", r.repeats},      {"loops", r.loops},     {"load_before", r.load_before},
         {"load_after", r.load_after}};
  json results = json::array();
  for (const ExitResult& e : r.results) {
    json sch = json::array();
    for (const SchedulerResult& x : e.schedulers)
      sch.push_back({{"scheduler", to_string(x.batching)},
                     {"tokens_per_second", x.median_tokens_per_second},
                     {"tokens_per_second_runs", x.tokens_per_second},
                     {"latency_p50", x.latency_p50},
                     {"latency_p99", x.latency_p99},
                     {"ttft_p50", x.ttft_p50},
                     {"ttft_p99", x.ttft_p99},
                     {"mean_loops", x.mean_loops},
                     {"agreement", x.agreement},
                     {"tokens", x.tokens},
                     {"block_seconds", x.block_seconds},
                     {"other_seconds", x.other_seconds},
                     {"theory_block_seconds", x.theory_block_seconds}});
    results.push_back({{"exit", e.exit.label()},
                       {"exit_counts", e.exit_counts},
                       {"fit_a", e.fit_a},
                       {"fit_b", e.fit_b},
                       {"schedulers", sch}});
  }
  j["results"] = results;
  return j.dump(2);
}

}  // namespace rrt::inference
