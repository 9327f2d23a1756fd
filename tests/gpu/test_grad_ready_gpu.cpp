// The device model's gradient-ready hook (DeviceModel::set_grad_ready_hook), which data-parallel
// training on GPUs uses to all-reduce gradient buckets during backward (distributed/grad_sync.h):
// for the same spec it must fire with the CPU model's sequence of values (L, L-1 .. 0, -1, with
// early exits and with activation recomputation), publish the CPU model's grad_ready_after and
// the host arena's offsets, and every gradient it reports final must not change afterwards.
// The last check snapshots the device gradients inside the hook with a synchronous cudaMemcpy:
// it is ordered after the kernels backward has enqueued so far, i.e. exactly what a collective
// launched from the hook on the NCCL side stream (which waits for the compute stream) reads.
// Then the trainer's wiring without NCCL: a GradSync over the device arena, fed by the hook,
// with a communicator that averages each bucket with a fixed "other rank" at launch.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "distributed/communicator.h"
#include "distributed/grad_sync.h"
#include "model/cuda/device_model.h"
#include "model/parameters.h"
#include "model/recursive_model.h"
#include "tests/gpu/gpu_test.h"

namespace rrt {
namespace {

struct Case {
  std::string name;
  ModelSpec spec;
  TrainingLoss loss;
  std::vector<bool> recompute;
};

ModelSpec relaxed_llama(int64_t B, int64_t K, Sharing sharing) {
  ModelSpec s;
  s.model = {
      .vocab = 89, .d_model = 128, .n_heads = 2, .n_kv_heads = 1, .ffn = 160, .max_seq_len = 32};
  s.recursion = {.block_layers = B, .loops = K, .sharing = sharing};
  s.lora = {.rank_attention = 8, .rank_mlp = 4};
  return s;
}

// Exits at every loop end of a K = 3, B = 2 relaxed model (head adapters on the intermediate
// ones, self-distillation; the final norm is then final only after the first loop), with some
// positions recomputed; and the plain objective under sequence sharing, everything recomputed.
std::vector<Case> cases() {
  Case exits{"exits_recompute", relaxed_llama(2, 3, Sharing::cycle), {}, {}};
  exits.spec.exit_head = {.lora_rank = 4, .loops = {1, 2}};
  exits.loss.exit_loops = {1, 2, 3};
  exits.loss.exit_weights = {0.1, 0.1, 1.0};
  exits.loss.self_distill = true;
  exits.recompute = {false, true, false, true, true, false};
  Case plain{"plain_sequence_all_recomputed", relaxed_llama(2, 2, Sharing::sequence), {}, {}};
  plain.recompute.assign(4, true);
  return {exits, plain};
}

void random_tokens(int64_t n, int64_t vocab, std::vector<int32_t>& tokens,
                   std::vector<int32_t>& targets) {
  std::mt19937 rng(11);
  std::uniform_int_distribution<int32_t> dist(0, static_cast<int32_t>(vocab - 1));
  tokens.resize(n);
  targets.resize(n);
  for (auto& t : tokens) t = dist(rng);
  for (auto& t : targets) t = dist(rng);
}

TEST(DeviceGradReady, SameSequenceAsCpuAndFinalGradientsStayFinal) {
  RRT_REQUIRE_GPU();
  const int64_t N = 2, T = 16;
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    RecursiveModel cpu(c.spec, ModelCapacity{N, T}, c.loss);
    cpu.params().init({.seed = 5, .std = 0.05, .lora_b_zero = false});
    DeviceModel gpu(
        c.spec, DeviceModelOptions{.max_batch = N, .max_seq = T, .recompute = c.recompute}, c.loss);
    gpu.upload(cpu.params());

    // What the GradSync over the device arena is built from: the CPU's readiness and the host
    // arena's layout.
    const Arena& host = cpu.params().grads_arena();
    EXPECT_EQ(gpu.grad_ready_after(), cpu.grad_ready_after());
    ASSERT_EQ(static_cast<int>(gpu.parameter_offsets().size()), host.size());
    for (int i = 0; i < host.size(); ++i)
      EXPECT_EQ(gpu.parameter_offsets()[static_cast<size_t>(i)],
                host.offset_bytes(i) / static_cast<int64_t>(sizeof(float)))
          << "parameter " << i;
    ASSERT_EQ(gpu.gradient_floats(), host.total_bytes() / static_cast<int64_t>(sizeof(float)));

    std::vector<int32_t> tokens, targets;
    random_tokens(N * T, c.spec.model.vocab, tokens, targets);
    std::vector<int64_t> cpu_calls, gpu_calls;
    cpu.set_grad_ready_hook([&](int64_t v) { cpu_calls.push_back(v); });
    cpu.params().zero_grads();
    cpu.forward_backward(tokens.data(), targets.data(), N, T);

    // Per parameter: its gradient when the hook first reported it final.
    const std::vector<int64_t>& ready = gpu.grad_ready_after();
    const std::vector<int64_t>& offset = gpu.parameter_offsets();
    const int64_t total = gpu.gradient_floats();
    auto end_of = [&](size_t i) { return i + 1 < offset.size() ? offset[i + 1] : total; };
    std::vector<std::vector<float>> at_final(ready.size());
    std::vector<float> now(static_cast<size_t>(total));
    gpu.set_grad_ready_hook([&](int64_t v) {
      gpu_calls.push_back(v);
      RRT_CUDA_CHECK(cudaMemcpy(now.data(), gpu.device_gradients(), sizeof(float) * now.size(),
                                cudaMemcpyDeviceToHost));
      for (size_t i = 0; i < ready.size(); ++i)
        if (ready[i] >= v && at_final[i].empty())
          at_final[i].assign(now.begin() + offset[i], now.begin() + end_of(i));
    });
    gpu.zero_grads();
    gpu.forward_backward(tokens.data(), targets.data(), N, T);
    gpu.set_grad_ready_hook(nullptr);

    EXPECT_EQ(gpu_calls, cpu_calls);
    ASSERT_FALSE(cpu_calls.empty());
    EXPECT_EQ(cpu_calls.front(), c.spec.positions());
    EXPECT_EQ(cpu_calls.back(), -1);

    RRT_CUDA_CHECK(cudaDeviceSynchronize());
    RRT_CUDA_CHECK(cudaMemcpy(now.data(), gpu.device_gradients(), sizeof(float) * now.size(),
                              cudaMemcpyDeviceToHost));
    const ParamRegistry& reg = cpu.params().registry();
    int nonzero = 0;
    for (size_t i = 0; i < ready.size(); ++i) {
      ASSERT_FALSE(at_final[i].empty()) << reg[static_cast<int>(i)].name << " never reported";
      const size_t n = at_final[i].size();
      EXPECT_EQ(std::memcmp(at_final[i].data(), now.data() + offset[i], n * sizeof(float)), 0)
          << reg[static_cast<int>(i)].name << " changed after hook(" << ready[i]
          << ") reported it final";
      for (float g : at_final[i])
        if (g != 0.f) {
          ++nonzero;
          break;
        }
    }
    // The snapshots hold real gradients (not a hook fired before backward wrote anything).
    EXPECT_GT(nonzero, static_cast<int>(ready.size()) / 2);
  }
}

// Two ranks as one on device buffers: each launch copies the bucket to the host (a synchronous
// copy, ordered after the queued kernels as an NCCL launch is), averages it with `other` and
// copies it back.
class DeviceAveragingCommunicator final : public Communicator {
 public:
  DeviceAveragingCommunicator(const float* base, std::vector<float> other)
      : base_(base), other_(std::move(other)) {}
  int64_t launched = 0;

  int rank() const override { return 0; }
  int world_size() const override { return 2; }
  std::string backend() const override { return "device-averaging"; }
  void all_reduce_mean(float* data, int64_t n) override { all_reduce_mean_async(data, n); }
  std::unique_ptr<CommRequest> all_reduce_mean_async(float* data, int64_t n) override {
    const int64_t offset = data - base_;
    EXPECT_TRUE(offset >= 0 && offset + n <= static_cast<int64_t>(other_.size()));
    std::vector<float> bucket(static_cast<size_t>(n));
    RRT_CUDA_CHECK(
        cudaMemcpy(bucket.data(), data, sizeof(float) * bucket.size(), cudaMemcpyDeviceToHost));
    for (int64_t i = 0; i < n; ++i)
      bucket[static_cast<size_t>(i)] =
          0.5f * (bucket[static_cast<size_t>(i)] + other_[static_cast<size_t>(offset + i)]);
    RRT_CUDA_CHECK(
        cudaMemcpy(data, bucket.data(), sizeof(float) * bucket.size(), cudaMemcpyHostToDevice));
    ++launched;
    return std::make_unique<Done>();
  }
  void all_reduce_sum(double*, int64_t) override {}
  void all_gather(float*, const std::vector<int64_t>&) override {}
  void gather(const float*, float*, const std::vector<int64_t>&, int) override {}
  void scatter(const float*, float*, const std::vector<int64_t>&, int) override {}
  void broadcast(void*, int64_t, int) override {}
  void barrier() override {}
  [[noreturn]] void abort(int) override { RRT_FAIL("DeviceAveragingCommunicator", "abort"); }

 private:
  struct Done final : CommRequest {
    void wait() override {}
    bool test() override { return true; }
  };
  const float* base_;
  std::vector<float> other_;
};

// What the trainer builds for cuda with several ranks: every bucket goes out from the hook
// during backward, and the arena ends as the mean of this rank's gradient and the other's.
TEST(DeviceGradReady, GradSyncOverTheDeviceArenaAverages) {
  RRT_REQUIRE_GPU();
  const int64_t N = 2, T = 16;
  const Case c = cases().front();  // exits, some positions recomputed
  RecursiveModel host(c.spec, ModelCapacity{1, 1}, c.loss);
  host.params().init({.seed = 5, .std = 0.05, .lora_b_zero = false});
  DeviceModel gpu(
      c.spec, DeviceModelOptions{.max_batch = N, .max_seq = T, .recompute = c.recompute}, c.loss);
  gpu.upload(host.params());
  std::vector<int32_t> tokens, targets;
  random_tokens(N * T, c.spec.model.vocab, tokens, targets);
  const size_t total = static_cast<size_t>(gpu.gradient_floats());
  std::vector<float> other = rrt::testing::random_uniform(total, 17, 1e-2f);

  DeviceAveragingCommunicator comm(gpu.device_gradients(), other);
  GradSync sync(comm, gpu.device_gradients(), gpu.gradient_floats(), gpu.parameter_offsets(),
                gpu.grad_ready_after(), {.bucket_bytes = 16 << 10, .overlap = true});
  ASSERT_GT(sync.bucket_count(), 3);
  gpu.set_grad_ready_hook([&](int64_t v) { sync.on_ready(v); });

  // Not armed: the hook launches nothing; this backward gives this rank's own gradient.
  gpu.zero_grads();
  gpu.forward_backward(tokens.data(), targets.data(), N, T);
  EXPECT_EQ(comm.launched, 0);
  std::vector<float> local(total), got(total);
  RRT_CUDA_CHECK(cudaMemcpy(local.data(), gpu.device_gradients(), sizeof(float) * total,
                            cudaMemcpyDeviceToHost));

  gpu.zero_grads();
  sync.arm();
  gpu.forward_backward(tokens.data(), targets.data(), N, T);
  const int64_t during_backward = comm.launched;
  sync.finish();
  EXPECT_EQ(during_backward, sync.bucket_count());
  EXPECT_EQ(sync.launched_early(), sync.bucket_count());
  RRT_CUDA_CHECK(cudaMemcpy(got.data(), gpu.device_gradients(), sizeof(float) * total,
                            cudaMemcpyDeviceToHost));
  // Two backwards of the same batch may differ in the last bits on a GPU (atomics).
  for (size_t i = 0; i < total; ++i) {
    const float want = 0.5f * (local[i] + other[i]);
    ASSERT_NEAR(got[i], want, 1e-4f * (1.f + std::fabs(want))) << "element " << i;
  }
  gpu.set_grad_ready_hook(nullptr);
}

}  // namespace
}  // namespace rrt
