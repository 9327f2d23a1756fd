// Distillation and early exits against PyTorch (tools/make_kd_fixtures.py): a relaxed student
// (K = 3 loops, LoRA) with exits after every loop under aggressive(0.1) weights and
// self-distillation, distilled at temperature 2 from a wider plain teacher run forward only.
// For each divergence, and once more with a LoRA on the head of each intermediate exit: the
// total loss, every per-exit term and every parameter gradient.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "model/recursive_model.h"
#include "tests/model/compare.h"
#include "tests/model/fixture.h"

namespace rrt {
namespace {

using testing::relative_max_error;

struct Divergences {
  const char* name;  // the fixture's case
  ops::Divergence divergence;
  bool head_lora = false;
};

class KdParity : public ::testing::TestWithParam<Divergences> {};

TEST_P(KdParity, LossTermsAndEveryGradient) {
  const Divergences div = GetParam();
  testing::Fixture student_fx = testing::load_fixture("kd_student.safetensors");
  testing::Fixture teacher_fx = testing::load_fixture("kd_teacher.safetensors");
  const auto& kd = student_fx.config.at("kd");
  const int64_t N = student_fx.N, T = student_fx.T;

  RecursiveModel teacher(teacher_fx.spec, {.max_batch = N, .max_seq = T, .forward_only = true});
  teacher.params().load(*teacher_fx.file);

  TrainingLoss loss;
  loss.exit_loops = kd.at("exits").get<std::vector<int64_t>>();
  loss.exit_weights = kd.at("weights").get<std::vector<double>>();
  loss.self_distill = kd.at("self_distill");
  loss.teacher = true;
  loss.divergence = div.divergence;
  loss.temperature = kd.at("temperature");
  loss.alpha = kd.at("alpha");
  // head_chunk 5 does not divide N*T = 18: the last chunk is partial.
  ModelSpec spec = student_fx.spec;
  if (div.head_lora) spec.exit_head = {.lora_rank = kd.at("head_lora_rank"), .loops = {1, 2}};
  RecursiveModel student(spec, {.max_batch = N, .max_seq = T, .head_chunk = 5}, loss);
  student.params().load(*student_fx.file);
  student.set_teacher(&teacher);

  const auto inputs = student_fx.file->read_i32("inputs");
  const auto targets = student_fx.file->read_i32("targets");
  student.params().zero_grads();
  const double total = student.forward_backward(inputs.data(), targets.data(), N, T);
  const std::string pre = std::string(div.name) + ".";
  const double ref_total = student_fx.file->read_f32(pre + "loss")[0];
  EXPECT_NEAR(total, ref_total, 1e-4 * std::abs(ref_total));
  RecordProperty("loss_abs_err", std::to_string(std::abs(total - ref_total)));

  const LossBreakdown& terms = student.last_losses();
  for (const auto& [name, got] : {std::pair{"ce", &terms.exit_ce}, std::pair{"kd", &terms.exit_kd},
                                  std::pair{"sd", &terms.exit_sd}}) {
    const auto ref = student_fx.file->read_f32(pre + name);
    ASSERT_EQ(ref.size(), got->size()) << name;
    for (size_t e = 0; e < ref.size(); ++e)
      EXPECT_NEAR((*got)[e], ref[e], 1e-4 * std::max(1.0f, std::abs(ref[e])))
          << name << " of exit " << e;
  }

  const ParamRegistry& reg = student.params().registry();
  double worst = 0;
  for (int i = 0; i < reg.size(); ++i) {
    const std::string name = pre + "grad." + reg[i].name;
    ASSERT_TRUE(student_fx.file->has(name)) << name;
    const auto ref = student_fx.file->read_f32(name);
    ASSERT_EQ(static_cast<int64_t>(ref.size()), student.params().numel(i)) << name;
    const double err = relative_max_error(student.params().grad(i), ref);
    EXPECT_LE(err, 1e-4) << name;
    worst = std::max(worst, err);
  }
  RecordProperty("worst_grad_rel_err", std::to_string(worst));
  std::printf("%s: loss %.6f (PyTorch %.6f), worst gradient error %.2e of its tensor's max\n",
              div.name, total, ref_total, worst);
}

INSTANTIATE_TEST_SUITE_P(Divergences, KdParity,
                         ::testing::Values(Divergences{"forward_kl", ops::Divergence::forward_kl},
                                           Divergences{"reverse_kl", ops::Divergence::reverse_kl},
                                           Divergences{"tv", ops::Divergence::tv},
                                           Divergences{"head_lora", ops::Divergence::forward_kl,
                                                       true}),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace rrt
