#include "distributed/grad_sync.h"

#include <algorithm>

#include "core/arena.h"
#include "core/error.h"

namespace rrt {

GradSync::GradSync(Communicator& comm, Arena& grads, const std::vector<int64_t>& ready_after,
                   GradSyncOptions options)
    : comm_(comm), base_(static_cast<float*>(grads.base())), options_(options) {
  RRT_CHECK(grads.allocated() && grads.size() == static_cast<int>(ready_after.size()), "GradSync",
            "the gradient arena (", grads.size(), " tensors) and the readiness list (",
            ready_after.size(), ") must describe the same parameters");
  RRT_CHECK(options_.bucket_bytes > 0, "GradSync", "bucket size must be positive");
  const int64_t bucket_floats =
      std::max<int64_t>(1, options_.bucket_bytes / static_cast<int64_t>(sizeof(float)));
  // Cut from the arena's end: tensor i spans [offset(i), offset(i + 1)), the last one to the
  // end of the arena (alignment padding included).
  int64_t end = grads.total_bytes() / static_cast<int64_t>(sizeof(float));
  Bucket open{end, end, INT64_MAX};
  for (int i = grads.size() - 1; i >= 0; --i) {
    open.begin = grads.offset_bytes(i) / static_cast<int64_t>(sizeof(float));
    open.ready = std::min(open.ready, ready_after[static_cast<size_t>(i)]);
    if (open.end - open.begin >= bucket_floats || i == 0) {
      buckets_.push_back(open);
      open = {open.begin, open.begin, INT64_MAX};
    }
  }
  RRT_CHECK(buckets_.empty() || buckets_.back().begin == 0, "GradSync",
            "the gradient arena's first tensor does not start at offset 0");
  in_flight_.resize(buckets_.size());
}

GradSync::~GradSync() = default;  // each request's destructor waits for it

void GradSync::arm() {
  RRT_CHECK(next_ == 0, "GradSync", "arm() while the previous step's buckets are in flight");
  armed_ = options_.overlap;
}

void GradSync::launch(size_t b) {
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
  for (auto& request : in_flight_) {
    if (request) request->wait();
    request.reset();
  }
  next_ = 0;
}

}  // namespace rrt
