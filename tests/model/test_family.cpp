// The family descriptors (model/family.h), walked one by one, so that a new descriptor is tested
// by being added: its tensor tables hold every registry name of a plain model of the family
// exactly once (and no rule is dead), import(export(x)) is the identity on a random model of the
// family, the row layouts invert, and unknown families are refused listing the known ones.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "model/family.h"
#include "model/hf_export.h"
#include "model/hf_import.h"
#include "model/parameters.h"
#include "model/registry.h"
#include "tests/error_helpers.h"

namespace rrt {
namespace {

namespace fs = std::filesystem;
using testing::contains;
using testing::error_message;

constexpr int64_t kLayers = 3;

// A small plain model (B = L, K = 1, no LoRA) of family d, with what its HF config can say:
// GQA and an independent head_dim where it has the keys, the family's partial rotary.
ModelSpec plain_spec(const FamilyDescriptor& d, bool flip_tied_head) {
  ModelSpec s;
  ModelConfig& m = s.model;
  apply_family_defaults(m, d.family);
  m.vocab = 40;
  m.d_model = 32;
  m.ffn = 48;
  m.max_seq_len = 16;
  m.n_layers = kLayers;
  m.n_heads = 4;
  m.n_kv_heads = d.hf.kv_heads_key ? 2 : 4;
  m.head_dim = d.hf.head_dim == HfHeadDim::quotient ? 0 : 12;  // 12 != 32 / 4
  m.rope_theta = 500.0;
  m.norm_eps = 1e-5;
  if (flip_tied_head) m.tied_head = !m.tied_head;
  s.recursion.block_layers = kLayers;
  s.recursion.loops = 1;
  return s;
}

std::string case_name(const FamilyDescriptor& d, bool flip) {
  return std::string(d.name) + (flip ? " (head flipped)" : "");
}

// Every registry name is held by exactly one tensor of `rules`; returns the rules used.
std::set<const TensorRule*> expect_covers(std::span<const TensorRule> rules,
                                          const ParamRegistry& reg) {
  std::map<std::string, int> held;
  std::set<const TensorRule*> used;
  for (const FileTensor& t : expand_tensors(rules, reg, kLayers, "test")) {
    used.insert(t.rule);
    for (const std::string& p : t.params) ++held[p];
  }
  for (const ParamInfo& p : reg.params()) EXPECT_EQ(held[p.name], 1) << p.name;
  EXPECT_EQ(held.size(), static_cast<size_t>(reg.size()));
  return used;
}

TEST(Families, AreInFamilyOrderAndFoundByEveryName) {
  const auto all = families();
  ASSERT_EQ(all.size(), 7u);  // llama, gemma, neox, qwen2, qwen3, gemma3, gemma2
  for (size_t i = 0; i < all.size(); ++i) {
    const FamilyDescriptor& d = all[i];
    SCOPED_TRACE(d.name);
    EXPECT_EQ(static_cast<size_t>(d.family), i);
    EXPECT_EQ(&family_descriptor(d.family), &d);
    EXPECT_EQ(to_string(d.family), d.name);
    EXPECT_EQ(&family_by_hf_architecture(d.hf.architecture, "test"), &d);
    EXPECT_EQ(&family_by_hf_model_type(d.hf.model_type, "test"), &d);
    if (d.gguf) {
      EXPECT_EQ(&family_by_gguf_architecture(d.gguf->architecture, "test"), &d);
    }
    // The structure apply_family_defaults sets is one check_family_structure accepts.
    ModelConfig m;
    apply_family_defaults(m, d.family);
    EXPECT_NO_THROW(check_family_structure(m));
    EXPECT_EQ(m.activation, d.structure.activation);
    EXPECT_EQ(m.norm, d.structure.norm);
  }
}

TEST(Families, TablesHoldEveryRegistryNameOnce) {
  for (const FamilyDescriptor& d : families()) {
    std::set<const TensorRule*> hf_used, gguf_used;
    for (bool flip : {false, true}) {
      SCOPED_TRACE(case_name(d, flip));
      const ModelSpec spec = plain_spec(d, flip);
      const ParamRegistry reg(spec);
      EXPECT_EQ(reg.has("head.weight"), !spec.model.tied_head);
      EXPECT_EQ(reg.has("block.0.attn.q.bias"), d.structure.linear_bias || d.structure.qkv_bias);
      EXPECT_EQ(reg.has("block.0.attn.o.bias"), d.structure.linear_bias);
      EXPECT_EQ(reg.has("block.0.attn.k_norm.weight"), d.structure.qk_norm);
      EXPECT_EQ(reg.has("block.0.mlp_post_norm.weight"), d.structure.sandwich_norm);
      for (const TensorRule* r : expect_covers(d.hf.tensors, reg)) hf_used.insert(r);
      // A GGUF architecture without a head tensor (gemma, gemma2: llama.cpp always ties the
      // head) holds only tied models; export refuses the untied one by model.tied_head.
      const bool gguf_holds =
          spec.model.tied_head ||
          !file_name_of(d.gguf ? d.gguf->tensors : std::span<const TensorRule>{}, "head.weight")
               .empty();
      if (d.gguf && gguf_holds)
        for (const TensorRule* r : expect_covers(d.gguf->tensors, reg)) gguf_used.insert(r);
    }
    // No dead rules: each one holds a parameter of the tied or the untied model.
    SCOPED_TRACE(d.name);
    EXPECT_EQ(hf_used.size(), d.hf.tensors.size());
    if (d.gguf) {
      EXPECT_EQ(gguf_used.size(), d.gguf->tensors.size());
    }
  }
}

// The coverage check has teeth: a table without one rule is refused, naming the parameter.
TEST(Families, ATableMissingARuleIsRefused) {
  for (const FamilyDescriptor& d : families()) {
    SCOPED_TRACE(d.name);
    const ParamRegistry reg(plain_spec(d, false));
    std::set<const TensorRule*> used;
    for (const FileTensor& t : expand_tensors(d.hf.tensors, reg, kLayers, "test"))
      used.insert(t.rule);
    for (size_t skip = 0; skip < d.hf.tensors.size(); ++skip) {
      if (!used.count(&d.hf.tensors[skip])) continue;  // the head of a tied model
      std::vector<TensorRule> rules(d.hf.tensors.begin(), d.hf.tensors.end());
      rules.erase(rules.begin() + static_cast<std::ptrdiff_t>(skip));
      const std::string msg = error_message([&] { expand_tensors(rules, reg, kLayers, "test"); });
      EXPECT_TRUE(contains(msg, "no tensor is known for parameter")) << msg;
    }
  }
}

std::unique_ptr<ParameterSet> random_params(const ModelSpec& spec, uint64_t seed) {
  auto p = std::make_unique<ParameterSet>(spec);
  p->init({.seed = seed, .std = 0.2});
  for (int i = 0; i < p->registry().size(); ++i) {
    const ParamKind kind = p->registry()[i].kind;
    if (kind == ParamKind::norm || kind == ParamKind::final_norm || kind == ParamKind::bias)
      fill_normal(p->value(i), p->numel(i), 0.5, 0.3, seed + 1, static_cast<uint64_t>(i));
  }
  return p;
}

struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& tag) {
    path = fs::temp_directory_path() / ("rrt_family_" + tag + "_" + std::to_string(::getpid()));
    fs::remove_all(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string str(const std::string& sub = "") const { return (path / sub).string(); }
};

TEST(Families, ImportOfExportIsTheIdentity) {
  TempDir dir("round_trip");
  for (const FamilyDescriptor& d : families()) {
    for (bool flip : {false, true}) {
      const std::string name = case_name(d, flip);
      SCOPED_TRACE(name);
      const ModelSpec spec = plain_spec(d, flip);
      const auto params = random_params(spec, 5);
      const std::string out = dir.str(std::string(d.name) + (flip ? "_flip" : ""));
      export_hf(spec, *params, out);
      const HfModel back = load_hf_model(out);
      const ModelConfig &a = spec.model, &b = back.spec.model;
      EXPECT_EQ(b.family, a.family);
      EXPECT_EQ(b.n_layers, a.n_layers);
      EXPECT_EQ(b.vocab, a.vocab);
      EXPECT_EQ(b.d_model, a.d_model);
      EXPECT_EQ(b.ffn, a.ffn);
      EXPECT_EQ(b.max_seq_len, a.max_seq_len);
      EXPECT_EQ(b.n_heads, a.n_heads);
      EXPECT_EQ(b.n_kv_heads, a.n_kv_heads);
      EXPECT_EQ(b.dh(), a.dh());
      EXPECT_EQ(b.rot_dim(), a.rot_dim());
      EXPECT_EQ(b.rope_theta, a.rope_theta);
      EXPECT_EQ(b.norm_eps, a.norm_eps);
      EXPECT_EQ(b.tied_head, a.tied_head);
      EXPECT_EQ(b.norm, a.norm);
      EXPECT_EQ(b.norm_unit_offset, a.norm_unit_offset);
      EXPECT_EQ(b.activation, a.activation);
      EXPECT_EQ(b.linear_bias, a.linear_bias);
      EXPECT_EQ(b.parallel_residual, a.parallel_residual);
      EXPECT_EQ(b.embedding_multiplier(), a.embedding_multiplier());
      const ParamRegistry& reg = params->registry();
      ASSERT_EQ(back.params->registry().size(), reg.size());
      for (int i = 0; i < reg.size(); ++i) {
        ASSERT_TRUE(back.params->registry().has(reg[i].name)) << reg[i].name;
        EXPECT_EQ(std::memcmp(back.params->value(reg[i].name), params->value(i),
                              static_cast<size_t>(params->numel(i)) * sizeof(float)),
                  0)
            << reg[i].name;
      }
      const auto cfg = nlohmann::json::parse(std::ifstream(fs::path(out) / "config.json"));
      EXPECT_EQ(cfg.at("model_type"), d.hf.model_type);
      EXPECT_EQ(cfg.at("architectures").at(0), d.hf.architecture);
    }
  }
}

// pack_rows and unpack_rows invert each other for every layout; the ones that move rows do.
TEST(Families, RowLayoutsInvert) {
  ModelConfig m;
  m.d_model = 8;
  m.n_heads = 2;
  m.n_kv_heads = 2;
  m.head_dim = 4;
  const int64_t cols = 3, rows = m.n_heads * m.dh();
  for (RowLayout layout : {RowLayout::as_is, RowLayout::qkv_per_head, RowLayout::rope_pairs_q,
                           RowLayout::rope_pairs_k}) {
    SCOPED_TRACE(static_cast<int>(layout));
    const size_t n = layout == RowLayout::qkv_per_head ? 3 : 1;
    const std::vector<std::vector<int64_t>> parts(n, {rows, cols});
    std::vector<std::vector<float>> in(n, std::vector<float>(rows * cols));
    for (size_t j = 0; j < n; ++j)
      for (size_t i = 0; i < in[j].size(); ++i) in[j][i] = static_cast<float>(100 * j + i);
    std::vector<const float*> src;
    for (const auto& v : in) src.push_back(v.data());
    const std::vector<float> file = pack_rows(layout, m, parts, src);
    ASSERT_EQ(file.size(), n * rows * cols);
    std::vector<std::vector<float>> back(n, std::vector<float>(rows * cols, -1.0f));
    std::vector<float*> dst;
    for (auto& v : back) dst.push_back(v.data());
    unpack_rows(layout, m, file.data(), parts, dst);
    EXPECT_EQ(back, in);
    if (layout == RowLayout::as_is) {
      EXPECT_EQ(file, in[0]);
    } else if (layout == RowLayout::qkv_per_head) {
      // Head 1's k (part 1) is the fifth block of Dh rows.
      EXPECT_EQ(file[(1 * 3 + 1) * m.dh() * cols], in[1][1 * m.dh() * cols]);
    } else {
      // rrt row j * Dh/2 + i of a head sits at row 2i + j (Dh 4): in head 1, rrt row 1
      // (j 0, i 1) at file row 2 and rrt row 2 (j 1, i 0) at file row 1.
      EXPECT_EQ(file[(4 + 2) * cols], in[0][(4 + 1) * cols]);
      EXPECT_EQ(file[(4 + 1) * cols], in[0][(4 + 2) * cols]);
    }
  }
}

// ---- Unknown families -------------------------------------------------------------------------

void expect_lists_families(const std::string& msg) {
  for (const FamilyDescriptor& d : families()) {
    EXPECT_TRUE(contains(msg, d.name)) << msg;
    EXPECT_TRUE(contains(msg, d.hf.architecture)) << msg;
    EXPECT_TRUE(contains(msg, std::string("model_type ") + d.hf.model_type)) << msg;
  }
}

// A config.json of family d (what export writes for its plain model) that a test may edit.
nlohmann::json config_of(const FamilyDescriptor& d, const TempDir& dir) {
  const ModelSpec spec = plain_spec(d, false);
  export_hf(spec, ParameterSet(spec), dir.str("source"), /*overwrite=*/true);
  return nlohmann::json::parse(std::ifstream(dir.str("source/config.json")));
}

ModelConfig read_config(const nlohmann::json& c, const TempDir& dir) {
  fs::create_directories(dir.str("edited"));
  std::ofstream(dir.str("edited/config.json")) << c.dump(2);
  return read_hf_config(dir.str("edited"));
}

TEST(Families, UnknownModelTypeIsRefusedListingTheFamilies) {
  std::string msg = error_message([] { family_by_hf_model_type("gptj", "test"); });
  EXPECT_TRUE(contains(msg, "model_type 'gptj' is not supported")) << msg;
  expect_lists_families(msg);
  msg = error_message([] { family_by_hf_architecture("GPTJForCausalLM", "test"); });
  EXPECT_TRUE(contains(msg, "GPTJForCausalLM")) << msg;
  expect_lists_families(msg);
  msg = error_message([] { family_by_gguf_architecture("gpt2", "test"); });
  EXPECT_TRUE(contains(msg, "'gpt2' is not supported; supported: llama")) << msg;

  TempDir dir("unknown");
  for (const FamilyDescriptor& d : families()) {
    SCOPED_TRACE(d.name);
    const nlohmann::json base = config_of(d, dir);
    // model_type alone finds the family, as transformers' Auto classes do.
    nlohmann::json c = base;
    c.erase("architectures");
    EXPECT_EQ(read_config(c, dir).family, d.family);
    c["model_type"] = "gptj";
    msg = error_message([&] { read_config(c, dir); });
    EXPECT_TRUE(contains(msg, "model_type 'gptj' is not supported")) << msg;
    expect_lists_families(msg);
    // architectures and model_type of two families: ambiguous.
    c = base;
    const FamilyDescriptor& other = families()[(static_cast<size_t>(d.family) + 1) % 3];
    c["model_type"] = other.hf.model_type;
    msg = error_message([&] { read_config(c, dir); });
    EXPECT_TRUE(contains(msg, "ambiguous")) << msg;
    EXPECT_TRUE(contains(msg, other.hf.model_type)) << msg;
    c.erase("model_type");
    c.erase("architectures");
    msg = error_message([&] { read_config(c, dir); });
    EXPECT_TRUE(contains(msg, "neither 'architectures' nor 'model_type'")) << msg;
    expect_lists_families(msg);
  }
}

}  // namespace
}  // namespace rrt
