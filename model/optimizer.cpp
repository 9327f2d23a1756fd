#include "model/optimizer.h"

#include <algorithm>

namespace rrt {

AdamW::AdamW(ParameterSet& params, const ops::AdamWHyper& hyper, FloatSlice slice)
    : params_(params), hyper_(hyper), slice_(slice) {
  const Arena& values = params_.values_arena();
  const int64_t total = values.total_bytes() / static_cast<int64_t>(sizeof(float));
  if (slice_.end < 0) slice_ = {0, total};
  RRT_CHECK(0 <= slice_.begin && slice_.begin <= slice_.end && slice_.end <= total, "AdamW",
            "slice [", slice_.begin, ", ", slice_.end, ") is outside the ", total,
            "-float parameter arena");
  sharded_ = slice_.begin != 0 || slice_.end != total;
  if (!sharded_) {
    for (const auto& p : params_.registry().params()) {
      m_.plan(p.name, p.shape);
      v_.plan(p.name, p.shape);
    }
  } else {
    for (int i = 0; i < values.size(); ++i) {
      const int64_t at = values.offset_bytes(i) / static_cast<int64_t>(sizeof(float));
      const int64_t lo = std::max(at, slice_.begin), hi = std::min(at + params_.numel(i), slice_.end);
      if (lo < hi) pieces_.push_back({i, lo - at, hi - lo, lo - slice_.begin});
    }
    m_.plan("slice", Shape{std::max<int64_t>(slice_.end - slice_.begin, 1)});
    v_.plan("slice", Shape{std::max<int64_t>(slice_.end - slice_.begin, 1)});
  }
  m_.allocate();
  v_.allocate();
}

void AdamW::step(double lr) {
  ++step_;
  ops::AdamWHyper h = hyper_;
  if (lr >= 0) h.lr = lr;
  const ParamRegistry& reg = params_.registry();
  if (sharded_) {
    float *m = m_.view(0).f32(), *v = v_.view(0).f32();
    for (const Piece& p : pieces_) {
      if (!reg[p.param].trainable) continue;
      ops::adamw_step<float>(params_.value(p.param) + p.start, params_.grad(p.param) + p.start,
                             m + p.moment_at, v + p.moment_at, p.count, h, reg[p.param].decay,
                             step_);
    }
    return;
  }
  for (int i = 0; i < reg.size(); ++i) {
    if (!reg[i].trainable) continue;
    ops::adamw_step<float>(params_.value(i), params_.grad(i), m_.view(i).f32(), v_.view(i).f32(),
                           params_.numel(i), h, reg[i].decay, step_);
  }
}

}  // namespace rrt
