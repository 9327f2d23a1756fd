#include "model/gguf_import.h"

#include <algorithm>
#include <charconv>
#include <map>
#include <set>
#include <vector>

#include "core/error.h"
#include "core/gguf.h"
#include "core/gguf_dequant.h"
#include "model/layer_pattern.h"
#include "model/registry.h"

namespace rrt {
namespace {

// ---- Tensor table -------------------------------------------------------------------------------
// rrt registry name <- GGUF tensor name; "{l}" stands for the layer index. Loading walks the
// registry and looks each parameter up here, so no tensor is handled by hand.
enum class RowOrder {
  as_is,
  rope_q,  // llama.cpp's per-head pair interleave over the query heads
  rope_k,  // the same over the kv heads
};
struct GgufRule {
  const char* rrt;
  const char* gguf;
  RowOrder rows = RowOrder::as_is;
};

constexpr GgufRule kLlamaRules[] = {
    {"embed.weight", "token_embd.weight"},
    {"block.{l}.attn_norm.weight", "blk.{l}.attn_norm.weight"},
    {"block.{l}.attn.q.weight", "blk.{l}.attn_q.weight", RowOrder::rope_q},
    {"block.{l}.attn.k.weight", "blk.{l}.attn_k.weight", RowOrder::rope_k},
    {"block.{l}.attn.v.weight", "blk.{l}.attn_v.weight"},
    {"block.{l}.attn.o.weight", "blk.{l}.attn_output.weight"},
    {"block.{l}.mlp_norm.weight", "blk.{l}.ffn_norm.weight"},
    {"block.{l}.mlp.gate.weight", "blk.{l}.ffn_gate.weight"},
    {"block.{l}.mlp.up.weight", "blk.{l}.ffn_up.weight"},
    {"block.{l}.mlp.down.weight", "blk.{l}.ffn_down.weight"},
    {"final_norm.weight", "output_norm.weight"},
    {"head.weight", "output.weight"},  // in the registry only when the head is untied
};
// Tensors a llama GGUF may carry that rrt does not need: RoPE inverse frequencies that some
// converters stored (they follow from rope.freq_base).
constexpr const char* kLlamaOptional[] = {"blk.{l}.attn_rot_embd"};
constexpr int64_t kLlamaTensorsPerLayer = 9;

constexpr const char* kSupported = "llama";



// A float32 metadata value as the decimal it was written from: 1e-5 stored as float32 reads back
// as 1e-5 (what the HF config said), not 9.99999975e-06.
double widen(float f) {
  char buf[64];
  const auto end = std::to_chars(buf, buf + sizeof buf, f).ptr;
  double d = f;
  std::from_chars(buf, end, d);
  return d;
}

// ---- Metadata -----------------------------------------------------------------------------------

int64_t positive(const GgufFile& f, const std::string& key) {
  const int64_t v = f.get_i64(key);
  RRT_CHECK(v > 0, "gguf " + f.path(), key, " is ", v, "; it must be positive");
  return v;
}

void read_llama(const GgufFile& f, ModelConfig& m) {
  const std::string where = "gguf " + f.path();
  const std::string a = "llama.";
  auto required = [&](const std::string& key) {
    RRT_CHECK(f.has(a + key), where, "has no ", a, key, "; the llama metadata is incomplete");
    return positive(f, a + key);
  };
  m.n_layers = required("block_count");
  m.d_model = required("embedding_length");
  m.ffn = required("feed_forward_length");
  m.n_heads = required("attention.head_count");
  m.max_seq_len = required("context_length");
  m.n_kv_heads =
      f.has(a + "attention.head_count_kv") ? positive(f, a + "attention.head_count_kv") : m.n_heads;
  RRT_CHECK(m.n_heads % m.n_kv_heads == 0, where, a, "attention.head_count_kv ", m.n_kv_heads,
            " does not divide attention.head_count ", m.n_heads);
  RRT_CHECK(f.has(a + "attention.layer_norm_rms_epsilon"), where, "has no ", a,
            "attention.layer_norm_rms_epsilon; the llama metadata is incomplete");
  m.norm_eps = widen(f.get_f32(a + "attention.layer_norm_rms_epsilon"));
  RRT_CHECK(m.norm_eps > 0, where, a, "attention.layer_norm_rms_epsilon is ", m.norm_eps,
            "; it must be positive");
  m.rope_theta = f.has(a + "rope.freq_base") ? widen(f.get_f32(a + "rope.freq_base")) : 10000.0;
  RRT_CHECK(m.rope_theta > 0, where, a, "rope.freq_base is ", m.rope_theta, "; must be positive");

  // Head size: key_length where given (it may differ from embedding_length / head_count).
  if (f.has(a + "attention.key_length")) {
    m.head_dim = positive(f, a + "attention.key_length");
  } else {
    RRT_CHECK(m.d_model % m.n_heads == 0, where, a, "embedding_length ", m.d_model,
              " is not divisible by attention.head_count ", m.n_heads, " and no ", a,
              "attention.key_length gives the head size");
    m.head_dim = 0;
  }
  const int64_t dh = m.dh();
  if (f.has(a + "attention.value_length"))
    RRT_CHECK(positive(f, a + "attention.value_length") == dh, where, a,
              "attention.value_length differs from the key length ", dh,
              "; rrt's attention uses one head size for keys and values");
  RRT_CHECK(dh % 2 == 0, where, "head size ", dh, " is odd; RoPE rotates pairs");
  if (f.has(a + "rope.dimension_count"))
    RRT_CHECK(positive(f, a + "rope.dimension_count") == dh, where, a, "rope.dimension_count ",
              f.get_i64(a + "rope.dimension_count"), " differs from the head size ", dh,
              "; partial rotary is not supported for llama");

  // What rrt's layer cannot compute: refuse rather than import approximately.
  if (f.has(a + "rope.scaling.type")) {
    const std::string type = f.get_string(a + "rope.scaling.type");
    RRT_CHECK(type == "none", where, a, "rope.scaling.type is '", type,
              "'; only plain RoPE can be imported");
  }
  if (f.has(a + "rope.scaling.factor")) {
    const float factor = f.get_f32(a + "rope.scaling.factor");
    RRT_CHECK(factor == 0.0f || factor == 1.0f, where, a, "rope.scaling.factor is ", factor,
              "; only plain RoPE can be imported");
  }
  if (f.has(a + "expert_count"))
    RRT_CHECK(f.get_i64(a + "expert_count") == 0, where, a, "expert_count is ",
              f.get_i64(a + "expert_count"), "; mixtures of experts are not supported");

  // Vocabulary: llama.vocab_size, else the token list, else the embedding's rows.
  if (f.has(a + "vocab_size")) {
    m.vocab = positive(f, a + "vocab_size");
  } else if (f.has("tokenizer.ggml.tokens")) {
    m.vocab = static_cast<int64_t>(f.value("tokenizer.ggml.tokens").count);
  } else {
    RRT_CHECK(f.has_tensor("token_embd.weight"), where, "has no token_embd.weight");
    m.vocab = f.tensor("token_embd.weight").shape().front();
  }
  RRT_CHECK(m.vocab > 0, where, "the vocabulary is empty");
  m.tied_head = !f.has_tensor("output.weight");
}

// ---- Weights ------------------------------------------------------------------------------------

// GGUF row h * dh + 2i + j holds HF row h * dh + j * dh/2 + i (j: rotate_half's half, i < dh/2).
void undo_rope_permutation(const std::vector<float>& gguf, int64_t heads, int64_t dh, int64_t cols,
                           float* hf) {
  const int64_t half = dh / 2;
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t i = 0; i < half; ++i)
      for (int64_t j = 0; j < 2; ++j) {
        const float* src = gguf.data() + (h * dh + 2 * i + j) * cols;
        std::copy_n(src, cols, hf + (h * dh + j * half + i) * cols);
      }
}

// The GGUF name (and row order) of every registry parameter.
std::map<std::string, const GgufRule*> rules_for(const ParamRegistry& reg, int64_t layers,
                                                 std::map<std::string, std::string>& gguf_of) {
  std::map<std::string, const GgufRule*> rule_of;
  for (const GgufRule& rule : kLlamaRules)
    for (int64_t l = 0; l < layer_count(rule.rrt, layers); ++l) {
      const std::string name = expand_layer(rule.rrt, l);
      if (!reg.has(name)) continue;
      rule_of[name] = &rule;
      gguf_of[name] = expand_layer(rule.gguf, l);
    }
  return rule_of;
}

}  // namespace

ModelConfig read_gguf_config(const GgufFile& file) {
  const std::string where = "gguf " + file.path();
  RRT_CHECK(file.has("general.architecture"), where,
            "has no general.architecture; is this a "
            "model file (supported: ",
            kSupported, ")?");
  const std::string arch = file.get_string("general.architecture");
  RRT_CHECK(arch == "llama", where, "architecture '", arch,
            "' is not supported; supported: ", kSupported);
  ModelConfig m;
  apply_family_defaults(m, Family::llama);
  read_llama(file, m);
  return m;
}

HfModel load_gguf_model(const std::string& path) {
  const GgufFile file(path);
  const std::string where = "gguf " + path;
  HfModel out;
  out.spec.model = read_gguf_config(file);
  const ModelConfig& m = out.spec.model;
  // Before anything is sized from the metadata: a corrupt layer count must not build a registry
  // of billions of entries.
  RRT_CHECK(m.n_layers <= static_cast<int64_t>(file.tensors().size()) / kLlamaTensorsPerLayer,
            where, "llama.block_count says ", m.n_layers, " layers but the file holds only ",
            file.tensors().size(), " tensors (", kLlamaTensorsPerLayer, " per layer)");
  out.spec.recursion.block_layers = m.n_layers;
  out.spec.recursion.loops = 1;
  validate(out.spec);

  // Every tensor present with its expected shape before the parameters are allocated.
  const ParamRegistry reg(out.spec);
  std::map<std::string, std::string> gguf_of;
  const auto rule_of = rules_for(reg, m.n_layers, gguf_of);
  for (const ParamInfo& p : reg.params()) {
    auto it = gguf_of.find(p.name);
    RRT_CHECK(it != gguf_of.end(), "load_gguf_model", "no GGUF name is known for parameter '",
              p.name, "' (an internal error: extend the tensor table)");
    const std::string& name = it->second;
    RRT_CHECK(file.has_tensor(name), where, "has no tensor '", name, "' (rrt '", p.name,
              "'); the file is incomplete or its metadata does not match its tensors");
    const GgufTensorInfo& t = file.tensor(name);
    RRT_CHECK(t.shape() == p.shape.vec(), where, "tensor '", name, "' has shape ",
              shape_str(t.shape()), " (GGUF dims ", shape_str(t.dims),
              ") but the metadata implies ", shape_str(p.shape.vec()), " (rrt '", p.name, "')");
    RRT_CHECK(can_dequantize(t.type), where, "tensor '", name, "' has type ", t.type_name(),
              ", which rrt cannot dequantise (supported: ", dequantizable_types(), ")");
  }
  std::set<std::string> expected;
  for (const auto& [rrt_name, gguf_name] : gguf_of) expected.insert(gguf_name);
  for (const char* pattern : kLlamaOptional)
    for (int64_t l = 0; l < layer_count(pattern, m.n_layers); ++l) expected.insert(expand_layer(pattern, l));
  for (const GgufTensorInfo& t : file.tensors())
    RRT_CHECK(
        expected.count(t.name), where, "unexpected tensor '", t.name, "' that a llama with ",
        "this metadata does not have",
        t.name == "rope_freqs.weight"
            ? " (Llama 3 rope scaling, which rrt does not support)"
            : "; the file is another architecture or has extra layers (check llama.block_count)");

  out.params = std::make_unique<ParameterSet>(out.spec, ParameterSet::Grads::without);
  std::vector<float> staging;
  for (int i = 0; i < reg.size(); ++i) {
    const ParamInfo& p = reg[i];
    const GgufRule& rule = *rule_of.at(p.name);
    const std::string& name = gguf_of.at(p.name);
    if (rule.rows == RowOrder::as_is) {
      file.read_f32_into(name, out.params->value(i), p.shape.numel());
      continue;
    }
    staging.resize(static_cast<size_t>(p.shape.numel()));
    file.read_f32_into(name, staging.data(), p.shape.numel());
    const int64_t heads = rule.rows == RowOrder::rope_q ? m.n_heads : m.n_kv_heads;
    undo_rope_permutation(staging, heads, m.dh(), p.shape[1], out.params->value(i));
  }
  return out;
}

}  // namespace rrt
