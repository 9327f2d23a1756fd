// train.precision: bf16 on the CPU (trainer/trainable_model.cpp's CpuBf16Trainable over
// model/cpu_bf16_model.h): the run follows the fp32 run's loss curve, its checkpoints hold fp32
// masters that resume bit-exactly, and the config refuses what no backend runs. Skipped, with
// the reason, on a CPU without bf16 arithmetic.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>

#include "config/config_io.h"
#include "model/cpu_bf16_model.h"
#include "tests/bf16_model_tolerances.h"
#include "tests/error_helpers.h"
#include "tests/trainer/small_run.h"
#include "trainer/trainer.h"

namespace rrt {
namespace {

namespace fs = std::filesystem;
using testing::bit_equal;
using testing::checkpoint_values;
using testing::fresh_run_dir;
using testing::small_run;

#define RRT_REQUIRE_CPU_BF16()                          \
  do {                                                  \
    std::string why;                                    \
    if (!cpu_bf16_supported(&why)) GTEST_SKIP() << why; \
  } while (0)

// Tolerances against the fp32 run on the same data and initialisation:
//   step 1 (identical weights): 1e-2 relative, the whole-model loss tolerance of the bf16
//     backends (tests/gpu/test_model_gpu.cpp, tests/model/test_core_bf16.cpp): bf16 activations
//     through every layer;
//   the curve (8 AdamW steps at lr 3e-3): 3e-2 relative per step, the step-1 error compounded by
//     updates computed from bf16 gradients (AdamW normalises them, so each step moves by lr
//     whatever their rounding).
constexpr double kFirstStep = testing::bf16_model_tol::kLoss;
constexpr double kCurve = 3e-2;

TEST(Bf16Training, FollowsTheFp32LossCurve) {
  RRT_REQUIRE_CPU_BF16();
  RunConfig fp32 = small_run(fresh_run_dir("precision_fp32").string(), 8);
  RunConfig bf16 = small_run(fresh_run_dir("precision_bf16").string(), 8);
  bf16.train.precision = "bf16";
  const TrainSummary want = Trainer(fp32).run();
  const TrainSummary have = Trainer(bf16).run();
  ASSERT_EQ(have.losses.size(), want.losses.size());
  ASSERT_EQ(have.losses.size(), 8u);
  EXPECT_LT(std::fabs(have.losses[0] - want.losses[0]) / want.losses[0], kFirstStep);
  for (size_t i = 0; i < want.losses.size(); ++i) {
    std::printf("step %zu: fp32 %.5f bf16 %.5f\n", i + 1, want.losses[i], have.losses[i]);
    EXPECT_LT(std::fabs(have.losses[i] - want.losses[i]) / want.losses[i], kCurve) << i;
  }
  // It trained: the loss fell as fp32's did.
  EXPECT_LT(have.losses.back(), have.losses.front() - 0.1);
  // Not the fp32 path under another name: its numbers differ.
  EXPECT_NE(have.losses[0], want.losses[0]);
}

// The checkpoint holds the fp32 masters; a resume rebuilds the bf16 copy from them, so the run
// interrupted after step 4 ends where the uninterrupted one does, bit for bit.
TEST(Bf16Training, ResumesBitExactly) {
  RRT_REQUIRE_CPU_BF16();
  RunConfig whole = small_run(fresh_run_dir("bf16_whole").string(), 8);
  whole.train.precision = "bf16";
  whole.checkpoint.keep_last = 10;
  Trainer(whole).run();
  RunConfig part = small_run(fresh_run_dir("bf16_part").string(), 8);
  part.train.precision = "bf16";
  part.checkpoint.keep_last = 10;
  Trainer(part).run();
  for (const char* late : {"step_00000006.h5", "step_00000008.h5"})
    ASSERT_TRUE(fs::remove(fs::path(part.train.run_dir) / late)) << late;
  const TrainSummary resumed = Trainer(part).run();
  EXPECT_EQ(resumed.first_step, 5);
  EXPECT_TRUE(bit_equal(
      checkpoint_values((fs::path(whole.train.run_dir) / "step_00000008.h5").string(), whole),
      checkpoint_values((fs::path(part.train.run_dir) / "step_00000008.h5").string(), part)));
}

// Distillation from a teacher checkpoint, with exits at every loop and self-distillation: the
// teacher runs forward only in bf16 too (a CpuBf16Model over its host set), and every logged
// loss term follows the fp32 run's within the curve tolerance.
TEST(Bf16Training, DistillsWithExitsLikeFp32) {
  RRT_REQUIRE_CPU_BF16();
  RunConfig teacher = small_run(fresh_run_dir("bf16_teacher").string(), 4);
  const TrainSummary t = Trainer(teacher).run();
  ASSERT_FALSE(t.last_checkpoint.empty());
  TrainSummary runs[2];
  for (int i = 0; i < 2; ++i) {
    RunConfig c = small_run(fresh_run_dir(i ? "bf16_student" : "fp32_student").string(), 6);
    c.distill.teacher = t.last_checkpoint;
    c.distill.temperature = 2.0;
    c.early_exit.exits = {"all"};
    c.early_exit.self_distill = true;
    if (i) c.train.precision = "bf16";
    runs[i] = Trainer(c).run();
  }
  ASSERT_EQ(runs[1].losses.size(), runs[0].losses.size());
  for (size_t i = 0; i < runs[0].losses.size(); ++i)
    EXPECT_LT(std::fabs(runs[1].losses[i] - runs[0].losses[i]) / runs[0].losses[i], kCurve) << i;
  EXPECT_LT(std::fabs(runs[1].losses[0] - runs[0].losses[0]) / runs[0].losses[0], kFirstStep);
  EXPECT_LT(std::fabs(runs[1].last_val_loss - runs[0].last_val_loss) / runs[0].last_val_loss,
            kCurve);
}

TEST(Bf16Training, Fp32OnCudaIsRefusedWithTheKey) {
  RunConfig c = small_run(fresh_run_dir("precision_cuda").string(), 2);
  c.train.device = "cuda";
  c.train.precision = "fp32";
  const std::string msg = testing::error_message([&] { validate_run_config(c); });
  EXPECT_TRUE(testing::contains(msg, "train.precision")) << msg;
  c.train.precision = "auto";
  validate_run_config(c);
  c.train.precision = "bf16";
  validate_run_config(c);
}

}  // namespace
}  // namespace rrt
