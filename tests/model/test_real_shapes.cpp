// The shapes of the checkpoints issue 24 names (Llama 3.2 1B, Qwen2.5 0.5B, Qwen3 0.6B; presets in
// model/presets.h): each registry holds exactly the parameters transformers 5.24 counts for the
// model (LlamaForCausalLM / Qwen2ForCausalLM / Qwen3ForCausalLM built on the meta device from the
// published config), and the relaxed models build and plan their training memory (parameters,
// gradients, AdamW moments, activations; arenas are mapped untouched, so nothing is committed).
#include <gtest/gtest.h>

#include <string>

#include "model/presets.h"
#include "model/recursive_model.h"
#include "model/registry.h"
#include "trainer/memory_check.h"

namespace rrt {
namespace {

TEST(RealShapes, PlainModelsHaveTransformersParameterCounts) {
  EXPECT_EQ(ParamRegistry(presets::preset("llama3.2-1b-plain")).total_numel(), 1235814400);
  EXPECT_EQ(ParamRegistry(presets::preset("qwen2.5-0.5b-plain")).total_numel(), 494032768);
  EXPECT_EQ(ParamRegistry(presets::preset("qwen3-0.6b-plain")).total_numel(), 596049920);
}

TEST(RealShapes, RelaxedModelsPlanTheirTrainingMemory) {
  for (const char* name : {"llama3.2-1b", "qwen2.5-0.5b"}) {
    SCOPED_TRACE(name);
    const ModelSpec spec = presets::preset(name);
    const ParamRegistry reg(spec);
    RecursiveModel model(spec, {.max_batch = 1, .max_seq = 1024, .head_chunk = 256});
    const MemoryPlan plan = training_memory_plan(model, nullptr, 1.0);
    int64_t params = -1, moments = -1, activations = -1;
    for (const MemoryPart& p : plan.parts) {
      if (p.what == "parameters") params = p.bytes;
      if (p.what == "AdamW moments") moments = p.bytes;
      if (p.what.find("activations") != std::string::npos) activations = p.bytes;
    }
    EXPECT_GE(params, 4 * reg.total_numel()) << plan.describe();
    EXPECT_GE(moments, 8 * reg.total_numel()) << plan.describe();
    EXPECT_GT(activations, 0) << plan.describe();
    RecordProperty(std::string(name) + "_plan", plan.describe());
    std::printf("%s: %lld parameters; %s\n", name, static_cast<long long>(reg.total_numel()),
                plan.describe().c_str());
  }
}

}  // namespace
}  // namespace rrt
