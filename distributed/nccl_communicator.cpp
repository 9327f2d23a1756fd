#include "distributed/nccl_communicator.h"

#include <nccl.h>

#include <climits>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/cuda/cuda_check.h"
#include "core/error.h"
#include "distributed/gpu_communicator.h"

#define RRT_NCCL_CHECK(call)                                                             \
  do {                                                                                   \
    const ncclResult_t rrt_nccl_st_ = (call);                                            \
    RRT_CHECK(rrt_nccl_st_ == ncclSuccess, "nccl", #call, " failed at ", __FILE__, ":", \
              __LINE__, ": ", ncclGetErrorString(rrt_nccl_st_));                         \
  } while (0)

namespace rrt {

namespace {

// An all-reduce in flight on the side stream: done once its event has fired.
class NcclRequest final : public CommRequest {
 public:
  explicit NcclRequest(cudaEvent_t done) : done_(done) {}
  ~NcclRequest() override {
    if (done_) {
      cudaEventSynchronize(done_);
      cudaEventDestroy(done_);
    }
  }
  void wait() override {
    if (!done_) return;
    RRT_CUDA_CHECK(cudaEventSynchronize(done_));
    RRT_CUDA_CHECK(cudaEventDestroy(done_));
    done_ = nullptr;
  }
  bool test() override {
    if (!done_) return true;
    const cudaError_t state = cudaEventQuery(done_);
    if (state == cudaErrorNotReady) return false;
    RRT_CUDA_CHECK(state);
    wait();
    return true;
  }

 private:
  cudaEvent_t done_;
};

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(Communicator& bootstrap, int device, cudaStream_t compute)
      : boot_(bootstrap), compute_(compute) {
    RRT_CUDA_CHECK(cudaSetDevice(device));
    ncclUniqueId id{};
    if (boot_.is_root()) RRT_NCCL_CHECK(ncclGetUniqueId(&id));
    boot_.broadcast(&id, sizeof(id), 0);
    RRT_NCCL_CHECK(ncclCommInitRank(&comm_, boot_.world_size(), id, boot_.rank()));
    RRT_CUDA_CHECK(cudaStreamCreateWithFlags(&side_, cudaStreamNonBlocking));
  }
  ~NcclCommunicator() override {
    cudaStreamSynchronize(side_);
    cudaStreamDestroy(side_);
    ncclCommDestroy(comm_);
  }

  int rank() const override { return boot_.rank(); }
  int world_size() const override { return boot_.world_size(); }
  std::string backend() const override { return "nccl"; }

  void all_reduce_mean(float* data, int64_t n) override { all_reduce_mean_async(data, n)->wait(); }
  std::unique_ptr<CommRequest> all_reduce_mean_async(float* data, int64_t n) override {
    after_compute();
    RRT_NCCL_CHECK(ncclAllReduce(data, data, static_cast<size_t>(n), ncclFloat, ncclAvg, comm_,
                                 side_));
    return std::make_unique<NcclRequest>(record());
  }
  // Slices of uneven size: one broadcast per owner, grouped into one launch.
  void all_gather(float* data, const std::vector<int64_t>& begins) override {
    check(begins, "all_gather");
    after_compute();
    RRT_NCCL_CHECK(ncclGroupStart());
    for (int r = 0; r < world_size(); ++r) {
      float* slice = data + begins[static_cast<size_t>(r)];
      RRT_NCCL_CHECK(ncclBroadcast(slice, slice, count(begins, r), ncclFloat, r, comm_, side_));
    }
    RRT_NCCL_CHECK(ncclGroupEnd());
    synchronize();
  }
  void gather(const float* slice, float* full, const std::vector<int64_t>& begins,
              int root) override {
    check(begins, "gather");
    after_compute();
    RRT_NCCL_CHECK(ncclGroupStart());
    if (rank() == root) {
      for (int r = 0; r < world_size(); ++r) {
        float* dst = full + begins[static_cast<size_t>(r)];
        if (r == root)
          RRT_CUDA_CHECK(cudaMemcpyAsync(dst, slice, count(begins, r) * sizeof(float),
                                         cudaMemcpyDeviceToDevice, side_));
        else
          RRT_NCCL_CHECK(ncclRecv(dst, count(begins, r), ncclFloat, r, comm_, side_));
      }
    } else {
      RRT_NCCL_CHECK(ncclSend(slice, count(begins, rank()), ncclFloat, root, comm_, side_));
    }
    RRT_NCCL_CHECK(ncclGroupEnd());
    synchronize();
  }
  void scatter(const float* full, float* slice, const std::vector<int64_t>& begins,
               int root) override {
    check(begins, "scatter");
    after_compute();
    RRT_NCCL_CHECK(ncclGroupStart());
    if (rank() == root) {
      for (int r = 0; r < world_size(); ++r) {
        const float* src = full + begins[static_cast<size_t>(r)];
        if (r == root)
          RRT_CUDA_CHECK(cudaMemcpyAsync(slice, src, count(begins, r) * sizeof(float),
                                         cudaMemcpyDeviceToDevice, side_));
        else
          RRT_NCCL_CHECK(ncclSend(src, count(begins, r), ncclFloat, r, comm_, side_));
      }
    } else {
      RRT_NCCL_CHECK(ncclRecv(slice, count(begins, rank()), ncclFloat, root, comm_, side_));
    }
    RRT_NCCL_CHECK(ncclGroupEnd());
    synchronize();
  }
  // Host-side collectives go through the bootstrap (metrics and host state).
  void all_reduce_sum(double* data, int64_t n) override { boot_.all_reduce_sum(data, n); }
  void broadcast(void* data, int64_t bytes, int root) override { boot_.broadcast(data, bytes, root); }
  void barrier() override { boot_.barrier(); }
  [[noreturn]] void abort(int code) override {
    ncclCommAbort(comm_);  // unblocks ranks waiting inside NCCL kernels
    boot_.abort(code);
    std::abort();  // not reached; the compiler cannot see through the virtual call
  }

 private:
  // The side stream waits for what the compute stream has queued (the gradients).
  void after_compute() {
    cudaEvent_t ready;
    RRT_CUDA_CHECK(cudaEventCreateWithFlags(&ready, cudaEventDisableTiming));
    RRT_CUDA_CHECK(cudaEventRecord(ready, compute_));
    RRT_CUDA_CHECK(cudaStreamWaitEvent(side_, ready, 0));
    RRT_CUDA_CHECK(cudaEventDestroy(ready));  // released once the wait has been satisfied
  }
  cudaEvent_t record() {
    cudaEvent_t done;
    RRT_CUDA_CHECK(cudaEventCreateWithFlags(&done, cudaEventDisableTiming));
    RRT_CUDA_CHECK(cudaEventRecord(done, side_));
    return done;
  }
  void synchronize() { RRT_CUDA_CHECK(cudaStreamSynchronize(side_)); }
  void check(const std::vector<int64_t>& begins, const char* what) const {
    RRT_CHECK(static_cast<int>(begins.size()) == world_size() + 1 && begins.front() == 0, what,
              "needs ", world_size() + 1, " slice boundaries from 0, got ", begins.size());
  }
  static size_t count(const std::vector<int64_t>& begins, int r) {
    return static_cast<size_t>(begins[static_cast<size_t>(r) + 1] - begins[static_cast<size_t>(r)]);
  }

  Communicator& boot_;
  cudaStream_t compute_;
  cudaStream_t side_ = nullptr;
  ncclComm_t comm_ = nullptr;
};

}  // namespace

int local_device_for_rank() {
  int local = 0;
  for (const char* name : {"OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "MPI_LOCALRANKID"}) {
    if (const char* v = std::getenv(name)) {
      local = std::atoi(v);
      break;
    }
  }
  int devices = 0;
  RRT_CUDA_CHECK(cudaGetDeviceCount(&devices));
  RRT_CHECK(devices > 0, "nccl", "no CUDA device visible to this rank");
  return local % devices;
}

std::unique_ptr<Communicator> make_nccl_communicator(Communicator& bootstrap, int device,
                                                     cudaStream_t compute) {
  return std::make_unique<NcclCommunicator>(bootstrap, device, compute);
}

int gpu_for_this_rank() { return local_device_for_rank(); }

// The device model runs on the legacy default stream (null), so that is the compute stream.
std::unique_ptr<Communicator> make_gpu_communicator(Communicator& bootstrap) {
  return make_nccl_communicator(bootstrap, local_device_for_rank(), nullptr);
}

}  // namespace rrt
