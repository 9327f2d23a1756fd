#include "distributed/mpi_communicator.h"

#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "core/error.h"

// MPI_CHECK(call): throws naming the call and MPI's error string. MPI's default handler aborts
// on error; MPI_ERRORS_RETURN on MPI_COMM_WORLD makes failures reach us as codes.
#define MPI_CHECK(call)                                                                           \
  do {                                                                                            \
    const int mpi_status_ = (call);                                                               \
    if (mpi_status_ != MPI_SUCCESS) [[unlikely]] {                                                \
      char mpi_text_[MPI_MAX_ERROR_STRING];                                                       \
      int mpi_length_ = 0;                                                                        \
      MPI_Error_string(mpi_status_, mpi_text_, &mpi_length_);                                     \
      throw ::rrt::Error(                                                                         \
          "mpi", ::rrt::detail::concat(#call, " failed: ", std::string(mpi_text_, mpi_length_))); \
    }                                                                                             \
  } while (0)

namespace rrt {

namespace {

// MPI counts are int: large buffers go in pieces of at most this many elements.
constexpr int64_t kMaxCount = int64_t{1} << 30;

void finalize_mpi() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

void ensure_mpi_initialised() {
  int initialised = 0;
  MPI_CHECK(MPI_Initialized(&initialised));
  if (initialised) return;
  int provided = 0;
  MPI_CHECK(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided));
  RRT_CHECK(provided >= MPI_THREAD_FUNNELED, "mpi", "MPI_Init_thread provides thread level ",
            provided, ", below MPI_THREAD_FUNNELED");
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  std::atexit(finalize_mpi);
}

void scale(float* data, int64_t n, int world) {
  if (world == 1) return;
  const float inverse = 1.0f / static_cast<float>(world);
  for (int64_t i = 0; i < n; ++i) data[i] *= inverse;
}

// One MPI_Iallreduce per piece of at most kMaxCount floats; the mean is formed on wait.
class MpiRequest final : public CommRequest {
 public:
  MpiRequest(float* data, int64_t n, int world) : data_(data), n_(n), world_(world) {
    for (int64_t at = 0; at < n; at += kMaxCount) {
      const int count = static_cast<int>(std::min(kMaxCount, n - at));
      MPI_Request request;
      MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, data + at, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD,
                               &request));
      requests_.push_back(request);
    }
  }
  ~MpiRequest() override {
    if (!done_) {
      MPI_Waitall(static_cast<int>(requests_.size()), requests_.data(), MPI_STATUSES_IGNORE);
    }
  }
  void wait() override {
    if (done_) return;
    MPI_CHECK(
        MPI_Waitall(static_cast<int>(requests_.size()), requests_.data(), MPI_STATUSES_IGNORE));
    finish();
  }
  bool test() override {
    if (done_) return true;
    int flag = 0;
    MPI_CHECK(MPI_Testall(static_cast<int>(requests_.size()), requests_.data(), &flag,
                          MPI_STATUSES_IGNORE));
    if (flag) finish();
    return done_;
  }

 private:
  void finish() {
    scale(data_, n_, world_);
    done_ = true;
  }
  float* data_;
  int64_t n_;
  int world_;
  std::vector<MPI_Request> requests_;
  bool done_ = false;
};

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator() {
    ensure_mpi_initialised();
    MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank_));
    MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &world_));
  }
  int rank() const override { return rank_; }
  int world_size() const override { return world_; }
  std::string backend() const override { return "mpi"; }

  void all_reduce_mean(float* data, int64_t n) override {
    for (int64_t at = 0; at < n; at += kMaxCount) {
      const int count = static_cast<int>(std::min(kMaxCount, n - at));
      MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, data + at, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD));
    }
    scale(data, n, world_);
  }
  std::unique_ptr<CommRequest> all_reduce_mean_async(float* data, int64_t n) override {
    return std::make_unique<MpiRequest>(data, n, world_);
  }
  void all_reduce_sum(double* data, int64_t n) override {
    RRT_CHECK(n <= kMaxCount, "all_reduce_sum", n, " doubles is more than a metrics reduction");
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, data, static_cast<int>(n), MPI_DOUBLE, MPI_SUM,
                            MPI_COMM_WORLD));
  }
  void broadcast(void* data, int64_t bytes, int root) override {
    RRT_CHECK(root >= 0 && root < world_, "broadcast", "root ", root, " is not a rank of a ",
              world_, "-process world");
    char* p = static_cast<char*>(data);
    for (int64_t at = 0; at < bytes; at += kMaxCount) {
      const int count = static_cast<int>(std::min(kMaxCount, bytes - at));
      MPI_CHECK(MPI_Bcast(p + at, count, MPI_BYTE, root, MPI_COMM_WORLD));
    }
  }
  void all_gather(float* data, const std::vector<int64_t>& begins) override {
    const Layout l = layout(begins, "all_gather");
    MPI_CHECK(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, data, l.counts.data(),
                             l.displs.data(), MPI_FLOAT, MPI_COMM_WORLD));
  }
  void gather(const float* slice, float* full, const std::vector<int64_t>& begins,
              int root) override {
    const Layout l = layout(begins, "gather");
    MPI_CHECK(MPI_Gatherv(slice, l.counts[static_cast<size_t>(rank_)], MPI_FLOAT, full,
                          l.counts.data(), l.displs.data(), MPI_FLOAT, root, MPI_COMM_WORLD));
  }
  void scatter(const float* full, float* slice, const std::vector<int64_t>& begins,
               int root) override {
    const Layout l = layout(begins, "scatter");
    MPI_CHECK(MPI_Scatterv(full, l.counts.data(), l.displs.data(), MPI_FLOAT, slice,
                           l.counts[static_cast<size_t>(rank_)], MPI_FLOAT, root,
                           MPI_COMM_WORLD));
  }
  void barrier() override { MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD)); }
  [[noreturn]] void abort(int code) override {
    std::fflush(stdout);
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, code);
    std::_Exit(code);  // MPI_Abort does not return; this is for the compiler
  }

 private:
  struct Layout {
    std::vector<int> counts, displs;
  };
  // MPI's v-collectives take int counts and displacements: a flat buffer beyond 2^31 floats
  // (8 GiB) would need derived datatypes, which nothing here needs yet.
  Layout layout(const std::vector<int64_t>& begins, const char* what) const {
    RRT_CHECK(static_cast<int>(begins.size()) == world_ + 1 && begins.front() == 0, what,
              "needs ", world_ + 1, " slice boundaries from 0, got ", begins.size());
    RRT_CHECK(begins.back() <= INT_MAX, what, begins.back(),
              " floats exceed MPI's int displacements (2^31 - 1)");
    Layout l;
    for (int r = 0; r < world_; ++r) {
      const int64_t lo = begins[static_cast<size_t>(r)], hi = begins[static_cast<size_t>(r) + 1];
      RRT_CHECK(lo <= hi, what, "slice boundaries must not decrease");
      l.counts.push_back(static_cast<int>(hi - lo));
      l.displs.push_back(static_cast<int>(lo));
    }
    return l;
  }
  int rank_ = 0, world_ = 1;
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator() {
  return std::make_unique<MpiCommunicator>();
}

}  // namespace rrt
