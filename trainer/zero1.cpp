#include "trainer/zero1.h"

#include "core/error.h"
#include "distributed/communicator.h"

namespace rrt {

namespace {
float* flat(Arena& arena) { return static_cast<float*>(arena.base()); }
}  // namespace

Zero1::Zero1(Communicator& comm, ParameterSet& params)
    : comm_(comm),
      params_(params),
      begins_(shard_begins(params.values_arena().total_bytes() / static_cast<int64_t>(sizeof(float)),
                           comm.world_size())) {}

FloatSlice Zero1::slice() const {
  const auto r = static_cast<size_t>(comm_.rank());
  return {begins_[r], begins_[r + 1]};
}

void Zero1::gather_parameters() { comm_.all_gather(flat(params_.values_arena()), begins_); }

std::unique_ptr<AdamW> Zero1::gather_moments(AdamW& sharded) {
  RRT_CHECK(sharded.sharded() || comm_.world_size() == 1, "ZeRO-1",
            "gather_moments needs the sharded optimizer");
  std::unique_ptr<AdamW> whole;
  if (comm_.is_root()) {
    whole = std::make_unique<AdamW>(params_, sharded.hyper());
    whole->set_steps_taken(sharded.steps_taken());
  }
  // A whole optimizer's moments have the parameters' layout, so slice r lands at begins[r].
  comm_.gather(flat(sharded.first_moment()), whole ? flat(whole->first_moment()) : nullptr,
               begins_);
  comm_.gather(flat(sharded.second_moment()), whole ? flat(whole->second_moment()) : nullptr,
               begins_);
  return whole;
}

void Zero1::scatter_moments(AdamW* whole, AdamW& sharded) {
  RRT_CHECK(!comm_.is_root() || whole, "ZeRO-1", "rank 0 must hold the whole optimizer");
  comm_.scatter(whole ? flat(whole->first_moment()) : nullptr, flat(sharded.first_moment()),
                begins_);
  comm_.scatter(whole ? flat(whole->second_moment()) : nullptr, flat(sharded.second_moment()),
                begins_);
}

}  // namespace rrt
