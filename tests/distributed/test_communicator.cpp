// The single-process communicator (no-ops), launcher detection, and the loader cursor moving
// between world sizes (what makes checkpoints world-size independent). No MPI needed.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <vector>

#include "data/loader.h"
#include "data/prepare.h"
#include "distributed/communicator.h"
#include "tests/text_shards.h"

namespace rrt {
namespace {

namespace fs = std::filesystem;

TEST(SingleProcessCommunicator, CollectivesLeaveTheDataAsItIs) {
  auto comm = make_single_process_communicator();
  EXPECT_EQ(comm->rank(), 0);
  EXPECT_EQ(comm->world_size(), 1);
  EXPECT_TRUE(comm->is_root());
  EXPECT_EQ(comm->backend(), "single");
  std::vector<float> grads = {1.5f, -2.25f, 3.0f};
  comm->all_reduce_mean(grads.data(), 3);
  EXPECT_EQ(grads, (std::vector<float>{1.5f, -2.25f, 3.0f}));
  auto request = comm->all_reduce_mean_async(grads.data(), 3);
  EXPECT_TRUE(request->test());
  request->wait();
  EXPECT_EQ(grads, (std::vector<float>{1.5f, -2.25f, 3.0f}));
  double metrics[2] = {0.25, 7.0};
  comm->all_reduce_sum(metrics, 2);
  EXPECT_EQ(metrics[0], 0.25);
  EXPECT_EQ(metrics[1], 7.0);
  int64_t value = 42;
  comm->broadcast(&value, sizeof(value), 0);
  EXPECT_EQ(value, 42);
  comm->barrier();
  EXPECT_THROW(comm->broadcast(&value, sizeof(value), 1), std::exception);
}

TEST(SingleProcessCommunicator, SliceCollectivesCopyTheOneSlice) {
  auto comm = make_single_process_communicator();
  const std::vector<int64_t> begins = {0, 3};
  std::vector<float> data = {1, 2, 3}, full(3, 0), slice(3, 0);
  comm->all_gather(data.data(), begins);
  EXPECT_EQ(data, (std::vector<float>{1, 2, 3}));
  comm->gather(data.data(), full.data(), begins);
  EXPECT_EQ(full, data);
  comm->scatter(full.data(), slice.data(), begins);
  EXPECT_EQ(slice, data);
  EXPECT_THROW(comm->all_gather(data.data(), {0, 1, 3}), std::exception);
}

TEST(ShardBegins, EvenAlignedSlicesCoveringEverything) {
  EXPECT_EQ(shard_begins(1000, 1), (std::vector<int64_t>{0, 1000}));
  const std::vector<int64_t> b = shard_begins(1000, 3);
  ASSERT_EQ(b.size(), 4u);
  EXPECT_EQ(b.front(), 0);
  EXPECT_EQ(b.back(), 1000);
  for (size_t r = 0; r + 1 < b.size(); ++r) {
    EXPECT_LE(b[r], b[r + 1]);
    EXPECT_EQ(b[r] % 16, 0);
    EXPECT_NEAR(static_cast<double>(b[r + 1] - b[r]), 1000.0 / 3, 16.0);
  }
  EXPECT_EQ(shard_begins(5, 4), (std::vector<int64_t>{0, 0, 0, 0, 5}));  // tiny: all on the last
}

// Sets an environment variable for the scope of one test.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) { setenv(name, value, 1); }
  ~ScopedEnv() { unsetenv(name_); }

 private:
  const char* name_;
};

TEST(Launcher, DetectedFromTheEnvironment) {
  if (std::getenv("OMPI_COMM_WORLD_SIZE") || std::getenv("PMI_SIZE") ||
      std::getenv("SLURM_NTASKS")) {
    GTEST_SKIP() << "started by a launcher";
  }
  EXPECT_EQ(detect_launcher(), "");
  EXPECT_EQ(make_communicator()->backend(), "single");
  {
    ScopedEnv procid("SLURM_PROCID", "0"), ntasks("SLURM_NTASKS", "4");
    EXPECT_EQ(detect_launcher(), "srun");
  }
  {
    ScopedEnv size("PMI_SIZE", "2");
    EXPECT_EQ(detect_launcher(), "mpirun");
  }
  if (!mpi_compiled()) {
    // Without MPI, N copies would each train alone into one run directory: refuse.
    ScopedEnv size("OMPI_COMM_WORLD_SIZE", "2");
    EXPECT_THROW(make_communicator(), std::exception);
  }
}

std::string shards() {
  static const std::string dir = rrt::prepare_test_shards(
      fs::path(::testing::TempDir()) / ("rrt_comm_data_" + std::to_string(::getpid())), 4, 30,
      [](int d, int i) {
        return "Doc " + std::to_string(d) + " line " + std::to_string(i) + ": loops.";
      });
  return dir;
}

// Rows of the next global batch of 6 from `world` loaders of 6/world rows each.
std::vector<int32_t> global_batch(std::vector<TokenLoader>& ranks, int64_t T) {
  const int64_t n = 6 / static_cast<int64_t>(ranks.size());
  std::vector<int32_t> rows(6 * T), targets(n * T);
  for (size_t r = 0; r < ranks.size(); ++r)
    ranks[r].next_batch(n, rows.data() + r * n * T, targets.data());
  return rows;
}

std::vector<TokenLoader> loaders(int world, int64_t T) {
  std::vector<TokenLoader> ranks;
  for (int r = 0; r < world; ++r)
    ranks.emplace_back(LoaderOptions{shards(), T, 0.1, 3, r, world}, Split::train);
  return ranks;
}

// A cursor saved by 3 ranks of 2 rows resumes on 2 ranks of 3 rows (and on 1 of 6) where the
// 3-rank run would have gone on: the cursor counts global entries, never rank-local ones.
TEST(LoaderCursor, ResumesOnAnotherWorldSize) {
  const int64_t T = 16;
  auto three = loaders(3, T);
  for (int step = 0; step < 7; ++step) global_batch(three, T);
  const LoaderCursor saved = three[0].cursor();
  for (int world : {1, 2}) {
    auto resumed = loaders(world, T);
    for (auto& loader : resumed) loader.restore(saved);
    auto reference = loaders(3, T);
    for (auto& loader : reference) loader.restore(saved);
    for (int step = 0; step < 30; ++step) {  // crosses epochs
      ASSERT_EQ(global_batch(resumed, T), global_batch(reference, T))
          << "world " << world << " step " << step;
    }
    EXPECT_EQ(resumed[0].cursor().epoch, reference[0].cursor().epoch);
    EXPECT_EQ(resumed[0].cursor().index, reference[0].cursor().index);
  }
}

}  // namespace
}  // namespace rrt
