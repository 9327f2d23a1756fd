// The MPI communicator, run under mpirun with 2 or 3 ranks (ctest label mpi): every collective
// against values each rank can compute on its own.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <memory>
#include <vector>

#include "core/arena.h"
#include "distributed/communicator.h"
#include "distributed/grad_sync.h"
#include "model/recursive_model.h"

namespace rrt {
namespace {

Communicator& comm() {
  static std::unique_ptr<Communicator> instance = make_communicator();
  return *instance;
}

TEST(MpiCommunicator, RankAndWorldFromTheLauncher) {
  ASSERT_EQ(comm().backend(), "mpi") << "run this test under mpirun";
  const char* size = std::getenv("OMPI_COMM_WORLD_SIZE");
  if (size) {
    EXPECT_EQ(comm().world_size(), std::atoi(size));
  }
  EXPECT_GE(comm().world_size(), 2);
  EXPECT_GE(comm().rank(), 0);
  EXPECT_LT(comm().rank(), comm().world_size());
}

// data[i] = rank * 0.5 + i on each rank, so the mean is (world - 1) / 4 + i.
std::vector<float> ramp(int64_t n) {
  std::vector<float> data(n);
  for (int64_t i = 0; i < n; ++i) data[i] = static_cast<float>(comm().rank()) * 0.5f + i % 1000;
  return data;
}

void expect_mean_of_ramps(const std::vector<float>& data) {
  const double offset = (comm().world_size() - 1) / 4.0;
  for (size_t i = 0; i < data.size(); ++i) {
    const double want = offset + static_cast<double>(i % 1000);
    ASSERT_NEAR(data[i], want, 1e-6 * (1 + want)) << "element " << i;
  }
}

TEST(MpiCommunicator, AllReduceMean) {
  for (int64_t n : {1, 7, 100000}) {
    std::vector<float> data = ramp(n);
    comm().all_reduce_mean(data.data(), n);
    expect_mean_of_ramps(data);
  }
}

TEST(MpiCommunicator, NonBlockingAllReduceMean) {
  // Two requests in flight at once, completed in the reverse order, one of them by polling.
  std::vector<float> first = ramp(1 << 20), second = ramp(333);
  auto a = comm().all_reduce_mean_async(first.data(), static_cast<int64_t>(first.size()));
  auto b = comm().all_reduce_mean_async(second.data(), static_cast<int64_t>(second.size()));
  while (!b->test()) {
  }
  a->wait();
  a->wait();  // idempotent
  expect_mean_of_ramps(first);
  expect_mean_of_ramps(second);
}

TEST(MpiCommunicator, AllReduceSumOfDoubles) {
  double metrics[2] = {1.0 + comm().rank(), 0.1};
  comm().all_reduce_sum(metrics, 2);
  const int w = comm().world_size();
  EXPECT_DOUBLE_EQ(metrics[0], w * (w + 1) / 2.0);
  EXPECT_NEAR(metrics[1], 0.1 * w, 1e-15);
}

TEST(MpiCommunicator, BroadcastFromAnyRootAndBarrier) {
  for (int root = 0; root < comm().world_size(); ++root) {
    std::vector<int64_t> value = {comm().rank() * 10 + 1, -comm().rank()};
    comm().broadcast(value.data(), static_cast<int64_t>(value.size() * sizeof(int64_t)), root);
    EXPECT_EQ(value, (std::vector<int64_t>{root * 10 + 1, -root}));
    comm().barrier();
  }
  EXPECT_THROW(comm().broadcast(nullptr, 0, comm().world_size()), std::exception);
}

// ZeRO-1's collectives over uneven slices (one of them empty when there are 3 ranks).
TEST(MpiCommunicator, AllGatherGatherScatterOfSlices) {
  const int world = comm().world_size(), me = comm().rank();
  std::vector<int64_t> begins = shard_begins(1000, world);
  if (world == 3) begins = {0, 0, 700, 1000};  // rank 0 owns nothing
  const auto mine = [&](int r) { return std::pair{begins[r], begins[r + 1]}; };
  auto value = [](int r, int64_t i) { return static_cast<float>(r * 10000 + i); };

  std::vector<float> data(1000, -1.0f);
  for (int64_t i = mine(me).first; i < mine(me).second; ++i) data[i] = value(me, i);
  comm().all_gather(data.data(), begins);
  for (int r = 0; r < world; ++r)
    for (int64_t i = mine(r).first; i < mine(r).second; ++i) ASSERT_EQ(data[i], value(r, i));

  std::vector<float> slice(static_cast<size_t>(mine(me).second - mine(me).first) + 1);
  for (size_t j = 0; j + 1 < slice.size(); ++j) slice[j] = value(me, mine(me).first + j) + 0.5f;
  std::vector<float> full(me == 0 ? 1000 : 0, -1.0f);
  comm().gather(slice.data(), me == 0 ? full.data() : nullptr, begins);
  if (me == 0) {
    for (int r = 0; r < world; ++r)
      for (int64_t i = mine(r).first; i < mine(r).second; ++i)
        ASSERT_EQ(full[i], value(r, i) + 0.5f);
  }

  if (me == 0)
    for (int64_t i = 0; i < 1000; ++i) full[i] = static_cast<float>(-i);
  std::fill(slice.begin(), slice.end(), 7.0f);
  comm().scatter(me == 0 ? full.data() : nullptr, slice.data(), begins);
  for (size_t j = 0; j + 1 < slice.size(); ++j)
    ASSERT_EQ(slice[j], static_cast<float>(-(mine(me).first + static_cast<int64_t>(j))));
  EXPECT_EQ(slice.back(), 7.0f) << "wrote past the slice";
}

// Buckets launched from the grad-ready hook during backward average to what one all-reduce of
// the whole arena after backward gives, with and without overlap, for several bucket sizes,
// built over the Arena or over its raw buffer (the constructor the device arena uses).
TEST(GradSync, BucketsDuringBackwardEqualOneAllReduceAfter) {
  ModelSpec spec;
  spec.model = {
      .vocab = 61, .d_model = 16, .n_heads = 4, .n_kv_heads = 2, .ffn = 24, .max_seq_len = 16};
  spec.recursion = {.block_layers = 2, .loops = 2};
  spec.lora = {.rank_attention = 2, .rank_mlp = 2};
  const int64_t N = 2, T = 8;
  std::vector<int32_t> tokens(N * T), targets(N * T);
  for (int64_t i = 0; i < N * T; ++i) {  // each rank its own batch
    tokens[i] = static_cast<int32_t>((i * 13 + 5 * comm().rank()) % spec.model.vocab);
    targets[i] = static_cast<int32_t>((i * 7 + 3 * comm().rank() + 1) % spec.model.vocab);
  }
  RecursiveModel reference(spec, {.max_batch = N, .max_seq = T});
  reference.params().init({.seed = 3, .lora_b_zero = false});
  reference.forward_backward(tokens.data(), targets.data(), N, T);
  Arena& want = reference.params().grads_arena();
  const int64_t floats = want.total_bytes() / static_cast<int64_t>(sizeof(float));
  comm().all_reduce_mean(static_cast<float*>(want.base()), floats);

  for (bool raw : {false, true})
    for (bool overlap : {true, false})
      for (int64_t bucket_bytes : {int64_t{256}, int64_t{4096}, int64_t{1} << 20}) {
        RecursiveModel model(spec, {.max_batch = N, .max_seq = T});
        model.params().init({.seed = 3, .lora_b_zero = false});
        Arena& grads = model.params().grads_arena();
        std::vector<int64_t> offsets;
        for (int i = 0; i < grads.size(); ++i)
          offsets.push_back(grads.offset_bytes(i) / static_cast<int64_t>(sizeof(float)));
        const GradSyncOptions options{.bucket_bytes = bucket_bytes, .overlap = overlap};
        auto sync =
            raw ? std::make_unique<GradSync>(comm(), static_cast<float*>(grads.base()), floats,
                                             offsets, model.grad_ready_after(), options)
                : std::make_unique<GradSync>(comm(), grads, model.grad_ready_after(), options);
        model.set_grad_ready_hook([&](int64_t v) { sync->on_ready(v); });
        for (int step = 0; step < 2; ++step) {  // a second step reuses the buckets
          model.params().zero_grads();
          sync->arm();
          model.forward_backward(tokens.data(), targets.data(), N, T);
          sync->finish();
        }
        const float* got = static_cast<const float*>(model.params().grads_arena().base());
        const float* ref = static_cast<const float*>(want.base());
        for (int64_t i = 0; i < floats; ++i)
          ASSERT_NEAR(got[i], ref[i], 1e-6f * (1 + std::fabs(ref[i])))
              << "element " << i << ", buckets of " << bucket_bytes << " bytes, raw " << raw;
        if (bucket_bytes == 256) {
          EXPECT_GT(sync->bucket_count(), 10);
        }
        if (bucket_bytes == int64_t{1} << 20) {
          EXPECT_EQ(sync->bucket_count(), 1);
        }
        // With overlap every bucket goes out from the hook (the embedding's at backward's end).
        EXPECT_EQ(sync->launched_early(), overlap ? sync->bucket_count() : 0);
      }
}

}  // namespace
}  // namespace rrt
