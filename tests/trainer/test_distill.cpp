// Distillation and early exits through the trainer: the teacher from an rrt checkpoint or a
// Hugging Face directory, the metrics.jsonl keys, the two-stage recipe of docs/distillation.md
// (uptrain with KD, then early-exit post-training from its checkpoint through train.init_from),
// train: lora leaving every other tensor untouched, head adapters on the exits added to a
// checkpoint that has none (train: head_lora), and the teacher's errors.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "config/objective.h"
#include "core/error.h"
#include "core/safetensors.h"
#include "data/prepare.h"
#include "evaluation/evaluate.h"
#include "model/gguf_import.h"
#include "tests/model/compare.h"
#include "tests/text_shards.h"
#include "tests/trainer/small_run.h"
#include "trainer/teacher.h"
#include "trainer/trainer.h"

namespace rrt {
namespace {

namespace fs = std::filesystem;

fs::path fresh(const std::string& name) {
  const fs::path p =
      fs::path(::testing::TempDir()) / ("rrt_distill_" + std::to_string(::getpid()) + "_" + name);
  fs::remove_all(p);
  return p;
}

const std::string& shards() {
  static const std::string dir = rrt::prepare_test_shards(fresh("data"), 4, 30, [](int d, int i) {
    return "Document " + std::to_string(d) + " line " + std::to_string(i) +
           ": the teacher knows the next byte.";
  });
  return dir;
}

// The student: 4 layers as 2 shared x 2 loops with LoRA. The teacher: a wider plain model.
RunConfig run(const fs::path& dir, bool teacher_model = false) {
  RunConfig c;
  if (teacher_model) {
    c.model.model = {.n_layers = 2,
                     .vocab = 257,
                     .d_model = 48,
                     .n_heads = 4,
                     .n_kv_heads = 4,
                     .ffn = 64,
                     .max_seq_len = 32};
    c.model.recursion = {.block_layers = 2, .loops = 1};
  } else {
    c.model = testing::tiny_relaxed_model();
  }
  c.data.path = shards();
  c.data.val_fraction = 0.1;
  c.optim.lr = 3e-3;
  c.optim.warmup_steps = 2;
  c.train.steps = 8;
  c.train.micro_batch = 2;
  c.train.grad_accum = 2;
  c.train.seq_len = 24;
  c.train.eval_every = 1000;
  c.train.eval_batches = 1;
  c.train.run_dir = dir.string();
  c.checkpoint.every = 1000;
  c.log.every = 4;
  return c;
}

std::vector<nlohmann::json> metrics(const fs::path& dir) {
  std::vector<nlohmann::json> out;
  std::ifstream in(dir / "metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line);
    if (j.contains("loss")) out.push_back(j);
  }
  return out;
}

TEST(Teacher, FromHuggingFaceDirectoryMatchesTransformers) {
  const std::string dir = std::string(RRT_FIXTURE_DIR) + "/hf_llama_gqa";
  SafetensorsFile ref(dir + "/reference.safetensors");
  const auto inputs = ref.read_i32("inputs");
  const auto expected = ref.read_f32("logits");
  const int64_t N = 2, T = static_cast<int64_t>(inputs.size()) / N;
  const auto teacher = load_teacher(dir, N, T);
  EXPECT_FALSE(teacher->params().has_grads());
  std::vector<float> logits(expected.size());
  teacher->logits(inputs.data(), N, T, logits.data());
  EXPECT_LE(testing::relative_max_error(logits.data(), expected), 1e-4);
}

// A GGUF file is a teacher too (checkpoint/model_source.h): the model load_gguf_model imports.
TEST(Teacher, FromGgufFileIsTheImportedModel) {
  const std::string file = std::string(RRT_FIXTURE_DIR) + "/gguf/llama_untied.gguf";
  HfModel hf = load_gguf_model(file);
  const int64_t N = 2, T = 6;
  std::vector<int32_t> inputs(N * T);
  for (size_t i = 0; i < inputs.size(); ++i)
    inputs[i] = static_cast<int32_t>((i * 5 + 1) % hf.spec.model.vocab);
  RecursiveModel reference(hf.spec, ModelCapacity{.max_batch = N, .max_seq = T});
  std::memcpy(reference.params().values_arena().base(), hf.params->values_arena().base(),
              static_cast<size_t>(hf.params->values_arena().total_bytes()));
  std::vector<float> expected(static_cast<size_t>(N * T * hf.spec.model.vocab));
  reference.logits(inputs.data(), N, T, expected.data());
  bool planned = false;
  const auto teacher = load_teacher(file, N, T, [&](const RecursiveModel&) { planned = true; });
  EXPECT_TRUE(planned);
  EXPECT_EQ(teacher->spec().recursion.loops, 1);
  std::vector<float> logits(expected.size());
  teacher->logits(inputs.data(), N, T, logits.data());
  EXPECT_EQ(logits, expected);
}

TEST(Teacher, ErrorsNameTheKey) {
  for (const std::string& path :
       {std::string("/nonexistent/teacher.h5"), std::string(RRT_FIXTURE_DIR) + "/gguf"}) {
    try {
      load_teacher(path, 1, 8);
      ADD_FAILURE() << path;
    } catch (const Error& e) {
      EXPECT_EQ(e.where(), "distill.teacher") << e.what();
    }
  }
  try {  // the HF fixture serves 64 positions
    load_teacher(std::string(RRT_FIXTURE_DIR) + "/hf_llama_gqa", 1, 65);
    ADD_FAILURE() << "sequence too long";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("train.seq_len"), std::string::npos) << e.what();
  }
}

// Stage 0 trains a teacher; stage 1 uptrains the student with KD from its checkpoint; stage 2
// post-trains the stage-1 checkpoint with exits after every loop, aggressive(0.1) and
// self-distillation (init_from), then stage 3 with train: lora.
TEST(Distill, TwoStageRecipeLogsEveryTerm) {
  const fs::path teacher_dir = fresh("teacher"), up_dir = fresh("uptrain"),
                 post_dir = fresh("posttrain"), lora_dir = fresh("lora");
  RunConfig t = run(teacher_dir, true);
  t.train.steps = 6;
  const TrainSummary teacher = Trainer(t).run();

  RunConfig up = run(up_dir);
  up.distill.teacher = teacher.last_checkpoint;
  up.distill.temperature = 2.0;
  const TrainSummary uptrained = Trainer(up).run();
  EXPECT_LT(uptrained.losses.back(), uptrained.losses.front());
  for (const auto& j : metrics(up_dir)) {
    for (const char* key : {"loss_ce", "loss_kd", "exit2_ce", "exit2_kd"})
      EXPECT_TRUE(j.contains(key)) << key << " in " << j.dump();
    EXPECT_FALSE(j.contains("loss_sd"));
    EXPECT_FALSE(j.contains("exit1_ce"));
    // loss = (1 - a) CE + a KD with a single exit of weight 1.
    EXPECT_NEAR(j["loss"].get<double>(),
                0.5 * j["loss_ce"].get<double>() + 0.5 * j["loss_kd"].get<double>(), 1e-6);
  }

  RunConfig post = run(post_dir);
  post.train.init_from = uptrained.last_checkpoint;
  post.early_exit.exits = {"all"};
  post.early_exit.self_distill = true;
  const TrainSummary posttrained = Trainer(post).run();
  ASSERT_EQ(posttrained.losses.size(), 8u);
  for (const auto& j : metrics(post_dir)) {
    for (const char* key : {"loss_ce", "loss_sd", "exit1_ce", "exit1_sd", "exit2_ce"})
      EXPECT_TRUE(j.contains(key)) << key << " in " << j.dump();
    EXPECT_FALSE(j.contains("exit2_sd"));  // the final exit distils into no one
    EXPECT_FALSE(j.contains("loss_kd"));
    const double w = 0.1 * (j["exit1_ce"].get<double>() + j["exit1_sd"].get<double>()) +
                     j["exit2_ce"].get<double>();
    EXPECT_NEAR(j["loss"].get<double>(), w, 1e-5);
  }

  RunConfig lora = run(lora_dir);
  lora.train.init_from = uptrained.last_checkpoint;
  lora.early_exit.exits = {"all"};
  lora.early_exit.train = "lora";
  const TrainSummary lora_run = Trainer(lora).run();
  ParameterSet before(lora.model), after(lora.model);
  load_checkpoint(uptrained.last_checkpoint, before, nullptr);
  load_checkpoint(lora_run.last_checkpoint, after, nullptr);
  const ParamRegistry& reg = before.registry();
  for (int i = 0; i < reg.size(); ++i) {
    const bool is_lora = reg[i].kind == ParamKind::lora_a || reg[i].kind == ParamKind::lora_b;
    const bool same =
        std::equal(before.value(i), before.value(i) + before.numel(i), after.value(i));
    EXPECT_EQ(same, !is_lora) << reg[i].name;
  }
}

// Post-training only the exits' head adapters from a checkpoint without them: every other
// tensor stays bit-identical, so the model's output (the final exit, which has no adapter) and
// its evaluation do not move, while the intermediate exit learns.
TEST(Distill, HeadAdaptersFromACheckpointWithoutThem) {
  const fs::path up_dir = fresh("up_for_heads"), heads_dir = fresh("heads");
  const TrainSummary up = Trainer(run(up_dir)).run();
  RunConfig heads = run(heads_dir);
  heads.train.init_from = up.last_checkpoint;
  heads.early_exit.exits = {"all"};
  heads.early_exit.train = "head_lora";
  heads.model.exit_head.lora_rank = 3;
  const TrainSummary trained = Trainer(heads).run();
  ParameterSet before(run(up_dir).model);
  load_checkpoint(up.last_checkpoint, before, nullptr);
  RunConfig resolved = heads;
  derive_exit_head(resolved);
  ASSERT_EQ(resolved.model.exit_head.loops, (std::vector<int64_t>{1}));
  ParameterSet after(resolved.model);
  load_checkpoint(trained.last_checkpoint, after, nullptr);
  EXPECT_EQ(after.registry().size(), before.registry().size() + 2);
  const float* B = after.value("exit.1.head_lora.B");  // starts at 0: it trained
  EXPECT_TRUE(std::any_of(B, B + after.numel(after.registry().index("exit.1.head_lora.B")),
                          [](float x) { return x != 0.0f; }));
  for (int i = 0; i < before.registry().size(); ++i) {
    const std::string& name = before.registry()[i].name;
    EXPECT_TRUE(std::equal(before.value(i), before.value(i) + before.numel(i), after.value(name)))
        << name;
  }
  const EvalResult a = evaluate_checkpoint(up.last_checkpoint, "", 1);
  const EvalResult b = evaluate_checkpoint(trained.last_checkpoint, "", 1);
  EXPECT_EQ(a.loss, b.loss);
}

TEST(Distill, TeacherWithAnotherVocabularyIsRefused) {
  const fs::path teacher_dir = fresh("teacher300"), student_dir = fresh("student300");
  RunConfig t = run(teacher_dir, true);
  t.model.model.vocab = 300;
  t.train.steps = 1;
  const TrainSummary teacher = Trainer(t).run();
  RunConfig s = run(student_dir);
  s.distill.teacher = teacher.last_checkpoint;
  try {
    Trainer trainer(s);
    ADD_FAILURE() << "vocab mismatch";
  } catch (const Error& e) {
    EXPECT_EQ(e.where(), "distill.teacher");
    EXPECT_NE(std::string(e.what()).find("300"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace rrt
