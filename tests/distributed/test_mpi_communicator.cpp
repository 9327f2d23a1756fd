// The MPI communicator, run under mpirun with 2 or 3 ranks (ctest label mpi): every collective
// against values each rank can compute on its own.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <vector>

#include "distributed/communicator.h"

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

}  // namespace
}  // namespace rrt
