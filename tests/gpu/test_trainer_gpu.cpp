// The trainer with train.device: cuda against train.device: cpu from the same initialisation:
// 10 optimizer steps (gradient accumulation 2, clipping, warm-up, AdamW), every step's training
// loss within kStepLoss of the CPU's, the loss falling on both, and a checkpoint written from the
// GPU's fp32 masters that the CPU reads back and scores like the GPU's own validation loss.
// Tolerances (bf16 activations, see test_model_gpu.cpp; the two runs' weights drift apart a
// little more with every step, as any two precisions do):
//   kStepLoss = 2e-2  relative difference of each step's mean training loss
//   kValLoss  = 2e-2  relative difference of the CPU's score of the GPU checkpoint and the GPU's
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>

#include "config/config_io.h"
#include "core/error.h"
#include "evaluation/evaluate.h"
#include "model/cuda/device_model.h"
#include "tests/gpu/gpu_test.h"
#include "tests/text_shards.h"
#include "trainer/trainer.h"

namespace rrt {
namespace {

namespace fs = std::filesystem;

constexpr double kStepLoss = 2e-2;
constexpr double kValLoss = 2e-2;

// Token shards of a few KB of text (as tests/trainer/test_trainer.cpp prepares them).
const std::string& shards() {
  static const std::string dir = rrt::prepare_test_shards(
      fs::path(::testing::TempDir()) / ("rrt_trainer_gpu_data_" + std::to_string(::getpid())), 6,
      40, [](int d, int i) {
        return "Document " + std::to_string(d) + " line " + std::to_string(i) +
               ": the loop runs the block again.";
      });
  return dir;
}

// A relaxed model (2 block layers x 2 loops, LoRA, MQA, heads of 64) on the byte vocabulary.
RunConfig small_run(const std::string& run_dir, const std::string& device) {
  RunConfig c;
  c.model.model = {.n_layers = 4,
                   .vocab = 257,
                   .d_model = 128,
                   .n_heads = 2,
                   .n_kv_heads = 1,
                   .ffn = 192,
                   .max_seq_len = 32};
  c.model.recursion = {.block_layers = 2, .loops = 2};
  c.model.lora = {.rank_attention = 8, .rank_mlp = 4};
  c.data.path = shards();
  c.data.val_fraction = 0.1;
  c.data.seed = 5;
  c.optim.lr = 3e-3;
  c.optim.warmup_steps = 2;
  c.train.steps = 10;
  c.train.micro_batch = 3;
  c.train.grad_accum = 2;
  c.train.seq_len = 32;
  c.train.eval_every = 1000;
  c.train.eval_batches = 2;
  c.train.run_dir = run_dir;
  c.train.device = device;
  c.checkpoint.every = 1000;
  c.log.every = 5;
  return c;
}

fs::path fresh(const std::string& name) {
  const fs::path p = fs::path(::testing::TempDir()) /
                     ("rrt_trainer_gpu_" + std::to_string(::getpid()) + "_" + name);
  fs::remove_all(p);
  return p;
}

TEST(TrainerGpu, TenStepsTrackTheCpuAndTheCheckpointIsDeviceIndependent) {
  // The CPU run first (it needs no GPU, so its half of the test runs everywhere).
  const TrainSummary cpu = Trainer(small_run(fresh("cpu").string(), "cpu")).run();
  ASSERT_EQ(cpu.losses.size(), 10u);
  EXPECT_LT(cpu.losses.back(), cpu.losses.front() - 0.1) << "the CPU run did not learn";
  RRT_REQUIRE_GPU();
  const TrainSummary gpu = Trainer(small_run(fresh("cuda").string(), "cuda")).run();
  ASSERT_EQ(gpu.losses.size(), 10u);
  for (size_t i = 0; i < cpu.losses.size(); ++i)
    EXPECT_NEAR(gpu.losses[i], cpu.losses[i], kStepLoss * cpu.losses[i]) << "step " << i + 1;
  EXPECT_LT(gpu.losses.back(), gpu.losses.front() - 0.1) << "the GPU run did not learn";

  // The GPU's checkpoint holds its fp32 masters in the common format: the CPU evaluates it.
  ASSERT_FALSE(gpu.last_checkpoint.empty());
  ASSERT_GT(gpu.last_val_loss, 0);
  const EvalResult on_cpu = evaluate_checkpoint(gpu.last_checkpoint, "", 2);
  EXPECT_NEAR(on_cpu.loss, gpu.last_val_loss, kValLoss * gpu.last_val_loss);
  EXPECT_EQ(on_cpu.step, 10);
}

// Distillation and early exits through the trainer: a teacher trained 3 steps on the CPU, then
// 10 steps of KD (reverse KL, tau = 2) + exits at both loops (aggressive(0.1), self-distillation,
// head adapters) on cpu and on cuda from the same initialisation. The cuda run loads the teacher
// onto the GPU (a forward-only device model); every step's loss within kStepLoss of the CPU's.
TEST(TrainerGpu, DistillationWithExitsTracksTheCpu) {
  RunConfig teacher_run = small_run(fresh("kd_teacher").string(), "cpu");
  teacher_run.model.recursion = {.block_layers = 4, .loops = 1};
  teacher_run.model.lora = {};
  teacher_run.train.steps = 3;
  const TrainSummary teacher = Trainer(teacher_run).run();
  ASSERT_FALSE(teacher.last_checkpoint.empty());
  auto student = [&](const std::string& device) {
    RunConfig c = small_run(fresh("kd_" + device).string(), device);
    c.distill.teacher = teacher.last_checkpoint;
    c.distill.divergence = "reverse_kl";
    c.distill.temperature = 2.0;
    c.early_exit.exits = {"all"};
    c.early_exit.weights = {"aggressive(0.1)"};
    c.early_exit.self_distill = true;
    c.model.exit_head.lora_rank = 4;
    return c;
  };
  const TrainSummary cpu = Trainer(student("cpu")).run();
  ASSERT_EQ(cpu.losses.size(), 10u);
  EXPECT_LT(cpu.losses.back(), cpu.losses.front()) << "the CPU run did not learn";
  RRT_REQUIRE_GPU();
  const TrainSummary gpu = Trainer(student("cuda")).run();
  ASSERT_EQ(gpu.losses.size(), 10u);
  for (size_t i = 0; i < cpu.losses.size(); ++i)
    EXPECT_NEAR(gpu.losses[i], cpu.losses[i], kStepLoss * cpu.losses[i]) << "step " << i + 1;
  std::printf("[trainer kd+exits] step 1 loss %.4f vs %.4f, step 10 loss %.4f vs %.4f (tol %.0e)\n",
              gpu.losses.front(), cpu.losses.front(), gpu.losses.back(), cpu.losses.back(),
              kStepLoss);
}

// Stopping after 5 steps and resuming from the checkpoint (the fp32 masters, the AdamW moments and
// step count go to the host and back) continues the straight run: its later losses agree to
// kResume relative (not bit for bit: fp32 atomics sum in a run-dependent order on the GPU). A lost
// moment or step count (AdamW's bias correction restarting) would move them by far more.
TEST(TrainerGpu, ResumeContinuesTheStraightRun) {
  RRT_REQUIRE_GPU();
  constexpr double kResume = 1e-3;
  const TrainSummary straight = Trainer(small_run(fresh("straight").string(), "cuda")).run();
  const RunConfig resumed_cfg = small_run(fresh("resumed").string(), "cuda");
  const TrainSummary first = Trainer(resumed_cfg).run(/*stop_after=*/5);
  ASSERT_EQ(first.last_step, 5);
  const TrainSummary second = Trainer(resumed_cfg).run();
  ASSERT_EQ(second.first_step, 6);
  ASSERT_EQ(second.losses.size(), 5u);
  ASSERT_EQ(straight.losses.size(), 10u);
  for (size_t i = 0; i < 5; ++i)
    EXPECT_NEAR(second.losses[i], straight.losses[i + 5], kResume * straight.losses[i + 5])
        << "step " << i + 6;
}

TEST(TrainerGpu, RecomputeIsRefusedOnTheCpuAndCheckedOnTheGpu) {
  RunConfig c = small_run(fresh("recompute").string(), "cpu");
  c.train.recompute = "all";
  try {
    Trainer t(c);
    ADD_FAILURE() << "recompute on the cpu device was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.where(), "train.recompute") << e.what();
  }
  RRT_REQUIRE_GPU();
  c.train.device = "cuda";
  c.train.recompute = "0,9";  // the model has 4 positions
  try {
    Trainer t(c);
    ADD_FAILURE() << "an unknown position was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.where(), "train.recompute") << e.what();
  }
}

// The GPU memory check (train.memory_check, trainer/memory_check.h): the device model reports
// its plan before allocating, and exactly what it then holds; a run whose plan exceeds the GPU's
// free memory is refused with both numbers and the hint before a byte of it is allocated, and
// with the check off the allocation itself fails (the device model's own message).
TEST(TrainerGpu, AnOversizedRunIsRefusedBeforeTheGpuAllocates) {
  RRT_REQUIRE_GPU();
  const RunConfig c = small_run(fresh("gpu_memory").string(), "cuda");
  int64_t planned_params = -1, planned_activations = -1;
  DeviceModelOptions o{.max_batch = 3, .max_seq = 32};
  o.before_allocation = [&](int64_t p, int64_t a) {
    planned_params = p;
    planned_activations = a;
  };
  {
    const DeviceModel model(c.model, o);
    EXPECT_EQ(planned_params, model.parameter_bytes());
    EXPECT_EQ(planned_activations, model.activation_bytes());
    EXPECT_GT(planned_activations, 0);
  }

  RunConfig big = c;
  big.train.micro_batch = int64_t{1} << 21;  // 64M tokens a micro-batch: far beyond any GPU
  big.train.grad_accum = 1;
  const DeviceMemoryInfo before = cuda_memory_info();
  ASSERT_GT(before.free_bytes, 0);
  try {
    Trainer t(big);
    ADD_FAILURE() << "a plan larger than the GPU was accepted";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_EQ(e.where(), "memory") << what;
    EXPECT_NE(what.find("of GPU memory"), std::string::npos) << what;
    EXPECT_NE(what.find("activations and scratch"), std::string::npos) << what;
    EXPECT_NE(what.find("train.recompute"), std::string::npos) << what;
    EXPECT_NE(what.find("GPU " + std::to_string(before.device)), std::string::npos) << what;
  }
  // Nothing of the refused plan stays allocated (a few MiB of handles may come and go).
  EXPECT_GT(cuda_memory_info().free_bytes, before.free_bytes - (int64_t{256} << 20));
  big.train.memory_check = false;
  try {
    Trainer t(big);
    ADD_FAILURE() << "a plan larger than the GPU was allocated";
  } catch (const Error& e) {
    EXPECT_EQ(e.where(), "DeviceModel") << e.what();
  }
}

// Where no GPU is visible (this test's only case), train.device: cuda fails at once, naming the
// setting, before any cuBLAS or cuDNN call could fail less clearly.
TEST(TrainerGpu, CudaWithoutAGpuNamesTheSetting) {
  if (cuda_device_count() > 0) GTEST_SKIP() << "a GPU is visible: nothing to check here";
  try {
    Trainer t(small_run(fresh("no_gpu").string(), "cuda"));
    ADD_FAILURE() << "train.device: cuda was accepted without a GPU";
  } catch (const Error& e) {
    EXPECT_EQ(e.where(), "train.device") << e.what();
    EXPECT_NE(std::string(e.what()).find("no CUDA GPU is visible"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace rrt
