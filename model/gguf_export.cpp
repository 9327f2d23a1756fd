#include "model/gguf_export.h"

#include <deque>
#include <vector>

#include "core/error.h"
#include "core/gguf.h"
#include "core/gguf_writer.h"
#include "model/family.h"
#include "model/unrolled_tensors.h"
#include "ops/rope.h"

namespace rrt {
namespace {

// llama.cpp's general.file_type: all F32, or mostly BF16 (its LLAMA_FTYPE_MOSTLY_BF16).
constexpr uint32_t kFileTypeF32 = 0, kFileTypeBf16 = 32;

// What rrt's GGUF import (and llama.cpp) take from the metadata.
void write_metadata(GgufWriter& w, const ModelSpec& spec, const GgufFormat& g,
                    const GgufExportOptions& o) {
  const ModelConfig& m = spec.model;
  const std::string a = std::string(g.architecture) + ".";
  w.add_string("general.architecture", g.architecture);
  w.add_string("general.name", o.name);
  w.add_u32("general.file_type", o.dtype == DType::bf16 ? kFileTypeBf16 : kFileTypeF32);
  w.add_u32(a + "block_count", static_cast<uint32_t>(spec.positions()));
  w.add_u32(a + "context_length", static_cast<uint32_t>(m.max_seq_len));
  w.add_u32(a + "embedding_length", static_cast<uint32_t>(m.d_model));
  w.add_u32(a + "feed_forward_length", static_cast<uint32_t>(m.ffn));
  w.add_u32(a + "attention.head_count", static_cast<uint32_t>(m.n_heads));
  w.add_u32(a + "attention.head_count_kv", static_cast<uint32_t>(m.n_kv_heads));
  w.add_f32(a + "rope.freq_base", static_cast<float>(m.rope_theta));
  w.add_f32(a + g.norm_eps_key, static_cast<float>(m.norm_eps));
  w.add_u32(a + "rope.dimension_count", static_cast<uint32_t>(m.rot_dim()));
  w.add_u32(a + "attention.key_length", static_cast<uint32_t>(m.dh()));
  w.add_u32(a + "attention.value_length", static_cast<uint32_t>(m.dh()));
  w.add_u32(a + "vocab_size", static_cast<uint32_t>(m.vocab));
  if (m.rope_scaling.type == ops::RopeScalingType::linear && g.linear_rope_scaling) {
    w.add_string(a + "rope.scaling.type", "linear");
    w.add_f32(a + "rope.scaling.factor", static_cast<float>(m.rope_scaling.factor));
  }
  if (g.sliding_pattern > 0)
    w.add_u32(a + "attention.sliding_window", static_cast<uint32_t>(m.sliding_window));
  if (g.attn_softcap_key)
    w.add_f32(a + g.attn_softcap_key, static_cast<float>(m.attn_logit_softcapping));
  if (g.final_softcap_default > 0)
    w.add_f32(a + g.final_softcap_key, static_cast<float>(m.final_logit_softcapping));
  if (o.tokenizer_gguf.empty()) return;
  const GgufFile tokenizer(o.tokenizer_gguf);
  int64_t copied = 0;
  for (const auto& [key, value] : tokenizer.metadata())
    if (key.rfind("tokenizer.", 0) == 0) {
      w.add_value(key, value);
      ++copied;
    }
  RRT_CHECK(copied > 0, "gguf " + o.tokenizer_gguf,
            "has no tokenizer.* keys to copy into the export");
  if (tokenizer.has("tokenizer.ggml.tokens"))
    RRT_CHECK(static_cast<int64_t>(tokenizer.value("tokenizer.ggml.tokens").count) == m.vocab,
              "gguf " + o.tokenizer_gguf, "has ", tokenizer.value("tokenizer.ggml.tokens").count,
              " tokens, but the model ", m.vocab);
}

// llama.cpp divides inverse frequency i by factor i: the scaled frequencies as such divisors.
std::vector<float> rope_factors(const ModelConfig& m, const std::string& where) {
  const ops::RopeScaling& rs = m.rope_scaling;
  RRT_CHECK(rs.type == ops::RopeScalingType::llama3 || rs.type == ops::RopeScalingType::linear,
            where, "model.rope_scaling ", to_string(rs.type),
            " has no GGUF spelling rrt writes (llama3 and linear have)");
  const std::vector<double> plain = ops::rope_inv_freq(m.rot_dim(), m.rope_theta, {});
  const std::vector<double> scaled = ops::rope_inv_freq(m.rot_dim(), m.rope_theta, rs);
  std::vector<float> factors;
  for (size_t i = 0; i < plain.size(); ++i)
    factors.push_back(static_cast<float>(plain[i] / scaled[i]));
  return factors;
}

// What llama.cpp fixes for the architecture instead of reading it from the file (GgufFormat):
// a model that differs would be run as another model, so it is refused by the field.
void check_llama_cpp_fixes(const ModelSpec& spec, const GgufFormat& g, const std::string& where) {
  const ModelConfig& m = spec.model;
  const std::string arch = std::string("llama.cpp's ") + g.architecture;
  const int64_t positions = spec.positions();
  // The final logits' soft-cap: an architecture that applies one whatever the file says needs a
  // model with one (its value is written); the others have no key for it.
  if (g.final_softcap_default > 0)
    RRT_CHECK(m.final_logit_softcapping > 0, where, arch, " always soft-caps the final logits (",
              g.final_softcap_key, ", ", g.final_softcap_default,
              " when the key is absent), but the model has model.final_logit_softcapping 0; "
              "export it as an HF directory instead");
  else
    RRT_CHECK(m.final_logit_softcapping == 0, where, arch,
              " has no final logit soft-capping, but the model has "
              "model.final_logit_softcapping ",
              m.final_logit_softcapping, "; export it as an HF directory instead");
  RRT_CHECK(m.tied_head || !file_name_of(g.tensors, "head.weight").empty(), where, arch,
            " always uses the embedding as the LM head, but the model's head is untied "
            "(model.tied_head false); export it as an HF directory instead");
  // The attention scale: head_dim^-0.5, or (d_model / n_heads)^-0.5 at the 27B block counts.
  const int64_t scalar = g.wide_query_scale_blocks == positions ? m.d_model / m.n_heads : m.dh();
  const double own = m.query_pre_attn_scalar > 0 ? m.query_pre_attn_scalar : m.dh();
  RRT_CHECK(own == static_cast<double>(scalar), where, arch, " with ", positions,
            " blocks scales attention scores by ", scalar,
            "^-0.5, but the model has model.query_pre_attn_scalar ", own,
            "; GGUF has no key for it");
  if (g.sliding_pattern == 0) {
    RRT_CHECK(m.sliding_window == 0, where, arch,
              " has no sliding-window layers, but the model has model.sliding_window ",
              m.sliding_window, "; export it as an HF directory instead");
  } else {
    RRT_CHECK(m.sliding_window > 0, where, arch, " gives every ", g.sliding_pattern,
              "-layer group sliding-window layers, but the model has model.sliding_window 0");
    for (int64_t l = 0; l < positions; ++l) {
      const bool windowed = l % g.sliding_pattern < g.sliding_pattern - 1;
      RRT_CHECK((m.window_at(l) > 0) == windowed, where, arch, " gives unrolled layer ", l, " ",
                windowed ? "a" : "no", " sliding window (layer l has one iff l % ",
                g.sliding_pattern, " < ", g.sliding_pattern - 1,
                "), but the model's model.sliding_layers say otherwise; GGUF has no key for it");
    }
  }
  // The windowed layers' RoPE: llama.cpp's fixed base (or the global one) and no scaling.
  const double local = g.local_rope_theta > 0 ? g.local_rope_theta : m.rope_theta;
  for (int64_t l = 0; l < positions; ++l) {
    if (m.window_at(l) == 0) continue;
    const bool own_base = m.local_rope_at(l);
    const double base = own_base ? m.rope_local_theta : m.rope_theta;
    const bool scaled = !own_base && m.rope_scaling.type != ops::RopeScalingType::none;
    RRT_CHECK(base == local && (!scaled || g.local_rope_theta == 0), where, arch,
              " rotates the sliding-window layers with RoPE base ", local,
              g.local_rope_theta > 0 ? " unscaled" : " as the others",
              ", but the model's unrolled layer ", l, " uses ", base,
              scaled ? " with model.rope_scaling" : "", " (model.rope_local_theta ",
              m.rope_local_theta, "); GGUF has no key for it");
    break;  // every windowed layer has the same RoPE
  }
  if (g.attn_softcap_key)
    RRT_CHECK(m.attn_logit_softcapping > 0, where, arch, " always soft-caps attention scores (",
              g.attn_softcap_default,
              " when the key is absent), but the model has model.attn_logit_softcapping 0");
  else
    RRT_CHECK(m.attn_logit_softcapping == 0, where, arch,
              " has no attention soft-capping, but the model has model.attn_logit_softcapping ",
              m.attn_logit_softcapping, "; export it as an HF directory instead");
}

}  // namespace

void export_gguf(const ModelSpec& spec, const ParameterSet& params, const std::string& path,
                 const GgufExportOptions& o) {
  const std::string where = "gguf export " + path;
  validate(spec);
  const ModelConfig& m = spec.model;
  check_family_structure(m);
  const FamilyDescriptor& d = family_descriptor(m.family);
  RRT_CHECK(d.gguf != nullptr, where, "model.family ", d.name,
            " has no GGUF architecture in rrt (GGUF export writes ", known_gguf_architectures(),
            "); export it as an HF directory instead");
  const GgufFormat& g = *d.gguf;
  RRT_CHECK(o.dtype == DType::f32 || o.dtype == DType::bf16, where,
            "weights are written as fp32 or bf16, not ", dtype_name(o.dtype));
  if (g.whole_head_rotary)
    RRT_CHECK(m.rot_dim() == m.dh(), where, g.architecture,
              " rotates whole heads, but the model "
              "rotates ",
              m.rot_dim(), " of ", m.dh(), " head dims");
  check_llama_cpp_fixes(spec, g, where);
  std::vector<float> factors;
  const bool linear_key =
      g.linear_rope_scaling && m.rope_scaling.type == ops::RopeScalingType::linear;
  if (m.rope_scaling.type != ops::RopeScalingType::none && !linear_key) {
    RRT_CHECK(g.rope_factors != nullptr, where, "model.rope_scaling ",
              to_string(m.rope_scaling.type), " cannot be written for ", g.architecture,
              g.linear_rope_scaling ? " (only linear scaling has a key there)"
                                    : ": its GGUF files carry no RoPE factors");
    factors = rope_factors(m, where);
  }

  GgufWriter w;
  write_metadata(w, spec, g, o);
  const UnrolledTensors unrolled(spec, params, g.tensors, std::string("gguf ") + g.architecture);
  if (!factors.empty())
    w.add_tensor(g.rope_factors, {m.rot_dim() / 2}, GgmlWriteType::f32, factors.data());
  std::deque<std::vector<uint16_t>> rounded;  // the bf16 copies, alive until written
  std::deque<std::vector<float>> shifted;     // norm weights as 1 + w, alive until written
  for (const UnrolledTensor& t : unrolled.tensors()) {
    // Norms and biases stay fp32, as llama.cpp's converter keeps 1-D tensors.
    if (g.norm_plus_one && is_norm_weight(*t.rule)) {
      shifted.emplace_back(t.data, t.data + t.numel());
      for (float& x : shifted.back()) x += 1.0f;
      w.add_tensor(t.name, t.shape, GgmlWriteType::f32, shifted.back().data());
    } else if (o.dtype == DType::f32 || t.shape.size() == 1) {
      w.add_tensor(t.name, t.shape, GgmlWriteType::f32, t.data);
    } else {
      rounded.push_back(to_bf16_bits(t.data, t.numel()));
      w.add_tensor(t.name, t.shape, GgmlWriteType::bf16, rounded.back().data());
    }
  }
  w.write(path);
}

}  // namespace rrt
