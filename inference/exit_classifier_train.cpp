#include "inference/exit_classifier_train.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <numeric>

#include "core/error.h"
#include "core/progress.h"
#include "core/rng.h"

namespace rrt::inference {

namespace {

constexpr double kThresholds[] = {0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99};

double sigmoid(double z) {
  return z >= 0 ? 1 / (1 + std::exp(-z)) : std::exp(z) / (1 + std::exp(z));
}

double bce(double p, double y) {
  p = std::clamp(p, 1e-12, 1 - 1e-12);
  return -(y * std::log(p) + (1 - y) * std::log(1 - p));
}

// Applies f(value, gradient, m, v) to every parameter of the probe alike.
template <typename F>
void each_param(ProbeParams<float>& p, ProbeParams<float>& g, ProbeParams<float>& m,
                ProbeParams<float>& v, F&& f) {
  const auto arrays = [&](auto member) {
    auto& a = p.*member;
    for (size_t i = 0; i < a.size(); ++i) f(a[i], (g.*member)[i], (m.*member)[i], (v.*member)[i]);
  };
  arrays(&ProbeParams<float>::w1);
  arrays(&ProbeParams<float>::b1);
  arrays(&ProbeParams<float>::w2);
  f(p.b2, g.b2, m.b2, v.b2);
}

}  // namespace

ExitExamples collect_exit_examples(Engine& e, const std::vector<std::vector<int32_t>>& seqs) {
  RRT_CHECK(!seqs.empty(), "exit-classifier", "no sequence to collect states from");
  RRT_CHECK(e.exits_before_last(), "exit-classifier",
            "this model's loop ends are not exits (sequence sharing or K = 1): nothing to "
            "classify");
  const int64_t K = e.stages(), D = e.d_model(), T = static_cast<int64_t>(seqs[0].size());
  const EngineCapacity& cap = e.capacity();
  RRT_CHECK(T >= 1 && T <= cap.max_rows && T <= cap.max_seq && cap.slots >= 1, "exit-classifier",
            "sequences of ", T, " tokens need an engine of at least ", T,
            " rows and tokens per call (has ", cap.max_rows, " and ", cap.max_seq, ")");
  ExitExamples ex;
  ex.loops = K;
  ex.features = D + 1;
  ex.sequences = static_cast<int64_t>(seqs.size());
  ex.seq_len = T;
  ex.x.resize(static_cast<size_t>(K - 1));
  ex.y.resize(static_cast<size_t>(K - 1));
  for (int64_t k = 0; k + 1 < K; ++k) {
    ex.x[static_cast<size_t>(k)].reserve(static_cast<size_t>(ex.rows() * ex.features));
    ex.y[static_cast<size_t>(k)].reserve(static_cast<size_t>(ex.rows()));
  }
  e.reserve_states(T);
  std::vector<int32_t> states(static_cast<size_t>(T)), loops(static_cast<size_t>(T));
  std::iota(states.begin(), states.end(), 0);
  std::vector<StageRow> rows(static_cast<size_t>(T));
  std::vector<int32_t> argmax(static_cast<size_t>(K * T));
  ProgressMeter meter("exit-classifier: collecting", ex.sequences);
  for (size_t q = 0; q < seqs.size(); ++q) {
    const std::vector<int32_t>& seq = seqs[q];
    RRT_CHECK(static_cast<int64_t>(seq.size()) == T, "exit-classifier", "sequence ", q, " has ",
              seq.size(), " tokens, the first ", T, ": give sequences of one length");
    e.embed_states(seq.data(), states.data(), T);
    for (int64_t s = 0; s < K; ++s) {
      for (int64_t i = 0; i < T; ++i)
        rows[static_cast<size_t>(i)] =
            StageRow{0, static_cast<int32_t>(i), static_cast<int32_t>(s)};
      if (s + 1 < K) {
        e.run_stage_saturation(rows.data(), states.data(), T);
        auto& x = ex.x[static_cast<size_t>(s)];
        for (int64_t i = 0; i < T; ++i) {
          const float* normed = e.stage_normed_states() + i * D;
          x.insert(x.end(), normed, normed + D);
          x.push_back(static_cast<float>(e.stage_similarity()[i]));
        }
      } else {
        e.run_stage(rows.data(), states.data(), T);
      }
      std::fill(loops.begin(), loops.end(), static_cast<int32_t>(s + 1));
      e.exit_heads(loops.data(), states.data(), T, false);
      std::copy(e.head_argmax(), e.head_argmax() + T, argmax.begin() + s * T);
    }
    for (int64_t k = 0; k + 1 < K; ++k)
      for (int64_t i = 0; i < T; ++i)
        ex.y[static_cast<size_t>(k)].push_back(argmax[static_cast<size_t>(k * T + i)] ==
                                                       argmax[static_cast<size_t>((K - 1) * T + i)]
                                                   ? 1.f
                                                   : 0.f);
    meter.step(static_cast<int64_t>(q) + 1);
  }
  return ex;
}

LoopReport score_probabilities(const std::vector<double>& p, const std::vector<float>& y,
                               double train_base_rate) {
  RRT_CHECK(!p.empty() && p.size() == y.size(), "exit-classifier",
            "score_probabilities needs as many labels as probabilities");
  const double n = static_cast<double>(p.size());
  LoopReport r;
  r.held_out = static_cast<int64_t>(p.size());
  double pos = 0, correct = 0, ll = 0, base_ll = 0, brier = 0;
  double bin_p[10] = {}, bin_y[10] = {};
  for (size_t i = 0; i < p.size(); ++i) {
    pos += y[i];
    correct += (p[i] >= 0.5) == (y[i] > 0.5);
    ll += bce(p[i], y[i]);
    base_ll += bce(train_base_rate, y[i]);
    brier += (p[i] - y[i]) * (p[i] - y[i]);
    const int b = std::min(9, static_cast<int>(p[i] * 10));
    bin_p[b] += p[i];
    bin_y[b] += y[i];
  }
  r.base_rate = pos / n;
  r.accuracy = correct / n;
  r.majority_accuracy = std::max(r.base_rate, 1 - r.base_rate);
  r.log_loss = ll / n;
  r.base_log_loss = base_ll / n;
  r.brier = brier / n;
  for (int b = 0; b < 10; ++b) r.ece += std::abs(bin_p[b] - bin_y[b]) / n;
  // AUC as the Mann-Whitney statistic, ties sharing their mean rank.
  std::vector<size_t> order(p.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return p[a] < p[b]; });
  double rank_sum = 0;
  for (size_t a = 0; a < order.size();) {
    size_t b = a;
    while (b < order.size() && p[order[b]] == p[order[a]]) ++b;
    const double mean_rank = 0.5 * static_cast<double>(a + 1 + b);
    for (size_t i = a; i < b; ++i) rank_sum += y[order[i]] * mean_rank;
    a = b;
  }
  const double neg = n - pos;
  r.auc = pos > 0 && neg > 0 ? (rank_sum - pos * (pos + 1) / 2) / (pos * neg) : std::nan("");
  for (double t : kThresholds) {
    ThresholdStats s{t, 0, 0};
    double agree = 0;
    for (size_t i = 0; i < p.size(); ++i)
      if (p[i] >= t) {
        s.exit_fraction += 1;
        agree += y[i];
      }
    s.exit_agreement = s.exit_fraction > 0 ? agree / s.exit_fraction : std::nan("");
    s.exit_fraction /= n;
    r.thresholds.push_back(s);
  }
  return r;
}

ExitClassifier train_exit_classifier(const ExitExamples& ex, const ModelIdentity& model,
                                     const ExitTrainOptions& o, ExitTrainReport* report) {
  RRT_CHECK(ex.loops >= 2 && ex.features == model.d_model + 1 && ex.loops == model.loops,
            "exit-classifier", "examples of ", ex.loops, " loops and ", ex.features,
            " features do not fit the model (", model.describe(), ")");
  const int64_t held_seqs = std::max<int64_t>(
      1, static_cast<int64_t>(std::llround(o.held_out * static_cast<double>(ex.sequences))));
  RRT_CHECK(ex.sequences >= 2 && held_seqs < ex.sequences, "exit-classifier", "needs at least ",
            held_seqs + 1, " sequences (", held_seqs, " held out), got ", ex.sequences,
            ": collect more tokens");
  RRT_CHECK(o.hidden >= 0 && o.epochs >= 1 && o.batch >= 1 && o.lr > 0 && o.l2 >= 0,
            "exit-classifier", "needs hidden >= 0, epochs >= 1, batch >= 1, lr > 0, l2 >= 0");
  const int64_t F = ex.features, H = o.hidden;
  const int64_t n_train = (ex.sequences - held_seqs) * ex.seq_len, n = ex.rows();
  ExitClassifier c;
  c.model = model;
  ExitTrainReport rep;
  rep.options = o;
  rep.sequences = ex.sequences;
  rep.seq_len = ex.seq_len;
  for (int64_t k = 1; k < ex.loops; ++k) {
    const std::vector<float>& X = ex.x[static_cast<size_t>(k - 1)];
    const std::vector<float>& Y = ex.y[static_cast<size_t>(k - 1)];
    RRT_CHECK(static_cast<int64_t>(Y.size()) == n && static_cast<int64_t>(X.size()) == n * F,
              "exit-classifier", "loop ", k, ": ", Y.size(), " labels for ", n, " examples");
    // Standardise on the training rows (folded into the probe at the end).
    std::vector<double> mean(static_cast<size_t>(F)), sd(static_cast<size_t>(F));
    double base = 0;
    for (int64_t i = 0; i < n_train; ++i) {
      base += Y[static_cast<size_t>(i)];
      for (int64_t f = 0; f < F; ++f) mean[static_cast<size_t>(f)] += X[i * F + f];
    }
    base /= static_cast<double>(n_train);
    for (double& m : mean) m /= static_cast<double>(n_train);
    for (int64_t i = 0; i < n_train; ++i)
      for (int64_t f = 0; f < F; ++f) {
        const double d = X[i * F + f] - mean[static_cast<size_t>(f)];
        sd[static_cast<size_t>(f)] += d * d;
      }
    for (double& s : sd) s = std::max(std::sqrt(s / static_cast<double>(n_train)), 1e-6);
    const auto standardise = [&](int64_t row, float* out) {
      for (int64_t f = 0; f < F; ++f)
        out[f] = static_cast<float>((X[row * F + f] - mean[static_cast<size_t>(f)]) /
                                    sd[static_cast<size_t>(f)]);
    };
    // Init: weights U(-a, a) (unit-variance inputs keep pre-activations O(1)), the output bias
    // at the base rate's logit.
    ProbeParams<float> p, g, m, v;
    p.resize(F, H);
    const CounterRng rng(o.seed, static_cast<uint64_t>(1000 + k));
    const double a1 = std::sqrt(3.0 / static_cast<double>(F));
    for (size_t i = 0; i < p.w1.size(); ++i)
      p.w1[i] = static_cast<float>(a1 * (2 * rng.uniform(i) - 1));
    const double a2 = H > 0 ? std::sqrt(3.0 / static_cast<double>(H)) : 0;
    for (size_t i = 0; i < p.w2.size(); ++i)
      p.w2[i] = static_cast<float>(a2 * (2 * rng.uniform(p.w1.size() + i) - 1));
    const double q = std::clamp(base, 1e-4, 1 - 1e-4);
    (H == 0 ? p.b1[0] : p.b2) = static_cast<float>(std::log(q / (1 - q)));
    g.resize(F, H);
    m.resize(F, H);
    v.resize(F, H);
    std::vector<int64_t> order(static_cast<size_t>(n_train));
    std::vector<float> xb(static_cast<size_t>(o.batch * F)), yb(static_cast<size_t>(o.batch));
    std::vector<float> xh(static_cast<size_t>(F));
    ProbeParams<float> best = p;
    double best_loss = INFINITY;
    int best_epoch = 0;
    int64_t t = 0;
    const double b1 = 0.9, b2 = 0.999, eps = 1e-8;
    for (int epoch = 1; epoch <= o.epochs; ++epoch) {
      std::iota(order.begin(), order.end(), int64_t{0});
      const CounterRng shuffle(o.seed, static_cast<uint64_t>(k * 100000 + epoch));
      for (int64_t i = n_train - 1; i > 0; --i)
        std::swap(order[static_cast<size_t>(i)],
                  order[shuffle.below(static_cast<uint64_t>(i), static_cast<uint32_t>(i + 1))]);
      for (int64_t at = 0; at < n_train; at += o.batch) {
        const int64_t bn = std::min(o.batch, n_train - at);
        for (int64_t i = 0; i < bn; ++i) {
          const int64_t row = order[static_cast<size_t>(at + i)];
          standardise(row, xb.data() + i * F);
          yb[static_cast<size_t>(i)] = Y[static_cast<size_t>(row)];
        }
        g.resize(F, H);
        probe_loss(p, xb.data(), yb.data(), bn, o.l2, &g);
        ++t;
        const double c1 = 1 - std::pow(b1, static_cast<double>(t));
        const double c2 = 1 - std::pow(b2, static_cast<double>(t));
        each_param(p, g, m, v, [&](float& w, float gw, float& mw, float& vw) {
          mw = static_cast<float>(b1 * mw + (1 - b1) * gw);
          vw = static_cast<float>(b2 * vw + (1 - b2) * gw * gw);
          w -= static_cast<float>(o.lr * (mw / c1) / (std::sqrt(vw / c2) + eps));
        });
      }
      double loss = 0;
      for (int64_t row = n_train; row < n; ++row) {
        standardise(row, xh.data());
        loss += bce(sigmoid(probe_logit(p, xh.data())), Y[static_cast<size_t>(row)]);
      }
      if (loss < best_loss) {
        best_loss = loss;
        best = p;
        best_epoch = epoch;
      }
    }
    // Fold the standardisation: w' = w / sd, b' = b - sum w mean / sd.
    const int64_t rows = std::max<int64_t>(H, 1);
    for (int64_t h = 0; h < rows; ++h) {
      double shift = 0;
      for (int64_t f = 0; f < F; ++f) {
        float& w = best.w1[static_cast<size_t>(h * F + f)];
        shift += w * mean[static_cast<size_t>(f)] / sd[static_cast<size_t>(f)];
        w = static_cast<float>(w / sd[static_cast<size_t>(f)]);
      }
      best.b1[static_cast<size_t>(h)] = static_cast<float>(best.b1[static_cast<size_t>(h)] - shift);
    }
    c.probes.push_back(best);
    // The report from the classifier as served (folded, over the raw features).
    std::vector<double> probs;
    std::vector<float> labels(Y.begin() + n_train, Y.end());
    for (int64_t row = n_train; row < n; ++row)
      probs.push_back(c.probability(k, &X[static_cast<size_t>(row * F)], X[row * F + F - 1]));
    LoopReport r = score_probabilities(probs, labels, base);
    r.loop = k;
    r.train = n_train;
    r.best_epoch = best_epoch;
    rep.loops.push_back(r);
  }
  c.report = rep.json();
  if (report) *report = std::move(rep);
  return c;
}

std::string ExitTrainReport::json() const {
  nlohmann::ordered_json j;
  j["sequences"] = sequences;
  j["seq_len"] = seq_len;
  j["options"] = {{"hidden", options.hidden}, {"epochs", options.epochs},
                  {"batch", options.batch},   {"lr", options.lr},
                  {"l2", options.l2},         {"held_out", options.held_out},
                  {"seed", options.seed}};
  j["loops"] = nlohmann::ordered_json::array();
  for (const LoopReport& r : loops) {
    nlohmann::ordered_json t = nlohmann::ordered_json::array();
    for (const ThresholdStats& s : r.thresholds)
      t.push_back({{"threshold", s.threshold},
                   {"exit_fraction", s.exit_fraction},
                   {"exit_agreement", s.exit_agreement}});
    j["loops"].push_back({{"loop", r.loop},
                          {"train", r.train},
                          {"held_out", r.held_out},
                          {"base_rate", r.base_rate},
                          {"accuracy", r.accuracy},
                          {"majority_accuracy", r.majority_accuracy},
                          {"log_loss", r.log_loss},
                          {"base_log_loss", r.base_log_loss},
                          {"brier", r.brier},
                          {"ece", r.ece},
                          {"auc", r.auc},
                          {"best_epoch", r.best_epoch},
                          {"thresholds", t}});
  }
  return j.dump();
}

std::string ExitTrainReport::markdown() const {
  // snprintf lines: GCC 12 warns falsely (-Wrestrict) on "literal" + std::string chains.
  char line[512];
  std::snprintf(line, sizeof(line),
                "Exit classifier: %ld sequences x %ld tokens (the last %.0f%% held out), hidden "
                "%ld, %d epochs of Adam (lr %g, batch %ld, l2 %g). Held-out:\n\n",
                static_cast<long>(sequences), static_cast<long>(seq_len), 100 * options.held_out,
                static_cast<long>(options.hidden), options.epochs, options.lr,
                static_cast<long>(options.batch), options.l2);
  std::string s = line;
  s += "| loop | train | held out | agree (base rate) | accuracy | majority | log loss | base "
       "log loss | Brier | ECE | AUC | best epoch |\n";
  s += "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
  for (const LoopReport& r : loops) {
    std::snprintf(line, sizeof(line),
                  "| %ld | %ld | %ld | %.3f | %.3f | %.3f | %.4f | %.4f | %.4f | %.4f | %.3f | "
                  "%d |\n",
                  static_cast<long>(r.loop), static_cast<long>(r.train),
                  static_cast<long>(r.held_out), r.base_rate, r.accuracy, r.majority_accuracy,
                  r.log_loss, r.base_log_loss, r.brier, r.ece, r.auc, r.best_epoch);
    s += line;
  }
  s += "\nPer threshold (held out): the tokens whose probability reaches it, and the fraction of "
       "those whose exit agrees with the full depth:\n\n| loop |";
  for (double t : kThresholds) {
    std::snprintf(line, sizeof(line), " %g |", t);
    s += line;
  }
  s += "\n|---:|";
  for (size_t i = 0; i < std::size(kThresholds); ++i) s += "---:|";
  s += "\n";
  for (const LoopReport& r : loops) {
    std::snprintf(line, sizeof(line), "| %ld |", static_cast<long>(r.loop));
    s += line;
    for (const ThresholdStats& t : r.thresholds) {
      if (std::isnan(t.exit_agreement))
        std::snprintf(line, sizeof(line), " %.3f / - |", t.exit_fraction);
      else
        std::snprintf(line, sizeof(line), " %.3f / %.3f |", t.exit_fraction, t.exit_agreement);
      s += line;
    }
    s += "\n";
  }
  return s;
}

}  // namespace rrt::inference
