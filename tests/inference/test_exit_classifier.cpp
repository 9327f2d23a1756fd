// The learned exit classifier (inference/exit_classifier.h): the probe's gradient against finite
// differences in double; the collected labels are the consistency oracle of the full-sequence
// forward; training learns a learnable label (better than chance, from a tiny model's own
// states); the file round-trips and is refused for another model; and the scheduler exits
// exactly where the classifier says (threshold 0: the first loop, above 1: never early, a
// probe on the cosine alone: the saturation rule's exits), running the head only for exiting
// tokens.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "inference/exit_classifier.h"
#include "inference/exit_classifier_train.h"
#include "inference/generate.h"
#include "tests/inference/tiny_models.h"

namespace rrt {
namespace {

using namespace inference;

ProbeParams<double> random_probe(int64_t F, int64_t H, uint64_t seed) {
  ProbeParams<double> p;
  p.resize(F, H);
  fill_normal(p.w1.data(), static_cast<int64_t>(p.w1.size()), 0.0, 0.5, seed, 1);
  fill_normal(p.b1.data(), static_cast<int64_t>(p.b1.size()), 0.0, 0.5, seed, 2);
  if (H > 0) fill_normal(p.w2.data(), H, 0.0, 0.5, seed, 3);
  p.b2 = 0.3;
  return p;
}

// Every parameter as one flat list of pointers (the order does not matter, only the pairing).
std::vector<double*> flat(ProbeParams<double>& p) {
  std::vector<double*> out;
  for (double& x : p.w1) out.push_back(&x);
  for (double& x : p.b1) out.push_back(&x);
  for (double& x : p.w2) out.push_back(&x);
  out.push_back(&p.b2);
  return out;
}

class ProbeGradient : public ::testing::TestWithParam<int64_t> {};

// Central differences in double against the analytic gradient, L2 included; and backward adds
// into the gradient it is given.
TEST_P(ProbeGradient, MatchesFiniteDifferencesInDouble) {
  const int64_t F = 7, H = GetParam(), n = 11;
  ProbeParams<double> p = random_probe(F, H, 5);
  std::vector<double> x(static_cast<size_t>(n * F)), y(static_cast<size_t>(n));
  fill_normal(x.data(), n * F, 0.0, 1.0, 9, 4);
  for (int64_t i = 0; i < n; ++i) y[static_cast<size_t>(i)] = (i * 7 % 3) == 0 ? 1.0 : 0.0;
  const double l2 = 0.03;
  ProbeParams<double> g;
  g.resize(F, H);
  probe_loss(p, x.data(), y.data(), n, l2, &g);
  std::vector<double*> params = flat(p), grads = flat(g);
  ASSERT_EQ(params.size(), grads.size());
  const double h = 1e-6;
  for (size_t i = 0; i < params.size(); ++i) {
    const double keep = *params[i];
    *params[i] = keep + h;
    const double up = probe_loss<double>(p, x.data(), y.data(), n, l2, nullptr);
    *params[i] = keep - h;
    const double down = probe_loss<double>(p, x.data(), y.data(), n, l2, nullptr);
    *params[i] = keep;
    const double fd = (up - down) / (2 * h);
    EXPECT_NEAR(*grads[i], fd, 1e-8 + 1e-6 * std::abs(fd)) << "parameter " << i;
  }
  // Adds: a second pass doubles the gradient.
  ProbeParams<double> twice = g;
  probe_loss(p, x.data(), y.data(), n, l2, &twice);
  std::vector<double*> t = flat(twice);
  for (size_t i = 0; i < t.size(); ++i) EXPECT_NEAR(*t[i], 2 * *grads[i], 1e-12);
}

INSTANTIATE_TEST_SUITE_P(Hidden, ProbeGradient, ::testing::Values(0, 1, 4),
                         [](const auto& info) { return "hidden" + std::to_string(info.param); });

std::vector<std::vector<int32_t>> sequences(int64_t count, int64_t T, int64_t V, uint64_t seed) {
  const CounterRng rng(seed, 3);
  std::vector<std::vector<int32_t>> out(static_cast<size_t>(count));
  for (int64_t s = 0; s < count; ++s)
    for (int64_t t = 0; t < T; ++t)
      out[static_cast<size_t>(s)].push_back(static_cast<int32_t>(
          rng.below(static_cast<uint64_t>(s * T + t), static_cast<uint32_t>(V))));
  return out;
}

// The label of loop k at a position is whether exit k's argmax equals exit K's, as the
// full-sequence forward computes them; the cosine feature is a cosine.
TEST(ExitClassifier, CollectedLabelsAreTheConsistencyOracleOfTheForward) {
  const ModelSpec spec = testing::tiny_spec(Family::llama, false, 3);
  const int64_t T = 12, V = spec.model.vocab, D = spec.model.d_model;
  testing::TinyModel tm = testing::make_tiny(spec, 1, T);
  const auto seqs = sequences(3, T, V, 4);
  const ExitExamples ex = collect_exit_examples(*tm.engine, seqs);
  ASSERT_EQ(ex.loops, 3);
  ASSERT_EQ(ex.features, D + 1);
  ASSERT_EQ(ex.x.size(), 2u);
  int64_t agree = 0;
  for (size_t s = 0; s < seqs.size(); ++s) {
    const std::vector<float> last = testing::reference_exit_logits(*tm.model, seqs[s], 3);
    for (int64_t k = 1; k <= 2; ++k) {
      const std::vector<float> z = testing::reference_exit_logits(*tm.model, seqs[s], k);
      for (int64_t i = 0; i < T; ++i) {
        const int64_t row = static_cast<int64_t>(s) * T + i;
        const bool same = testing::argmax_row(z, i, V) == testing::argmax_row(last, i, V);
        EXPECT_EQ(ex.y[static_cast<size_t>(k - 1)][static_cast<size_t>(row)], same ? 1.f : 0.f)
            << "sequence " << s << " loop " << k << " position " << i;
        agree += same;
        const float cosine =
            ex.x[static_cast<size_t>(k - 1)][static_cast<size_t>(row * (D + 1) + D)];
        EXPECT_LE(std::abs(cosine), 1.f + 1e-6f);
      }
    }
  }
  EXPECT_GT(agree, 0) << "no agreeing exit: the labels would prove nothing";
  EXPECT_LT(agree, 2 * 3 * T) << "every exit agrees: the labels would prove nothing";
}

// From a tiny model's own states, a label that is a function of them (the sign of one normed
// dimension against its median, the consistency labels of random weights being near noise) is
// learned: held-out accuracy well above the majority class, by the linear probe and the MLP.
TEST(ExitClassifier, TrainingLearnsALearnableLabelFromTheModelsStates) {
  const ModelSpec spec = testing::tiny_spec(Family::llama, false, 3);
  const int64_t T = 32, V = spec.model.vocab;
  testing::TinyModel tm = testing::make_tiny(spec, 1, T);
  ExitExamples ex = collect_exit_examples(*tm.engine, sequences(40, T, V, 8));
  const int64_t F = ex.features, n = ex.rows();
  for (size_t k = 0; k < ex.x.size(); ++k) {
    std::vector<float> v;
    for (int64_t i = 0; i < n; ++i) v.push_back(ex.x[k][static_cast<size_t>(i * F + 3)]);
    std::nth_element(v.begin(), v.begin() + n / 2, v.end());
    const float median = v[static_cast<size_t>(n / 2)];
    for (int64_t i = 0; i < n; ++i)
      ex.y[k][static_cast<size_t>(i)] =
          ex.x[k][static_cast<size_t>(i * F + 3)] > median ? 1.f : 0.f;
  }
  const ModelIdentity id = model_identity(spec, tm.model->params());
  for (int64_t hidden : {0, 8}) {
    ExitTrainOptions o;
    o.hidden = hidden;
    o.epochs = 40;
    o.batch = 64;
    o.lr = 1e-2;
    ExitTrainReport rep;
    const ExitClassifier c = train_exit_classifier(ex, id, o, &rep);
    ASSERT_EQ(rep.loops.size(), 2u);
    for (const LoopReport& r : rep.loops) {
      EXPECT_GE(r.accuracy, 0.9) << "hidden " << hidden << " loop " << r.loop;
      EXPECT_LT(r.majority_accuracy, 0.7) << "hidden " << hidden << " loop " << r.loop;
      EXPECT_LT(r.log_loss, 0.5 * r.base_log_loss) << "hidden " << hidden << " loop " << r.loop;
      EXPECT_GT(r.auc, 0.95) << "hidden " << hidden << " loop " << r.loop;
    }
    EXPECT_EQ(c.hidden(), hidden);
  }
}

TEST(ExitClassifier, ScoresOfKnownProbabilities) {
  // Perfectly ranked, calibrated in two bins.
  const std::vector<double> p = {0.05, 0.05, 0.95, 0.95};
  const std::vector<float> y = {0, 0, 1, 1};
  const LoopReport r = score_probabilities(p, y, 0.5);
  EXPECT_DOUBLE_EQ(r.accuracy, 1.0);
  EXPECT_DOUBLE_EQ(r.base_rate, 0.5);
  EXPECT_DOUBLE_EQ(r.auc, 1.0);
  EXPECT_NEAR(r.ece, 0.05, 1e-12);
  EXPECT_NEAR(r.brier, 0.0025, 1e-12);
  EXPECT_NEAR(r.base_log_loss, std::log(2.0), 1e-12);
  EXPECT_NEAR(r.thresholds[0].exit_fraction, 0.5, 1e-12);  // threshold 0.5
  EXPECT_NEAR(r.thresholds[0].exit_agreement, 1.0, 1e-12);
}

// A classifier whose probe per loop is a constant (bias only), or reads the cosine alone.
ExitClassifier constant_classifier(const ModelIdentity& id, std::vector<double> logits) {
  ExitClassifier c;
  c.model = id;
  for (double z : logits) {
    ProbeParams<float> p;
    p.resize(id.d_model + 1, 0);
    p.b1[0] = static_cast<float>(z);
    c.probes.push_back(p);
  }
  return c;
}

std::string temp_file(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          (name + "_" + std::to_string(::getpid()) + ".safetensors"))
      .string();
}

TEST(ExitClassifier, FileRoundTripsAndIsRefusedForAnotherModel) {
  const ModelSpec spec = testing::tiny_spec(Family::llama, false, 3);
  testing::TinyModel a = testing::make_tiny(spec, 1, 8, 3), b = testing::make_tiny(spec, 1, 8, 4);
  const ModelIdentity ia = model_identity(spec, a.model->params());
  const ModelIdentity ib = model_identity(spec, b.model->params());
  ASSERT_EQ(ia, model_identity(spec, a.model->params()));
  ASSERT_NE(ia.weights_crc32, ib.weights_crc32);
  EXPECT_EQ(ia.d_model, ib.d_model);  // same shape: only the weights tell them apart
  ExitClassifier c;
  c.model = ia;
  c.checkpoint = "a.h5";
  c.report = "{\"x\":1}";
  const int64_t F = spec.model.d_model + 1;
  for (int k = 0; k < 2; ++k) {
    ProbeParams<double> d = random_probe(F, 3, 20 + static_cast<uint64_t>(k));
    ProbeParams<float> p;
    p.resize(F, 3);
    for (size_t i = 0; i < p.w1.size(); ++i) p.w1[i] = static_cast<float>(d.w1[i] * 0.1);
    for (size_t i = 0; i < p.b1.size(); ++i) p.b1[i] = static_cast<float>(d.b1[i]);
    for (size_t i = 0; i < p.w2.size(); ++i) p.w2[i] = static_cast<float>(d.w2[i]);
    p.b2 = static_cast<float>(d.b2);
    c.probes.push_back(p);
  }
  const std::string path = temp_file("rrt_exit_classifier");
  save_exit_classifier(path, c);
  const ExitClassifier back = load_exit_classifier(path, ia);
  EXPECT_EQ(back.checkpoint, "a.h5");
  EXPECT_EQ(back.report, "{\"x\":1}");
  std::vector<float> state(static_cast<size_t>(F - 1));
  fill_normal(state.data(), F - 1, 0.0, 1.0, 2, 2);
  for (int64_t k = 1; k <= 2; ++k) {
    const double p = c.probability(k, state.data(), 0.4);
    EXPECT_GT(p, 0.0);
    EXPECT_LT(p, 1.0);
    EXPECT_EQ(back.probability(k, state.data(), 0.4), p) << "loop " << k;
  }
  try {
    load_exit_classifier(path, ib);
    ADD_FAILURE() << "a classifier of another model was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("another model"), std::string::npos) << e.what();
  }
  // A safetensors file that is not a classifier.
  const std::string other = temp_file("rrt_not_a_classifier");
  a.model->params().save(other);
  EXPECT_THROW(load_exit_classifier(other), Error);
  std::filesystem::remove(path);
  std::filesystem::remove(other);
}

int64_t head_rows(const RunStats& st) {
  int64_t n = 0;
  for (const EngineCall& c : st.calls)
    if (c.kind == CallKind::head) n += c.rows;
  return n;
}

std::vector<Request> requests(int64_t V) {
  std::vector<Request> out;
  for (int64_t r = 0; r < 5; ++r) {
    Request q;
    for (int64_t t = 0; t < 2 + r * 3 % 7; ++t)
      q.prompt.push_back(static_cast<int32_t>((t * 13 + r * 7 + 2) % V));
    q.max_new_tokens = 3 + r % 4;
    out.push_back(q);
  }
  return out;
}

std::vector<std::vector<int32_t>> tokens_of(const std::vector<Completion>& cs) {
  std::vector<std::vector<int32_t>> out;
  for (const Completion& c : cs) out.push_back(c.tokens);
  return out;
}

constexpr Batching kBatchings[] = {Batching::static_batch, Batching::sequence_wise,
                                   Batching::depth_wise};

// Threshold 0: every decoded token exits at loop 1; above 1: none exits early (the tokens of
// exits off); a probe that is certain at loop 2 only: every token exits at loop 2. The head runs
// once per generated token (its exit's) in each case.
TEST(ExitClassifier, SchedulerExitsExactlyWhereTheClassifierSays) {
  const ModelSpec spec = testing::tiny_spec(Family::llama, false, 3);
  testing::TinyModel tm = testing::make_tiny(spec, 3, 16);
  const ModelIdentity id = model_identity(spec, tm.model->params());
  const std::vector<Request> reqs = requests(spec.model.vocab);
  GenerateOptions full;
  full.max_batch = 3;
  const auto want = tokens_of(generate(*tm.engine, reqs, full));
  const ExitClassifier unsure = constant_classifier(id, {0.0, 0.0});  // p = 0.5 everywhere
  const ExitClassifier second = constant_classifier(id, {-30.0, 30.0});
  for (Batching b : kBatchings) {
    GenerateOptions o = full;
    o.batching = b;
    o.exit = {.rule = ExitRule::classifier, .threshold = 1.5, .classifier = &unsure};
    RunStats stats;
    EXPECT_EQ(tokens_of(generate(*tm.engine, reqs, o, &stats)), want) << to_string(b);
    EXPECT_DOUBLE_EQ(stats.mean_loops(), 3.0) << to_string(b);
    EXPECT_EQ(head_rows(stats), stats.generated) << to_string(b);
    o.exit.threshold = 0.0;
    for (const Completion& c : generate(*tm.engine, reqs, o, &stats))
      for (size_t i = 1; i < c.exit_loops.size(); ++i) EXPECT_EQ(c.exit_loops[i], 1);
    EXPECT_DOUBLE_EQ(stats.mean_loops(), 1.0) << to_string(b);
    EXPECT_EQ(head_rows(stats), stats.generated) << to_string(b);
    o.exit = {.rule = ExitRule::classifier, .threshold = 0.9, .classifier = &second};
    for (const Completion& c : generate(*tm.engine, reqs, o, &stats))
      for (size_t i = 1; i < c.exit_loops.size(); ++i) EXPECT_EQ(c.exit_loops[i], 2);
    EXPECT_DOUBLE_EQ(stats.mean_loops(), 2.0) << to_string(b);
    EXPECT_EQ(head_rows(stats), stats.generated) << to_string(b);
  }
}

// A probe that reads only the cosine, p = sigmoid(a (cos - c)) with a steep a, exits where the
// saturation rule at threshold c does: the scheduler gives each row its own features. A threshold
// is chosen that mixes the exits, so the comparison means something.
TEST(ExitClassifier, ACosineProbeExitsWhereTheSaturationRuleDoes) {
  const ModelSpec spec = testing::tiny_spec(Family::llama, false, 3);
  testing::TinyModel tm = testing::make_tiny(spec, 3, 16);
  const ModelIdentity id = model_identity(spec, tm.model->params());
  const std::vector<Request> reqs = requests(spec.model.vocab);
  GenerateOptions base;
  base.max_batch = 3;
  double mixed = 2;
  for (double t = 0.99; t > -1 && mixed > 1; t -= 0.01) {
    GenerateOptions o = base;
    o.exit = {.rule = ExitRule::saturation, .threshold = t};
    RunStats stats;
    generate(*tm.engine, reqs, o, &stats);
    if (stats.mean_loops() > 1.3 && stats.mean_loops() < 2.7) mixed = t;
  }
  ASSERT_LE(mixed, 1) << "no threshold mixes the exits: the test would prove nothing";
  ExitClassifier cosine = constant_classifier(id, {0.0, 0.0});
  const double a = 1e4;
  for (ProbeParams<float>& p : cosine.probes) {
    p.w1[static_cast<size_t>(spec.model.d_model)] = static_cast<float>(a);
    p.b1[0] = static_cast<float>(-a * (mixed + 1e-9));
  }
  for (Batching b : kBatchings) {
    GenerateOptions sat = base, cls = base;
    sat.batching = cls.batching = b;
    sat.exit = {.rule = ExitRule::saturation, .threshold = mixed};
    cls.exit = {.rule = ExitRule::classifier, .threshold = 0.5, .classifier = &cosine};
    const auto s = generate(*tm.engine, reqs, sat);
    const auto c = generate(*tm.engine, reqs, cls);
    for (size_t r = 0; r < reqs.size(); ++r) {
      EXPECT_EQ(c[r].exit_loops, s[r].exit_loops) << to_string(b) << " request " << r;
      EXPECT_EQ(c[r].tokens, s[r].tokens) << to_string(b) << " request " << r;
    }
  }
}

TEST(ExitClassifier, SchedulerRefusesTheRuleWithoutAClassifier) {
  const ModelSpec spec = testing::tiny_spec(Family::llama, false, 3);
  testing::TinyModel tm = testing::make_tiny(spec, 3, 16);
  GenerateOptions o;
  o.max_batch = 3;
  o.exit.rule = ExitRule::classifier;
  EXPECT_THROW(generate(*tm.engine, requests(spec.model.vocab), o), Error);
  // A request asking for it in a run without one.
  GenerateOptions plain;
  plain.max_batch = 3;
  std::vector<Request> reqs = requests(spec.model.vocab);
  reqs[1].exit = ExitPolicy{.rule = ExitRule::classifier, .threshold = 0.5};
  EXPECT_THROW(generate(*tm.engine, reqs, plain), Error);
}

}  // namespace
}  // namespace rrt
