// Issue 20's "Numerics": a 300-step training curve of the demo's relaxed model in bf16 within a
// stated tolerance of fp32's. The model is rrt demo's relaxed r=4 shape (configs/demo.yaml with
// recursion.loops=2, lora.rank=4: d 128, 4 / 2 heads, SwiGLU 352, 2 block layers x 2 loops,
// LoRA r 4 on all seven projections, byte vocabulary, tied head), trained from the same random
// initialisation on the demo corpus in the same order, once with train.precision fp32 and once
// with bf16 (the CPU bf16 backend), on micro-batches of 4 x 64 tokens (the demo's 8 x 128 would
// take 4x as long) and one thread, so the curve is reproducible with `rrt train` (docs/demo.md).
// Label `long` (about a minute on one core); skipped, with the reason, where this build or CPU
// has no bf16 backend.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "config/config_io.h"
#include "data/prepare.h"
#include "data/tokenizer.h"
#include "evaluation/evaluate.h"
#include "model/cpu_bf16_model.h"
#include "trainer/trainer.h"

#ifndef RRT_SOURCE_DIR
#error "RRT_SOURCE_DIR: the source tree (configs/demo.yaml, data/corpus/demo.jsonl)"
#endif

namespace rrt {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kSteps = 300;
constexpr int64_t kWindow = 20;  // steps per smoothed point of the curve

// The tolerances, and why (docs/demo.md has the measurements).
//   kLoss 1e-2 relative: the whole-model loss tolerance of the bf16 backends at equal weights
//     (tests/model/test_core_bf16.cpp, tests/gpu/test_model_gpu.cpp): activations stored in bf16
//     (8-bit significand, unit roundoff 2^-9 = 2e-3) through 4 layer applications and the head
//     move the logits by up to 3e-2 relative L2 and the mean cross-entropy by up to 1e-2. Step 1
//     runs both precisions on identical weights, so this is all it may differ by there.
//   kEarly 2e-2 relative on the 20-step means of steps 1-100: kLoss twice, once for scoring in
//     bf16 arithmetic, once for weights trained on bf16 gradients. While the two runs' weights
//     still differ by little more than their rounding, AdamW (which normalises every update to
//     the same step size whatever the gradient's rounding) keeps them equally far along.
//   kLate 7e-2 relative on the 20-step means of steps 101-300 and on the final validation
//     loss: kLoss plus twice the trajectory spread of fp32 itself. This model at the demo's peak
//     learning rate is chaotic: fp32 runs whose learning rate or init scale differ by one bf16
//     unit roundoff (x (1 + 2^-9)) leave the unperturbed run after step ~100 and, measured over
//     seeds 1-3 (6 runs), their 20-step means differ from it by up to 2.9% and their validation
//     loss by up to 2.6% (the same at the demo's 8 x 128 batch: 4.3% and 1.6%). bf16 rounds every
//     activation of every step, a perturbation at least as large, so its curve may leave fp32's
//     as far; twice the measured spread (3e-2) allows for the few control runs. A first
//     tolerance of 2e-2 over the whole curve (kEarly throughout) failed on seed 1 at steps
//     161-300 (5.7% at most), where the fp32 controls show the same kind of departure.
// The early windows are the sharp check of the arithmetic; the late ones and the validation
// loss catch a bf16 run that stops learning or drifts away (a wrong gradient, lost updates).
constexpr double kLoss = 1e-2;
constexpr double kEarly = 2 * kLoss;
constexpr int64_t kEarlySteps = 100;
constexpr double kLate = kLoss + 2 * 3e-2;

std::string source(const std::string& rel) { return (fs::path(RRT_SOURCE_DIR) / rel).string(); }

fs::path work_dir() {
  return fs::path(::testing::TempDir()) / ("rrt_precision_curve_" + std::to_string(::getpid()));
}

// The demo corpus as rrt demo prepares it (byte tokenizer), once per process.
const std::string& demo_shards() {
  static const std::string dir = [] {
    const fs::path out = work_dir() / "data";
    fs::remove_all(out);
    PrepareOptions o;
    o.inputs = {source("data/corpus/demo.jsonl")};
    o.out_dir = out.string();
    o.tokenizer = "byte";
    o.progress = false;
    prepare_shards(o);
    return out.string();
  }();
  return dir;
}

// Unigram entropy of the corpus (nats per token): what a model learns from token frequencies
// alone. A run whose validation loss is below it has learned from context.
double corpus_unigram_entropy() {
  const auto tok = make_tokenizer("byte");
  std::vector<int64_t> counts(static_cast<size_t>(tok->vocab_size()), 0);
  std::ifstream in(source("data/corpus/demo.jsonl"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    for (int32_t id : tok->encode(nlohmann::json::parse(line).at("text").get<std::string>()))
      ++counts[static_cast<size_t>(id)];
    ++counts[static_cast<size_t>(tok->eos_id())];
  }
  return unigram_entropy(counts);
}

// What docs/demo.md gives as the `rrt train` command line of the same run.
RunConfig curve_run(const std::string& precision) {
  const fs::path run_dir = work_dir() / precision;
  fs::remove_all(run_dir);
  return load_run_config(
      source("configs/demo.yaml"),
      {"recursion.loops=2", "lora.rank=4", "data.path=" + demo_shards(),
       "train.run_dir=" + run_dir.string(), "train.precision=" + precision,
       "train.steps=" + std::to_string(kSteps), "train.micro_batch=4", "train.seq_len=64",
       "train.threads=1", "optim.warmup_steps=30", "train.eval_every=" + std::to_string(kSteps),
       "train.eval_batches=40", "checkpoint.every=" + std::to_string(kSteps),
       "checkpoint.keep_last=1", "log.every=50"});
}

std::vector<double> window_means(const std::vector<double>& losses) {
  std::vector<double> m;
  for (size_t i = 0; i + kWindow <= losses.size(); i += kWindow) {
    double s = 0;
    for (size_t j = i; j < i + kWindow; ++j) s += losses[j];
    m.push_back(s / kWindow);
  }
  return m;
}

double rel(double have, double want) { return std::fabs(have - want) / std::fabs(want); }

TEST(Bf16Curve, TheDemosRelaxedModelFollowsFp32For300Steps) {
  std::string why;
  if (!cpu_bf16_supported(&why)) GTEST_SKIP() << why;
  const TrainSummary fp32 = Trainer(curve_run("fp32")).run();
  const TrainSummary bf16 = Trainer(curve_run("bf16")).run();
  ASSERT_EQ(fp32.losses.size(), static_cast<size_t>(kSteps));
  ASSERT_EQ(bf16.losses.size(), static_cast<size_t>(kSteps));

  // Step 1: the same weights and batch; only the arithmetic differs, and it does differ.
  const double first = rel(bf16.losses[0], fp32.losses[0]);
  std::printf("step 1: fp32 %.5f bf16 %.5f (relative %.2e, tolerance %.0e)\n", fp32.losses[0],
              bf16.losses[0], first, kLoss);
  EXPECT_LT(first, kLoss);
  EXPECT_NE(bf16.losses[0], fp32.losses[0]) << "not the bf16 arithmetic";

  const std::vector<double> want = window_means(fp32.losses), have = window_means(bf16.losses);
  double worst_early = 0, worst_late = 0;
  std::printf("steps      fp32      bf16  relative  tolerance\n");
  for (size_t w = 0; w < want.size(); ++w) {
    const int64_t last = static_cast<int64_t>(w + 1) * kWindow;
    const bool early = last <= kEarlySteps;
    const double d = rel(have[w], want[w]), tol = early ? kEarly : kLate;
    std::printf("%3ld-%3ld %8.4f %9.4f %9.2e %10.0e\n", static_cast<long>(last - kWindow + 1),
                static_cast<long>(last), want[w], have[w], d, tol);
    (early ? worst_early : worst_late) = std::max(early ? worst_early : worst_late, d);
    EXPECT_LT(d, tol) << "steps " << last - kWindow + 1 << "-" << last;
  }
  double worst_single = 0;
  for (int64_t i = 0; i < kSteps; ++i)
    worst_single = std::max(worst_single, rel(bf16.losses[i], fp32.losses[i]));
  const double val = rel(bf16.last_val_loss, fp32.last_val_loss);
  std::printf(
      "20-step means: worst relative deviation %.2e in steps 1-%ld (tolerance %.0e), %.2e after "
      "(tolerance %.0e); single steps: worst %.2e (not asserted)\n"
      "validation loss after %ld steps: fp32 %.4f bf16 %.4f (relative %.2e, tolerance %.0e)\n",
      worst_early, static_cast<long>(kEarlySteps), kEarly, worst_late, kLate, worst_single,
      static_cast<long>(kSteps), fp32.last_val_loss, bf16.last_val_loss, val, kLate);
  ASSERT_GT(fp32.last_val_loss, 0);
  ASSERT_GT(bf16.last_val_loss, 0);
  EXPECT_LT(val, kLate);

  // It trained: the smoothed loss fell, and the validation loss is below what token frequencies
  // alone give (the model uses context).
  const double h = corpus_unigram_entropy();
  std::printf("corpus unigram entropy %.4f nats/token\n", h);
  EXPECT_LT(have.back(), have.front() - 1.0);
  EXPECT_LT(bf16.last_val_loss, h);
  fs::remove_all(work_dir());
}

}  // namespace
}  // namespace rrt
