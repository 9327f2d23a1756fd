// Final logit soft-capping (model.final_logit_softcapping, Gemma 2's final_logit_softcapping)
// beyond HfParity's logits, loss and gradients against transformers (hf_gemma2_final_softcap):
// HF export writes the cap and reads back bit for bit, families and GGUF that cannot say it refuse
// it by name, conversion carries it, and every path that produces logits caps them: the full
// logits, each loop's exit (both exit-logit calls), the evaluation loss, the exits' training
// loss, and distillation, whose teacher's logits take the teacher's own cap.
//
// With RRT_EXPORT_CHECK_DIR set, FinalSoftcap.WritesTransformersCheck leaves a relaxed export of
// the capped fixture there with rrt's logits, for tools/check_export_with_transformers.py.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/safetensors.h"
#include "model/convert.h"
#include "model/gguf_export.h"
#include "model/hf_export.h"
#include "model/hf_import.h"
#include "model/recursive_model.h"
#include "tests/error_helpers.h"

namespace rrt {
namespace {

namespace fs = std::filesystem;

constexpr const char* kFixture = "hf_gemma2_final_softcap";
constexpr double kCap = 0.75;  // the fixture's final_logit_softcapping

std::string fixture(const std::string& name) { return std::string(RRT_FIXTURE_DIR) + "/" + name; }

struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& tag) {
    path =
        fs::temp_directory_path() / ("rrt_final_softcap_" + tag + "_" + std::to_string(getpid()));
    fs::remove_all(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string str(const std::string& sub = "") const { return (path / sub).string(); }
};

// The fixture's tokens and targets ([N, T], -1 ignored).
struct Batch {
  std::vector<int32_t> inputs, targets;
  int64_t N = 0, T = 0;
};
Batch fixture_batch() {
  SafetensorsFile ref(fixture(kFixture) + "/reference.safetensors");
  Batch b;
  b.inputs = ref.read_i32("inputs");
  b.targets = ref.read_i32("targets");
  b.N = ref.info("inputs").shape.at(0);
  b.T = ref.info("inputs").shape.at(1);
  return b;
}

// A model of `spec` holding `params`' values (by name).
std::unique_ptr<RecursiveModel> model_of(const ModelSpec& spec, const ParameterSet& params,
                                         const Batch& b, const TrainingLoss& loss = {}) {
  auto m = std::make_unique<RecursiveModel>(
      spec, ModelCapacity{.max_batch = b.N, .max_seq = b.T, .head_chunk = 5}, loss);
  for (int i = 0; i < params.registry().size(); ++i)
    std::memcpy(m->params().value(params.registry()[i].name), params.value(i),
                static_cast<size_t>(params.numel(i)) * sizeof(float));
  return m;
}

ModelSpec with_cap(ModelSpec spec, double cap) {
  spec.model.final_logit_softcapping = cap;
  return spec;
}

// The relaxed recursive model of the fixture: its 3 layers as K = 3 loops of one block layer.
Converted relaxed_fixture() {
  const HfModel hf = load_hf_model(fixture(kFixture));
  return convert_to_recursive(hf.spec, *hf.params,
                              {.loops = 3,
                               .sharing = Sharing::cycle,
                               .init = InitRule::average,
                               .rank_attention = 4,
                               .rank_mlp = 4});
}

void expect_capped(const std::vector<float>& capped, const std::vector<float>& raw, double cap,
                   const std::string& what) {
  ASSERT_EQ(capped.size(), raw.size()) << what;
  double bent = 0;
  for (size_t i = 0; i < raw.size(); ++i) {
    const double want = cap * std::tanh(static_cast<double>(raw[i]) / cap);
    EXPECT_NEAR(capped[i], want, 1e-6) << what << " [" << i << "]";
    bent = std::max(bent, std::abs(static_cast<double>(raw[i]) - want));
  }
  EXPECT_GT(bent, 0.1) << what << ": the cap should bend these logits";
}

// Mean over counted rows of lse(z) - z[target], in double, from full logits [rows, V].
double mean_ce(const std::vector<float>& z, const std::vector<int32_t>& targets, int64_t V) {
  double sum = 0;
  int64_t counted = 0;
  for (size_t r = 0; r < targets.size(); ++r) {
    if (targets[r] == RecursiveModel::kIgnoreIndex) continue;
    const float* row = z.data() + r * V;
    double m = row[0], s = 0;
    for (int64_t j = 1; j < V; ++j) m = std::max(m, static_cast<double>(row[j]));
    for (int64_t j = 0; j < V; ++j) s += std::exp(row[j] - m);
    sum += m + std::log(s) - row[targets[r]];
    ++counted;
  }
  return sum / static_cast<double>(counted);
}

TEST(FinalSoftcap, HfExportWritesTheCapAndReadsBackBitForBit) {
  const HfModel src = load_hf_model(fixture(kFixture));
  ASSERT_DOUBLE_EQ(src.spec.model.final_logit_softcapping, kCap);
  TempDir dir("roundtrip");
  export_hf(src.spec, *src.params, dir.str());
  const auto cfg = nlohmann::json::parse(std::ifstream(dir.str("config.json")));
  EXPECT_DOUBLE_EQ(cfg.at("final_logit_softcapping").get<double>(), kCap);
  EXPECT_DOUBLE_EQ(cfg.at("attn_logit_softcapping").get<double>(), 0.25);
  const HfModel back = load_hf_model(dir.str());
  EXPECT_DOUBLE_EQ(back.spec.model.final_logit_softcapping, kCap);
  EXPECT_DOUBLE_EQ(back.spec.model.attn_logit_softcapping, 0.25);
  const ParamRegistry& reg = src.params->registry();
  ASSERT_EQ(reg.size(), back.params->registry().size());
  for (int i = 0; i < reg.size(); ++i)
    EXPECT_EQ(std::memcmp(src.params->value(i), back.params->value(reg[i].name),
                          static_cast<size_t>(src.params->numel(i)) * sizeof(float)),
              0)
        << reg[i].name;

  // Without a cap Gemma 2's key is written as null: absent, transformers would cap at 30.
  const HfModel plain = load_hf_model(fixture("hf_gemma2"));
  TempDir plain_dir("plain");
  export_hf(plain.spec, *plain.params, plain_dir.str());
  const auto plain_cfg = nlohmann::json::parse(std::ifstream(plain_dir.str("config.json")));
  ASSERT_TRUE(plain_cfg.contains("final_logit_softcapping"));
  EXPECT_TRUE(plain_cfg.at("final_logit_softcapping").is_null());
  EXPECT_DOUBLE_EQ(load_hf_model(plain_dir.str()).spec.model.final_logit_softcapping, 0.0);
}

// Llama's config has no such key (and GGUF's llama architecture none): dropping the cap would
// export another model, so both refuse it by its config name.
TEST(FinalSoftcap, ExportsThatCannotSayItRefuseIt) {
  HfModel llama = load_hf_model(fixture("hf_llama_gqa"));
  llama.spec.model.final_logit_softcapping = 2.0;
  TempDir dir("refused");
  const std::string hf_msg =
      testing::error_message([&] { export_hf(llama.spec, *llama.params, dir.str("hf")); });
  EXPECT_TRUE(testing::contains(hf_msg, "model.final_logit_softcapping")) << hf_msg;
  const std::string gguf_msg = testing::error_message(
      [&] { export_gguf(llama.spec, *llama.params, dir.str("model.gguf")); });
  EXPECT_TRUE(testing::contains(gguf_msg, "model.final_logit_softcapping")) << gguf_msg;
  EXPECT_FALSE(fs::exists(dir.str("model.gguf")));
}

TEST(FinalSoftcap, ConversionCarriesTheCap) {
  EXPECT_DOUBLE_EQ(relaxed_fixture().spec.model.final_logit_softcapping, kCap);
}

// The same weights with and without the cap: every logits path of the capped model gives
// cap tanh(z / cap) of the uncapped one's z, and the losses are those of the capped logits.
TEST(FinalSoftcap, EveryLogitsPathCaps) {
  const Converted r = relaxed_fixture();
  const Batch b = fixture_batch();
  const int64_t K = r.spec.recursion.loops, V = r.spec.model.vocab, D = r.spec.model.d_model;
  const int64_t M = b.N * b.T;
  auto capped = model_of(r.spec, *r.params, b);
  auto raw = model_of(with_cap(r.spec, 0.0), *r.params, b);

  std::vector<float> zc(static_cast<size_t>(M * V)), zr(zc.size());
  capped->logits(b.inputs.data(), b.N, b.T, zc.data());
  raw->logits(b.inputs.data(), b.N, b.T, zr.data());
  expect_capped(zc, zr, kCap, "logits");
  EXPECT_NEAR(capped->loss(b.inputs.data(), b.targets.data(), b.N, b.T), mean_ce(zc, b.targets, V),
              1e-5);

  // Each loop's exit, through the core's rows call and the model's residual call.
  std::vector<int32_t> rows(static_cast<size_t>(std::min<int64_t>(M, capped->exit_chunk())));
  for (size_t i = 0; i < rows.size(); ++i) rows[i] = static_cast<int32_t>(M - 1 - i);
  const int64_t n = static_cast<int64_t>(rows.size());
  std::vector<std::vector<float>> exit_full(static_cast<size_t>(K));
  capped->forward_loop_ends(b.inputs.data(), b.N, b.T);
  raw->forward_loop_ends(b.inputs.data(), b.N, b.T);
  for (int64_t k = 1; k <= K; ++k) {
    std::vector<float> ec(static_cast<size_t>(n * V)), er(ec.size());
    capped->exit_logits_of_rows(k, rows.data(), n, ec.data());
    raw->exit_logits_of_rows(k, rows.data(), n, er.data());
    expect_capped(ec, er, kCap, "exit " + std::to_string(k) + " rows");
    std::vector<float> h(static_cast<size_t>(M * D)), full(static_cast<size_t>(M * V));
    capped->exit_logits(k, capped->loop_end_residual(k), M, h.data(), full.data());
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < V; ++j)
        EXPECT_NEAR(full[rows[i] * V + j], ec[i * V + j], 1e-5) << "exit " << k;
    exit_full[static_cast<size_t>(k - 1)] = full;
  }

  // The exits' training loss: each exit's CE is that of its capped logits.
  TrainingLoss exits;
  exits.exit_loops = {1, 2, 3};
  exits.exit_weights = {0.2, 0.3, 1.0};
  auto trained = model_of(r.spec, *r.params, b, exits);
  trained->forward_backward(b.inputs.data(), b.targets.data(), b.N, b.T);
  for (int64_t k = 0; k < K; ++k)
    EXPECT_NEAR(trained->last_losses().exit_ce[static_cast<size_t>(k)],
                mean_ce(exit_full[static_cast<size_t>(k)], b.targets, V), 1e-5)
        << "exit " << k + 1;
}

// Distillation: the teacher (the capped plain fixture) caps its logits with its own cap, the
// student (the relaxed model, uncapped here) not at all; KD is tau^2 KL(p^tau || q^tau) of them.
TEST(FinalSoftcap, DistillationTeacherUsesItsOwnCap) {
  const HfModel hf = load_hf_model(fixture(kFixture));
  const Converted r = relaxed_fixture();
  const Batch b = fixture_batch();
  const int64_t V = r.spec.model.vocab, M = b.N * b.T;
  const double tau = 2.0;
  auto teacher = model_of(hf.spec, *hf.params, b);
  TrainingLoss kd;
  kd.teacher = true;
  kd.temperature = tau;
  kd.alpha = 0.5;
  const ModelSpec student_spec = with_cap(r.spec, 0.0);
  auto student = model_of(student_spec, *r.params, b, kd);
  student->set_teacher(teacher.get());
  student->forward_backward(b.inputs.data(), b.targets.data(), b.N, b.T);
  const double got = student->last_losses().kd;

  std::vector<float> zt(static_cast<size_t>(M * V)), zs(zt.size());
  teacher->logits(b.inputs.data(), b.N, b.T, zt.data());
  model_of(student_spec, *r.params, b)->logits(b.inputs.data(), b.N, b.T, zs.data());
  for (float z : zt) ASSERT_LT(std::abs(z), kCap);  // the teacher's logits are capped
  auto log_softmax = [&](const float* z) {
    std::vector<double> out(static_cast<size_t>(V));
    double m = z[0] / tau, s = 0;
    for (int64_t j = 0; j < V; ++j) m = std::max(m, z[j] / tau);
    for (int64_t j = 0; j < V; ++j) s += std::exp(z[j] / tau - m);
    for (int64_t j = 0; j < V; ++j) out[static_cast<size_t>(j)] = z[j] / tau - m - std::log(s);
    return out;
  };
  double sum = 0;
  int64_t counted = 0;
  for (int64_t r0 = 0; r0 < M; ++r0) {
    if (b.targets[static_cast<size_t>(r0)] == RecursiveModel::kIgnoreIndex) continue;
    const auto lp = log_softmax(zt.data() + r0 * V), lq = log_softmax(zs.data() + r0 * V);
    for (int64_t j = 0; j < V; ++j) sum += std::exp(lp[j]) * (lp[j] - lq[j]);
    ++counted;
  }
  const double want = tau * tau * sum / static_cast<double>(counted);
  EXPECT_NEAR(got, want, 1e-5 * std::max(1.0, std::abs(want)));
}

// Leaves a relaxed export of the capped fixture (K = 3, rank 4) with rrt's logits in
// RRT_EXPORT_CHECK_DIR/gemma2_final_softcap, for tools/check_export_with_transformers.py.
TEST(FinalSoftcap, WritesTransformersCheck) {
  const char* env = std::getenv("RRT_EXPORT_CHECK_DIR");
  if (!env || !*env) GTEST_SKIP() << "set RRT_EXPORT_CHECK_DIR to write the transformers check";
  const Converted r = relaxed_fixture();
  const Batch b = fixture_batch();
  const std::string dir = (fs::path(env) / "gemma2_final_softcap").string();
  export_hf(r.spec, *r.params, dir, /*overwrite=*/true);
  std::vector<float> logits(static_cast<size_t>(b.N * b.T * r.spec.model.vocab));
  model_of(r.spec, *r.params, b)->logits(b.inputs.data(), b.N, b.T, logits.data());
  write_safetensors((fs::path(dir) / "rrt_logits.safetensors").string(),
                    {{"tokens", "I32", {b.N, b.T}, b.inputs.data()},
                     {"logits", "F32", {b.N, b.T, r.spec.model.vocab}, logits.data()}});
}

}  // namespace
}  // namespace rrt
