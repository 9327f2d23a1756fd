#include "model/optimizer.h"

namespace rrt {

AdamW::AdamW(ParameterSet& params, const ops::AdamWHyper& hyper) : params_(params), hyper_(hyper) {
  for (const auto& p : params_.registry().params()) {
    m_.plan(p.name, p.shape);
    v_.plan(p.name, p.shape);
  }
  m_.allocate();
  v_.allocate();
}

void AdamW::step(double lr) {
  ++step_;
  ops::AdamWHyper h = hyper_;
  if (lr >= 0) h.lr = lr;
  const ParamRegistry& reg = params_.registry();
  for (int i = 0; i < reg.size(); ++i) {
    if (!reg[i].trainable) continue;
    ops::adamw_step<float>(params_.value(i), params_.grad(i), m_.view(i).f32(), v_.view(i).f32(),
                           params_.numel(i), h, reg[i].decay, step_);
  }
}

}  // namespace rrt
