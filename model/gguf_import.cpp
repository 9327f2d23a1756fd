#include "model/gguf_import.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <set>
#include <vector>

#include "core/error.h"
#include "core/gguf.h"
#include "core/gguf_dequant.h"
#include "model/family.h"
#include "model/registry.h"
#include "ops/rope.h"

namespace rrt {
namespace {

// A float32 metadata value as the decimal it was written from: 1e-5 stored as float32 reads back
// as 1e-5 (what the HF config said), not 9.99999975e-06.
double widen(float f) {
  char buf[64];
  const auto end = std::to_chars(buf, buf + sizeof buf, f).ptr;
  double d = f;
  std::from_chars(buf, end, d);
  return d;
}

// ---- RoPE scaling stored as per-dimension factors
// ------------------------------------------------ llama.cpp divides inverse frequency i by
// factors[i]; its converter writes transformers' llama3 scaling that way (rope_freqs.weight) and no
// parameters beside it. rrt's rotary tables take the parameters (ops/rope.h), so they are recovered
// and then checked to reproduce every factor. Factors stored as float32 from float32 frequencies
// agree to about 1e-7; 1e-5 leaves room and still tells a different scaling (its factors differ in
// the first digits).
constexpr double kRopeFactorTolerance = 1e-5;

bool reproduces(const ops::RopeScaling& scaling, const std::vector<float>& factors, int64_t rot_dim,
                double theta) {
  const std::vector<double> plain = ops::rope_inv_freq(rot_dim, theta, {});
  const std::vector<double> scaled = ops::rope_inv_freq(rot_dim, theta, scaling);
  for (size_t i = 0; i < factors.size(); ++i)
    if (std::abs(plain[i] / factors[i] / scaled[i] - 1) > kRopeFactorTolerance) return false;
  return true;
}

ops::RopeScaling scaling_from_factors(const std::vector<float>& factors, int64_t rot_dim,
                                      double theta, const std::string& where,
                                      const std::string& tensor) {
  RRT_CHECK(static_cast<int64_t>(factors.size()) == rot_dim / 2, where, "tensor '", tensor,
            "' holds ", factors.size(), " RoPE factors; the head size ", rot_dim, " needs ",
            rot_dim / 2);
  for (float f : factors)
    RRT_CHECK(std::isfinite(f) && f > 0, where, "tensor '", tensor, "' holds the RoPE factor ", f,
              "; factors must be positive");
  const auto [lo, hi] = std::minmax_element(factors.begin(), factors.end());
  if (*lo == 1.0f && *hi == 1.0f) return {};
  std::vector<ops::RopeScaling> candidates;
  if (*lo == *hi)
    candidates.push_back({.type = ops::RopeScalingType::linear, .factor = widen(*hi)});
  const double factor = widen(*hi);
  // Every Llama 3.x release: low 1, high 4, original 8192 positions.
  candidates.push_back({.type = ops::RopeScalingType::llama3,
                        .factor = factor,
                        .low_freq_factor = 1.0,
                        .high_freq_factor = 4.0,
                        .original_max_positions = 8192});
  // Otherwise from two interpolated dims: there s = original_max / wavelen - low over
  // (high - low) = A / wavelen - B, and only A and B matter, so low = 1 serves.
  const std::vector<double> plain = ops::rope_inv_freq(rot_dim, theta, {});
  std::vector<size_t> smooth;
  for (size_t i = 0; i < factors.size(); ++i)
    if (factors[i] > 1.0f + 1e-5f && factors[i] < *hi * (1 - 1e-5f)) smooth.push_back(i);
  // One interpolated dim fixes original_max for low 1, high 4: s = (original / wavelen - 1) / 3.
  // None: any original between 4 x the longest unscaled wavelength and the shortest scaled one
  // serves; the shortest scaled one is tried.
  auto llama3_low1_high4 = [&](double original) {
    return ops::RopeScaling{.type = ops::RopeScalingType::llama3,
                            .factor = factor,
                            .low_freq_factor = 1.0,
                            .high_freq_factor = 4.0,
                            .original_max_positions = std::llround(original)};
  };
  if (smooth.size() == 1) {
    const size_t i = smooth.front();
    const double s = (1.0 / factors[i] - 1.0 / factor) / (1.0 - 1.0 / factor);
    candidates.push_back(llama3_low1_high4((3 * s + 1) * 2 * M_PI / plain[i]));
  } else if (smooth.empty()) {
    double shortest_scaled = INFINITY;  // reproduces() checks the unscaled side
    for (size_t i = 0; i < factors.size(); ++i)
      if (factors[i] == *hi) shortest_scaled = std::min(shortest_scaled, 2 * M_PI / plain[i]);
    if (std::isfinite(shortest_scaled))
      candidates.push_back(llama3_low1_high4(std::floor(shortest_scaled)));
  }
  if (smooth.size() >= 2) {
    auto s_of = [&](size_t i) { return (1.0 / factors[i] - 1.0 / factor) / (1.0 - 1.0 / factor); };
    const double wi = plain[smooth.front()] / (2 * M_PI), wj = plain[smooth.back()] / (2 * M_PI);
    const double a = (s_of(smooth.front()) - s_of(smooth.back())) / (wi - wj);
    const double b = a * wi - s_of(smooth.front());
    if (a > 0 && b > 0)
      candidates.push_back({.type = ops::RopeScalingType::llama3,
                            .factor = factor,
                            .low_freq_factor = 1.0,
                            .high_freq_factor = 1.0 + 1.0 / b,
                            .original_max_positions = std::llround(a / b)});
  }
  for (const ops::RopeScaling& c : candidates)
    if (reproduces(c, factors, rot_dim, theta)) return c;
  RRT_FAIL(where, "tensor '", tensor, "' holds per-dimension RoPE factors from ", *lo, " to ", *hi,
           " that are neither linear nor Llama 3 (llama3) scaling; rrt imports only those");
}

// ---- Metadata -----------------------------------------------------------------------------------

int64_t positive(const GgufFile& f, const std::string& key) {
  const int64_t v = f.get_i64(key);
  RRT_CHECK(v > 0, "gguf " + f.path(), key, " is ", v, "; it must be positive");
  return v;
}

// rope.scaling.*: plain RoPE, or where the format has it (Gemma 3) linear scaling, which
// llama.cpp applies to the layers without a window.
void read_rope_scaling(const GgufFile& f, const GgufFormat& g, ModelConfig& m) {
  const std::string where = "gguf " + f.path();
  const std::string a = std::string(g.architecture) + ".";
  const std::string type =
      f.has(a + "rope.scaling.type") ? f.get_string(a + "rope.scaling.type") : "";
  const float factor =
      f.has(a + "rope.scaling.factor") ? f.get_f32(a + "rope.scaling.factor") : 0.0f;
  const bool plain_factor = factor == 0.0f || factor == 1.0f;
  if (g.linear_rope_scaling && (type == "linear" || (type.empty() && !plain_factor))) {
    if (plain_factor) return;
    RRT_CHECK(std::isfinite(factor) && factor > 0, where, a, "rope.scaling.factor is ", factor,
              "; a linear scaling factor must be positive");
    m.rope_scaling = {.type = ops::RopeScalingType::linear, .factor = widen(factor)};
    return;
  }
  RRT_CHECK(type.empty() || type == "none", where, a, "rope.scaling.type is '", type, "'; only ",
            g.linear_rope_scaling ? "plain RoPE or linear scaling" : "plain RoPE",
            " can be imported for ", g.architecture);
  RRT_CHECK(plain_factor, where, a, "rope.scaling.factor is ", factor, " with rope.scaling.type '",
            type, "'; only plain RoPE can be imported");
}

// What llama.cpp fixes for the Gemma architectures rather than reading it (GgufFormat): the
// windowed layers and their RoPE base, the attention scale, the soft-caps.
void read_gemma_metadata(const GgufFile& f, const GgufFormat& g, ModelConfig& m) {
  const std::string where = "gguf " + f.path();
  const std::string a = std::string(g.architecture) + ".";
  const std::string window_key = a + "attention.sliding_window";
  if (g.sliding_pattern > 0) {
    RRT_CHECK(f.has(window_key) || g.sliding_window_default > 0, where, "has no ", window_key,
              "; llama.cpp's ", g.architecture, " needs it");
    m.sliding_window = f.has(window_key) ? f.get_i64(window_key) : g.sliding_window_default;
    RRT_CHECK(m.sliding_window > 0, where, window_key, " is ", m.sliding_window, "; ",
              g.architecture, " files need windowed layers (rrt imports no other kind)");
    m.sliding_layers.assign(static_cast<size_t>(g.sliding_pattern), true);
    m.sliding_layers.back() = false;
    // llama.cpp ignores a pattern key for these architectures; one that says otherwise is
    // another model than the one llama.cpp runs.
    const std::string pattern_key = a + "attention.sliding_window_pattern";
    if (f.has(pattern_key))
      RRT_CHECK(f.value(pattern_key).count == 0 && f.get_i64(pattern_key) == g.sliding_pattern,
                where, pattern_key, " is not ", g.sliding_pattern, ", the pattern llama.cpp's ",
                g.architecture, " uses whatever the file says; refusing the ambiguous file");
    m.rope_local_theta = g.local_rope_theta;
  } else if (f.has(window_key)) {
    RRT_CHECK(f.get_i64(window_key) == 0, where, window_key, " is ", f.get_i64(window_key),
              "; llama.cpp's ", g.architecture, " has no sliding-window layers");
  }
  if (g.wide_query_scale_blocks > 0)
    m.query_pre_attn_scalar = static_cast<double>(
        m.n_layers == g.wide_query_scale_blocks ? m.d_model / m.n_heads : m.dh());
  if (g.attn_softcap_key) {
    const std::string key = a + g.attn_softcap_key;
    m.attn_logit_softcapping = f.has(key) ? widen(f.get_f32(key)) : g.attn_softcap_default;
    RRT_CHECK(std::isfinite(m.attn_logit_softcapping) && m.attn_logit_softcapping > 0, where, key,
              " is ", m.attn_logit_softcapping, "; llama.cpp's ", g.architecture,
              " divides the attention scores by it");
  }
  if (g.final_softcap_key) {
    const std::string key = a + g.final_softcap_key;
    const double cap = f.has(key) ? widen(f.get_f32(key)) : g.final_softcap_default;
    if (g.final_softcap_default > 0) {  // gemma2: always capped
      RRT_CHECK(std::isfinite(cap) && cap > 0, where, key, " is ", cap,
                f.has(key) ? "" : " (llama.cpp's value when the key is absent)",
                "; llama.cpp's ", g.architecture, " divides the final logits by it");
      m.final_logit_softcapping = cap;
    } else {  // gemma3: llama.cpp ignores the key when the model has sliding windows
      RRT_CHECK(cap == 0.0, where, key, " is ", cap, "; llama.cpp's ", g.architecture,
                " does not soft-cap the final logits of a model with sliding windows, so the "
                "file means two models; refusing the ambiguous file");
    }
  }
}

// The metadata of format `g`: "<architecture>.<key>" with llama.cpp's generic key names; the
// keys that differ between architectures are the family's (GgufFormat).
void read_metadata(const GgufFile& f, const GgufFormat& g, ModelConfig& m) {
  const std::string where = "gguf " + f.path();
  const std::string a = std::string(g.architecture) + ".";
  auto required = [&](const std::string& key) {
    RRT_CHECK(f.has(a + key), where, "has no ", a, key, "; the ", g.architecture,
              " metadata is incomplete");
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
  RRT_CHECK(f.has(a + g.norm_eps_key), where, "has no ", a, g.norm_eps_key, "; the ",
            g.architecture, " metadata is incomplete");
  m.norm_eps = widen(f.get_f32(a + g.norm_eps_key));
  RRT_CHECK(m.norm_eps > 0, where, a, g.norm_eps_key, " is ", m.norm_eps, "; it must be positive");
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
  if (g.whole_head_rotary && f.has(a + "rope.dimension_count"))
    RRT_CHECK(positive(f, a + "rope.dimension_count") == dh, where, a, "rope.dimension_count ",
              f.get_i64(a + "rope.dimension_count"), " differs from the head size ", dh,
              "; partial rotary is not supported for ", g.architecture);

  // What rrt's layer cannot compute: refuse rather than import approximately.
  read_rope_scaling(f, g, m);
  if (f.has(a + "expert_count"))
    RRT_CHECK(f.get_i64(a + "expert_count") == 0, where, a, "expert_count is ",
              f.get_i64(a + "expert_count"), "; mixtures of experts are not supported");

  // Vocabulary: <arch>.vocab_size, else the token list, else the embedding's rows.
  const std::string embed = file_name_of(g.tensors, "embed.weight");
  if (f.has(a + "vocab_size")) {
    m.vocab = positive(f, a + "vocab_size");
  } else if (f.has("tokenizer.ggml.tokens")) {
    m.vocab = static_cast<int64_t>(f.value("tokenizer.ggml.tokens").count);
  } else {
    RRT_CHECK(f.has_tensor(embed), where, "has no ", embed);
    m.vocab = f.tensor(embed).shape().front();
  }
  RRT_CHECK(m.vocab > 0, where, "the vocabulary is empty");
  // A file without the head tensor ties the head to the embedding.
  m.tied_head = !f.has_tensor(file_name_of(g.tensors, "head.weight"));

  read_gemma_metadata(f, g, m);

  if (g.rope_factors && f.has_tensor(g.rope_factors)) {
    RRT_CHECK(m.rope_scaling.type == ops::RopeScalingType::none, where,
              "gives RoPE scaling twice: in ", a, "rope.scaling.* and as ", g.rope_factors);
    const GgufTensorInfo& info = f.tensor(g.rope_factors);
    RRT_CHECK(info.shape().size() == 1, where, "tensor '", g.rope_factors, "' has shape ",
              shape_str(info.shape()), "; RoPE factors are a vector");
    std::vector<float> factors(static_cast<size_t>(info.shape().front()));
    f.read_f32_into(g.rope_factors, factors.data(), static_cast<int64_t>(factors.size()));
    m.rope_scaling = scaling_from_factors(factors, dh, m.rope_theta, where, g.rope_factors);
  }
}

}  // namespace

ModelConfig read_gguf_config(const GgufFile& file) {
  const std::string where = "gguf " + file.path();
  RRT_CHECK(file.has("general.architecture"), where,
            "has no general.architecture; is this a model file (supported: ",
            known_gguf_architectures(), ")?");
  const FamilyDescriptor& d =
      family_by_gguf_architecture(file.get_string("general.architecture"), where);
  ModelConfig m;
  apply_family_defaults(m, d.family);
  read_metadata(file, *d.gguf, m);
  return m;
}

HfModel load_gguf_model(const std::string& path) {
  const GgufFile file(path);
  const std::string where = "gguf " + path;
  HfModel out;
  out.spec.model = read_gguf_config(file);
  const ModelConfig& m = out.spec.model;
  const GgufFormat& g = *family_descriptor(m.family).gguf;
  // Before anything is sized from the metadata: a corrupt layer count must not build a registry
  // of billions of entries.
  const int64_t per_layer = tensors_per_layer(g.tensors);
  RRT_CHECK(m.n_layers <= static_cast<int64_t>(file.tensors().size()) / per_layer, where,
            g.architecture, ".block_count says ", m.n_layers, " layers but the file holds only ",
            file.tensors().size(), " tensors (", per_layer, " per layer)");
  out.spec.recursion.block_layers = m.n_layers;
  out.spec.recursion.loops = 1;
  validate(out.spec);

  // Every tensor present with its expected shape before the parameters are allocated.
  const ParamRegistry reg(out.spec);
  const std::vector<FileTensor> tensors = expand_tensors(g.tensors, reg, m.n_layers, "gguf");
  auto parts_of = [&](const FileTensor& t) {
    std::vector<std::vector<int64_t>> parts;
    for (const std::string& p : t.params) parts.push_back(reg[reg.index(p)].shape.vec());
    return parts;
  };
  std::set<std::string> expected = optional_tensors(g.optional, m.n_layers, m.tied_head);
  if (g.rope_factors) expected.insert(g.rope_factors);  // read with the metadata
  for (const FileTensor& t : tensors) {
    const std::string& name = t.file;
    RRT_CHECK(file.has_tensor(name), where, "has no tensor '", name, "' (rrt '", t.params[0],
              "'); the file is incomplete or its metadata does not match its tensors");
    const GgufTensorInfo& info = file.tensor(name);
    const std::vector<int64_t> shape = file_shape(t, parts_of(t));
    RRT_CHECK(info.shape() == shape, where, "tensor '", name, "' has shape ",
              shape_str(info.shape()), " (GGUF dims ", shape_str(info.dims),
              ") but the metadata implies ", shape_str(shape), " (rrt '", t.params[0], "')");
    RRT_CHECK(can_dequantize(info.type), where, "tensor '", name, "' has type ", info.type_name(),
              ", which rrt cannot dequantise (supported: ", dequantizable_types(), ")");
    expected.insert(name);
  }
  for (const GgufTensorInfo& t : file.tensors()) {
    if (expected.count(t.name)) continue;
    std::string why = "; the file is another architecture or has extra layers (check " +
                      std::string(g.architecture) + ".block_count)";
    for (const RefusedTensor& r : g.refused)
      if (t.name == r.file) why = std::string(" (") + r.why + ")";
    RRT_FAIL(where, "unexpected tensor '", t.name, "' that a ", g.architecture,
             " with this metadata does not have", why);
  }

  out.params = std::make_unique<ParameterSet>(out.spec, ParameterSet::Grads::without);
  std::vector<float> staging;
  for (const FileTensor& t : tensors) {
    const auto parts = parts_of(t);
    std::vector<float*> dst;
    for (const std::string& p : t.params) dst.push_back(out.params->value(p));
    const std::vector<int64_t> shape = file_shape(t, parts);
    int64_t n = 1;
    for (int64_t s : shape) n *= s;
    if (t.rule->rows == RowLayout::as_is) {
      file.read_f32_into(t.file, dst[0], n);
      if (g.norm_plus_one && is_norm_weight(*t.rule))
        for (int64_t i = 0; i < n; ++i) dst[0][i] -= 1.0f;
      continue;
    }
    staging.resize(static_cast<size_t>(n));
    file.read_f32_into(t.file, staging.data(), n);
    unpack_rows(t.rule->rows, m, staging.data(), parts, dst);
  }
  return out;
}

}  // namespace rrt
