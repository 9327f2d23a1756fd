// The NCCL communicator on one GPU (world size 1, bootstrapped by the single-process
// communicator, so no MPI is needed): NCCL initialises, every device collective leaves the
// data where the slice layout says, the asynchronous all-reduce completes, and the host
// collectives reach the bootstrap. Several ranks need several GPUs: tests/gpu/run.sh notes it.
#include <gtest/gtest.h>

#include <vector>

#include "distributed/nccl_communicator.h"
#include "tests/gpu/gpu_test.h"

namespace rrt {
namespace {

using testing::DeviceBuffer;
using testing::download;
using testing::upload;

TEST(NcclCommunicator, OneRankCollectivesOnDeviceBuffers) {
  RRT_REQUIRE_GPU();
  auto boot = make_single_process_communicator();
  auto nccl = make_nccl_communicator(*boot, local_device_for_rank(), nullptr);
  EXPECT_EQ(nccl->backend(), "nccl");
  EXPECT_EQ(nccl->world_size(), 1);

  const int64_t n = 1000;
  std::vector<float> host(n);
  for (int64_t i = 0; i < n; ++i) host[i] = 0.25f * static_cast<float>(i) - 7.0f;
  DeviceBuffer<float> data(n), other(n);
  upload(data, host);
  nccl->all_reduce_mean(data.get(), n);  // the mean over one rank is the data itself
  EXPECT_EQ(download(data), host);
  auto request = nccl->all_reduce_mean_async(data.get(), n);
  request->wait();
  EXPECT_TRUE(request->test());
  EXPECT_EQ(download(data), host);

  const std::vector<int64_t> begins = {0, n};
  nccl->all_gather(data.get(), begins);
  EXPECT_EQ(download(data), host);
  nccl->gather(data.get(), other.get(), begins);
  EXPECT_EQ(download(other), host);
  upload(data, std::vector<float>(n, 0.0f));
  nccl->scatter(other.get(), data.get(), begins);
  EXPECT_EQ(download(data), host);

  double metric = 2.5;
  nccl->all_reduce_sum(&metric, 1);  // host memory, through the bootstrap
  EXPECT_EQ(metric, 2.5);
  EXPECT_THROW(nccl->all_gather(data.get(), {0, 10, n}), std::exception);
}

}  // namespace
}  // namespace rrt
