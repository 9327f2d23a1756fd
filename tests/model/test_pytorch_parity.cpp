// The model against an independent PyTorch implementation (tools/make_fixtures.py): logits,
// loss, every parameter gradient, and the losses of 10 AdamW steps; masks.safetensors with
// packed documents, a sliding window on some layers and soft-capped attention logits.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "model/optimizer.h"
#include "tests/model/compare.h"
#include "tests/model/fixture.h"

namespace rrt {
namespace {

using testing::relative_max_error;

class PyTorchParity : public ::testing::TestWithParam<const char*> {};

TEST_P(PyTorchParity, LogitsLossAndEveryGradient) {
  testing::Fixture fx = testing::load_fixture(GetParam());
  RecursiveModel model(fx.spec, {.max_batch = fx.N, .max_seq = fx.T, .head_chunk = 5});
  model.params().load(*fx.file);
  model.set_document_eos(fx.document_eos);
  const auto inputs = fx.file->read_i32("inputs");
  const auto targets = fx.file->read_i32("targets");

  std::vector<float> logits(static_cast<size_t>(fx.N * fx.T * fx.spec.model.vocab));
  model.logits(inputs.data(), fx.N, fx.T, logits.data());
  const double logit_err = relative_max_error(logits.data(), fx.file->read_f32("logits"));
  EXPECT_LE(logit_err, 1e-4);
  RecordProperty("logits_rel_err", std::to_string(logit_err));

  model.params().zero_grads();
  const double loss = model.forward_backward(inputs.data(), targets.data(), fx.N, fx.T);
  EXPECT_NEAR(loss, fx.file->read_f32("loss")[0], 1e-4);

  const ParamRegistry& reg = model.params().registry();
  int checked = 0;
  for (int i = 0; i < reg.size(); ++i) {
    const std::string name = "grad." + reg[i].name;
    ASSERT_TRUE(fx.file->has(name)) << name;
    const auto ref = fx.file->read_f32(name);
    ASSERT_EQ(static_cast<int64_t>(ref.size()), model.params().numel(i)) << name;
    EXPECT_LE(relative_max_error(model.params().grad(i), ref), 1e-4) << name;
    ++checked;
  }
  // The fixture must hold exactly the registry's parameters: nothing missing, nothing extra.
  int fixture_grads = 0;
  for (const auto& [name, info] : fx.file->tensors()) fixture_grads += name.rfind("grad.", 0) == 0;
  EXPECT_EQ(checked, fixture_grads);
}

TEST_P(PyTorchParity, TenAdamWStepLosses) {
  testing::Fixture fx = testing::load_fixture(GetParam());
  RecursiveModel model(fx.spec, {.max_batch = fx.N, .max_seq = fx.T});
  model.params().load(*fx.file);
  model.set_document_eos(fx.document_eos);
  ASSERT_EQ(fx.config["adamw"]["decay_rule"], "ndim>=2");
  for (const auto& p : model.params().registry().params())
    ASSERT_EQ(p.decay, p.shape.ndim >= 2) << p.name;
  AdamW optimizer(model.params(), fx.adamw);
  const auto inputs = fx.file->read_i32("inputs");
  const auto targets = fx.file->read_i32("targets");
  const auto ref = fx.file->read_f32("adamw_losses");
  ASSERT_EQ(static_cast<int64_t>(ref.size()), fx.steps);
  for (int64_t s = 0; s < fx.steps; ++s) {
    model.params().zero_grads();
    const double loss = model.forward_backward(inputs.data(), targets.data(), fx.N, fx.T);
    EXPECT_NEAR(loss, ref[s], 1e-4) << "step " << s;
    optimizer.step();
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, PyTorchParity,
                         ::testing::Values("relaxed_cycle.safetensors", "plain_k1.safetensors",
                                           "recursive_sequence.safetensors", "masks.safetensors"),
                         [](const auto& info) {
                           std::string s = info.param;
                           return s.substr(0, s.find('.'));
                         });

}  // namespace
}  // namespace rrt
