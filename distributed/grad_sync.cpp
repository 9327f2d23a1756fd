#include "distributed/grad_sync.h"

#include <algorithm>

#include "core/arena.h"
#include "core/error.h"
#include "core/trace.h"

namespace rrt {

namespace {
std::vector<int64_t> float_offsets(const Arena& arena) {
  RRT_CHECK(arena.allocated(), "GradSync", "the gradient arena is not allocated");
  std::vector<int64_t> offsets(static_cast<size_t>(arena.size()));
  for (int i = 0; i < arena.size(); ++i)
    offsets[static_cast<size_t>(i)] = arena.offset_bytes(i) / static_cast<int64_t>(sizeof(float));
  return offsets;
}
}  // namespace

GradSync::GradSync(Communicator& comm, Arena& grads, const std::vector<int64_t>& ready_after,
                   GradSyncOptions options)
    : GradSync(comm, static_cast<float*>(grads.base()),
               grads.total_bytes() / static_cast<int64_t>(sizeof(float)), float_offsets(grads),
               ready_after, options) {}

GradSync::GradSync(Communicator& comm, float* base, int64_t total_floats,
                   const std::vector<int64_t>& offsets, const std::vector<int64_t>& ready_after,
                   GradSyncOptions options)
    : comm_(comm), base_(base), options_(options) {
  RRT_CHECK(offsets.size() == ready_after.size(), "GradSync", "the gradient buffer (",
            offsets.size(), " tensors) and the readiness list (", ready_after.size(),
            ") must describe the same parameters");
  RRT_CHECK(base != nullptr && !offsets.empty() && offsets.front() == 0, "GradSync",
            "the gradient buffer must exist and its first tensor start at offset 0");
  for (size_t i = 1; i < offsets.size(); ++i)
    RRT_CHECK(offsets[i - 1] <= offsets[i], "GradSync", "tensor offsets must increase (tensor ", i,
              " starts at ", offsets[i], ", before ", offsets[i - 1], ")");
  RRT_CHECK(offsets.back() <= total_floats, "GradSync", "the last tensor starts at ",
            offsets.back(), ", past the buffer's ", total_floats, " floats");
  RRT_CHECK(options_.bucket_bytes > 0, "GradSync", "bucket size must be positive");
  const int64_t bucket_floats =
      std::max<int64_t>(1, options_.bucket_bytes / static_cast<int64_t>(sizeof(float)));
  // Cut from the buffer's end: tensor i spans [offsets[i], offsets[i + 1]), the last one to the
  // end of the buffer (alignment padding included).
  int64_t end = total_floats;
  Bucket open{end, end, INT64_MAX};
  for (int i = static_cast<int>(offsets.size()) - 1; i >= 0; --i) {
    open.begin = offsets[static_cast<size_t>(i)];
    open.ready = std::min(open.ready, ready_after[static_cast<size_t>(i)]);
    if (open.end - open.begin >= bucket_floats || i == 0) {
      buckets_.push_back(open);
      open = {open.begin, open.begin, INT64_MAX};
    }
  }
  in_flight_.resize(buckets_.size());
}

GradSync::~GradSync() = default;  // each request's destructor waits for it

void GradSync::arm() {
  RRT_CHECK(next_ == 0, "GradSync", "arm() while the previous step's buckets are in flight");
  armed_ = options_.overlap;
}

void GradSync::launch(size_t b) {
  RRT_TRACE_SPAN("grad_sync.launch", "bucket", static_cast<int64_t>(b));
  const Bucket& bucket = buckets_[b];
  in_flight_[b] = comm_.all_reduce_mean_async(base_ + bucket.begin, bucket.end - bucket.begin);
}

void GradSync::on_ready(int64_t value) {
  if (!armed_) return;
  while (next_ < buckets_.size() && value <= buckets_[next_].ready) launch(next_++);
  // MPI advances non-blocking collectives only inside MPI calls: poke the ones in flight.
  for (size_t b = 0; b < next_; ++b)
    if (in_flight_[b] && in_flight_[b]->test()) in_flight_[b].reset();
}

void GradSync::finish() {
  launched_early_ = armed_ ? static_cast<int64_t>(next_) : 0;
  armed_ = false;
  while (next_ < buckets_.size()) launch(next_++);
  for (size_t b = 0; b < in_flight_.size(); ++b) {
    if (in_flight_[b]) {
      RRT_TRACE_SPAN("grad_sync.wait_bucket", "bucket", static_cast<int64_t>(b));
      in_flight_[b]->wait();
    }
    in_flight_[b].reset();
  }
  next_ = 0;
}

}  // namespace rrt
