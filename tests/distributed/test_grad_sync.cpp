// GradSync over any float buffer (the constructor data parallel on GPUs uses for the device
// model's gradient arena) against GradSync over the host Arena: the same buckets, launched at
// the same hook calls over the same ranges, give the same mean. No MPI needed: a recording
// communicator stands in for a second rank (its "mean" averages with a fixed other gradient).
// test_mpi_communicator.cpp checks both constructors under mpirun.
#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "core/arena.h"
#include "core/error.h"
#include "distributed/communicator.h"
#include "distributed/grad_sync.h"
#include "model/recursive_model.h"

namespace rrt {
namespace {

// Two ranks as one: rank 1's gradient is `other` (same layout); every launch is recorded as
// (float offset from `base`, floats, the hook value being handled when it was launched).
class RecordingCommunicator final : public Communicator {
 public:
  struct Launch {
    int64_t offset, floats, during_hook;
    bool operator==(const Launch&) const = default;
  };
  RecordingCommunicator(const float* base, std::vector<float> other)
      : base_(base), other_(std::move(other)) {}

  int64_t current_hook = INT64_MIN;  // INT64_MIN: launched from finish()
  std::vector<Launch> launches;

  int rank() const override { return 0; }
  int world_size() const override { return 2; }
  std::string backend() const override { return "recording"; }
  void all_reduce_mean(float* data, int64_t n) override { all_reduce_mean_async(data, n); }
  std::unique_ptr<CommRequest> all_reduce_mean_async(float* data, int64_t n) override {
    const int64_t offset = data - base_;
    EXPECT_TRUE(offset >= 0 && offset + n <= static_cast<int64_t>(other_.size()));
    for (int64_t i = 0; i < n; ++i) data[i] = 0.5f * (data[i] + other_[offset + i]);
    launches.push_back({offset, n, current_hook});
    return std::make_unique<Done>();
  }
  void all_reduce_sum(double*, int64_t) override {}
  void all_gather(float*, const std::vector<int64_t>&) override {}
  void gather(const float*, float*, const std::vector<int64_t>&, int) override {}
  void scatter(const float*, float*, const std::vector<int64_t>&, int) override {}
  void broadcast(void*, int64_t, int) override {}
  void barrier() override {}
  [[noreturn]] void abort(int) override { RRT_FAIL("RecordingCommunicator", "abort"); }

 private:
  struct Done final : CommRequest {
    void wait() override {}
    bool test() override { return true; }
  };
  const float* base_;
  std::vector<float> other_;
};

ModelSpec small_relaxed() {
  ModelSpec spec;
  spec.model = {
      .vocab = 61, .d_model = 16, .n_heads = 4, .n_kv_heads = 2, .ffn = 24, .max_seq_len = 16};
  spec.recursion = {.block_layers = 2, .loops = 2};
  spec.lora = {.rank_attention = 2, .rank_mlp = 2};
  return spec;
}

std::vector<float> floats_of(const Arena& a) {
  const float* p = static_cast<const float*>(a.base());
  return {p, p + a.total_bytes() / static_cast<int64_t>(sizeof(float))};
}

TEST(GradSync, RawBufferEqualsArena) {
  const ModelSpec spec = small_relaxed();
  const int64_t N = 2, T = 8;
  std::vector<int32_t> tokens(N * T), targets(N * T), other_tokens(N * T);
  for (int64_t i = 0; i < N * T; ++i) {
    tokens[i] = static_cast<int32_t>((i * 13 + 5) % spec.model.vocab);
    other_tokens[i] = static_cast<int32_t>((i * 11 + 2) % spec.model.vocab);
    targets[i] = static_cast<int32_t>((i * 7 + 1) % spec.model.vocab);
  }
  // The other rank's gradient: the same weights on another batch.
  RecursiveModel other(spec, {.max_batch = N, .max_seq = T});
  other.params().init({.seed = 3, .lora_b_zero = false});
  other.forward_backward(other_tokens.data(), targets.data(), N, T);
  const std::vector<float> other_grads = floats_of(other.params().grads_arena());

  for (bool overlap : {true, false})
    for (int64_t bucket_bytes : {int64_t{256}, int64_t{4096}, int64_t{1} << 20}) {
      SCOPED_TRACE(testing::Message() << "overlap " << overlap << ", buckets of " << bucket_bytes);
      const GradSyncOptions options{.bucket_bytes = bucket_bytes, .overlap = overlap};

      // The Arena constructor, driven by the model's hook during backward.
      RecursiveModel model(spec, {.max_batch = N, .max_seq = T});
      model.params().init({.seed = 3, .lora_b_zero = false});
      Arena& arena = model.params().grads_arena();
      RecordingCommunicator arena_comm(static_cast<const float*>(arena.base()), other_grads);
      GradSync arena_sync(arena_comm, arena, model.grad_ready_after(), options);
      std::vector<int64_t> hook_calls;
      model.set_grad_ready_hook([&](int64_t v) {
        hook_calls.push_back(v);
        arena_comm.current_hook = v;
        arena_sync.on_ready(v);
      });
      arena_sync.arm();
      model.forward_backward(tokens.data(), targets.data(), N, T);
      arena_comm.current_hook = INT64_MIN;
      arena_sync.finish();
      const std::vector<float> arena_mean = floats_of(arena);

      // The raw constructor over a plain vector holding the same local gradient, replaying the
      // hook calls the model made.
      RecursiveModel fresh(spec, {.max_batch = N, .max_seq = T});
      fresh.params().init({.seed = 3, .lora_b_zero = false});
      fresh.forward_backward(tokens.data(), targets.data(), N, T);
      const std::vector<float> local = floats_of(fresh.params().grads_arena());
      std::vector<float> buffer = local;
      std::vector<int64_t> offsets;
      for (int i = 0; i < arena.size(); ++i)
        offsets.push_back(arena.offset_bytes(i) / static_cast<int64_t>(sizeof(float)));
      RecordingCommunicator raw_comm(buffer.data(), other_grads);
      GradSync raw_sync(raw_comm, buffer.data(), static_cast<int64_t>(buffer.size()), offsets,
                        fresh.grad_ready_after(), options);
      raw_sync.arm();
      for (int64_t v : hook_calls) {
        raw_comm.current_hook = v;
        raw_sync.on_ready(v);
      }
      raw_comm.current_hook = INT64_MIN;
      raw_sync.finish();

      EXPECT_EQ(raw_sync.bucket_count(), arena_sync.bucket_count());
      EXPECT_EQ(raw_sync.launched_early(), arena_sync.launched_early());
      EXPECT_EQ(raw_comm.launches, arena_comm.launches);
      EXPECT_EQ(buffer, arena_mean);
      // The buckets cover the whole buffer once, and the mean is a real one.
      int64_t covered = 0;
      for (const auto& l : raw_comm.launches) covered += l.floats;
      EXPECT_EQ(covered, static_cast<int64_t>(buffer.size()));
      for (size_t i = 0; i < buffer.size(); ++i)
        ASSERT_FLOAT_EQ(buffer[i], 0.5f * (local[i] + other_grads[i])) << "element " << i;
      EXPECT_EQ(arena_sync.launched_early(), overlap ? arena_sync.bucket_count() : 0);
    }
}

TEST(GradSync, RawBufferRefusesABadLayout) {
  std::vector<float> buffer(16);
  RecordingCommunicator comm(buffer.data(), std::vector<float>(16));
  const GradSyncOptions options{};
  // Offsets and readiness of different lengths, a first tensor not at 0, decreasing offsets,
  // a tensor past the end, no buffer.
  EXPECT_THROW(GradSync(comm, buffer.data(), 16, {0, 8}, {1}, options), Error);
  EXPECT_THROW(GradSync(comm, buffer.data(), 16, {4, 8}, {1, 0}, options), Error);
  EXPECT_THROW(GradSync(comm, buffer.data(), 16, {0, 8, 4}, {1, 0, 0}, options), Error);
  EXPECT_THROW(GradSync(comm, buffer.data(), 16, {0, 20}, {1, 0}, options), Error);
  EXPECT_THROW(GradSync(comm, nullptr, 16, {0, 8}, {1, 0}, options), Error);
  GradSync ok(comm, buffer.data(), 16, {0, 8}, {1, 0}, {.bucket_bytes = 32, .overlap = true});
  EXPECT_EQ(ok.bucket_count(), 2);
}

}  // namespace
}  // namespace rrt
