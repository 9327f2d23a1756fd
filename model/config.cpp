#include "model/config.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "model/family.h"

namespace rrt {

int64_t ModelConfig::rot_dim() const {
  // Rounded down to an even count of dims: rotary pairs (i, i + rot/2).
  int64_t r = static_cast<int64_t>(static_cast<double>(dh()) * rotary_fraction);
  return r - r % 2;
}

double ModelConfig::embedding_multiplier() const {
  return embed_scale > 0 ? embed_scale : std::sqrt(static_cast<double>(d_model));
}

double ModelConfig::query_scale() const {
  if (query_pre_attn_scalar <= 0) return 1.0;
  return std::sqrt(static_cast<double>(dh()) / query_pre_attn_scalar);
}

int64_t ModelSpec::lora_rank(Proj p) const {
  if (!model.has_proj(p)) return 0;
  auto [out, in] = proj_shape(model, p);
  return std::min(lora.requested_rank(p), std::min(out, in));
}

int64_t ModelSpec::max_lora_rank() const {
  int64_t r = 0;
  for (int j = 0; j < kNumProj; ++j) r = std::max(r, lora_rank(static_cast<Proj>(j)));
  return r;
}

double ModelSpec::lora_scale(Proj p) const {
  const int64_t r = lora_rank(p);
  return r == 0 ? 0.0 : (lora.alpha > 0 ? lora.alpha / static_cast<double>(r) : 1.0);
}

void apply_family_defaults(ModelConfig& m, Family f) {
  const FamilyStructure& s = family_descriptor(f).structure;
  m.family = f;
  m.norm = s.norm;
  m.norm_unit_offset = s.norm_unit_offset;
  m.linear_bias = s.linear_bias;
  m.qkv_bias = s.qkv_bias;
  m.qk_norm = s.qk_norm;
  m.sandwich_norm = s.sandwich_norm;
  m.parallel_residual = s.parallel_residual;
  m.rotary_fraction = s.rotary_fraction;
  m.embed_scale = s.embed_scale;
  m.tied_head = s.tied_head;
  m.activation = s.activation;
}

// The family's structure fields must be its descriptor's; the ones its HF config may vary
// (activation among those hidden_act takes, the residual where a key chooses it) may differ.
// The rotary fraction and head shapes are export's to check (check_hf_expressible).
void check_family_structure(const ModelConfig& m) {
  const FamilyDescriptor& d = family_descriptor(m.family);
  const FamilyStructure& s = d.structure;
  const std::string fam = "model.family " + to_string(m.family);
  const bool layer = s.norm == Norm::layer;
  RRT_CHECK(m.norm == s.norm, fam, "uses ", layer ? "LayerNorm" : "RMSNorm",
            "; model.norm does not match");
  RRT_CHECK(m.linear_bias == s.linear_bias, fam, s.linear_bias ? "has" : "has no",
            " projection biases; model.linear_bias does not match");
  RRT_CHECK(m.qkv_bias == s.qkv_bias, fam, s.qkv_bias ? "has" : "has no",
            " biases on q, k and v alone; model.qkv_bias does not match");
  RRT_CHECK(m.qk_norm == s.qk_norm, fam, s.qk_norm ? "has" : "has no",
            " RMSNorm on q and k heads; model.qk_norm does not match");
  RRT_CHECK(m.sandwich_norm == s.sandwich_norm, fam, s.sandwich_norm ? "has" : "has no",
            " norms on the attention and MLP outputs; model.sandwich_norm does not match");
  RRT_CHECK(m.norm_unit_offset == s.norm_unit_offset, fam,
            s.norm_unit_offset ? "scales" : "does not scale",
            " its RMSNorm by (1 + w); model.norm_unit_offset does not match");
  RRT_CHECK(d.hf.parallel_residual_key || m.parallel_residual == s.parallel_residual, fam,
            s.parallel_residual ? "has a parallel residual" : "has no parallel residual");
  const auto& acts = d.hf.activation.accepted;
  RRT_CHECK(std::any_of(acts.begin(), acts.end(),
                        [&](const HfActivation& a) { return a.activation == m.activation; }),
            fam, "uses ", d.mlp, ", not activation ", to_string(m.activation));
  if (s.embed_scale == 0.0)
    RRT_CHECK(m.embed_scale == 0.0, fam, "scales its embeddings by sqrt(d_model) (embed_scale 0)");
  else if (s.embed_scale == 1.0)
    RRT_CHECK(m.embed_scale == 1.0, fam, "does not scale its embeddings (embed_scale 1)");
  else
    RRT_CHECK(m.embed_scale == s.embed_scale, fam, "scales its embeddings by ", s.embed_scale,
              " (embed_scale ", s.embed_scale, ")");
}

Position position_of(const RecursionConfig& r, int64_t l) {
  if (r.sharing == Sharing::cycle) return {l / r.block_layers, l % r.block_layers};
  return {l % r.loops, l / r.loops};
}

std::array<int64_t, 2> proj_shape(const ModelConfig& m, Proj p) {
  switch (p) {
    case Proj::q:
      return {m.q_dim(), m.d_model};
    case Proj::k:
    case Proj::v:
      return {m.kv_dim(), m.d_model};
    case Proj::o:
      return {m.d_model, m.q_dim()};
    case Proj::gate:
    case Proj::up:
      return {m.ffn, m.d_model};
    case Proj::down:
      return {m.d_model, m.ffn};
  }
  return {0, 0};
}

void validate(const ModelSpec& spec) {
  const ModelConfig& m = spec.model;
  const RecursionConfig& r = spec.recursion;
  const LoraConfig& lora = spec.lora;
  RRT_CHECK(m.vocab > 0 && m.d_model > 0 && m.ffn > 0, "model",
            "vocab, d_model and ffn must be positive");
  RRT_CHECK(m.n_heads > 0 && m.n_kv_heads > 0, "model", "n_heads and n_kv_heads must be positive");
  RRT_CHECK(m.n_heads % m.n_kv_heads == 0, "model.n_kv_heads", "kv heads (", m.n_kv_heads,
            ") must divide heads (", m.n_heads, ")");
  RRT_CHECK(m.head_dim > 0 || m.d_model % m.n_heads == 0, "model.head_dim", "d_model ", m.d_model,
            " is not divisible by n_heads ", m.n_heads, "; set head_dim explicitly");
  RRT_CHECK(m.rot_dim() > 0 && m.rotary_fraction <= 1.0, "model.rotary_fraction",
            "rotary dims must be in (0, head_dim], got fraction ", m.rotary_fraction);
  RRT_CHECK(m.max_seq_len > 0, "model.max_seq_len", "must be positive");
  RRT_CHECK(m.sliding_window >= 0, "model.sliding_window", "must be >= 0 (0: no window), got ",
            m.sliding_window);
  RRT_CHECK(m.attn_logit_softcapping >= 0 && std::isfinite(m.attn_logit_softcapping),
            "model.attn_logit_softcapping", "must be >= 0 (0: off), got ",
            m.attn_logit_softcapping);
  RRT_CHECK(m.final_logit_softcapping >= 0 && std::isfinite(m.final_logit_softcapping),
            "model.final_logit_softcapping", "must be >= 0 (0: off), got ",
            m.final_logit_softcapping);
  RRT_CHECK(m.sliding_layers.empty() || m.sliding_window > 0, "model.layer_types",
            "names sliding_attention layers but model.sliding_window is 0; set the window");
  RRT_CHECK(!m.sandwich_norm || (!m.parallel_residual && m.norm == Norm::rms),
            "model.sandwich_norm",
            "norms on the attention and MLP outputs are RMSNorms of a sequential residual; "
            "model.parallel_residual must be false and model.norm rms");
  RRT_CHECK(m.query_pre_attn_scalar >= 0 && std::isfinite(m.query_pre_attn_scalar),
            "model.query_pre_attn_scalar", "must be >= 0 (0: head_dim), got ",
            m.query_pre_attn_scalar);
  RRT_CHECK(m.rope_local_theta >= 0 && std::isfinite(m.rope_local_theta), "model.rope_local_theta",
            "must be >= 0 (0: rope_theta everywhere), got ", m.rope_local_theta);
  const ops::RopeScaling& rs = m.rope_scaling;
  if (rs.type != ops::RopeScalingType::none) {
    RRT_CHECK(rs.factor > 0, "model.rope_scaling.factor", "must be positive, got ", rs.factor);
    RRT_CHECK(rs.type == ops::RopeScalingType::linear || rs.original_max_positions > 0,
              "model.rope_scaling.original_max_positions", to_string(rs.type),
              " scaling needs the original context length, got ", rs.original_max_positions);
  }
  if (rs.type == ops::RopeScalingType::llama3)
    RRT_CHECK(rs.high_freq_factor > rs.low_freq_factor, "model.rope_scaling.high_freq_factor",
              "must exceed low_freq_factor (", rs.low_freq_factor, "), got ", rs.high_freq_factor);
  if (rs.type == ops::RopeScalingType::dynamic)
    RRT_CHECK(m.max_seq_len <= rs.original_max_positions, "model.max_seq_len",
              "dynamic NTK RoPE scaling only changes frequencies past ", rs.original_max_positions,
              " positions, and then with the sequence length, which a "
              "fixed table cannot hold; keep max_seq_len (",
              m.max_seq_len, ") within them");
  const ExitHeadConfig& eh = spec.exit_head;
  RRT_CHECK(eh.lora_rank >= 0, "early_exit.head_lora_rank", "must be >= 0, got ", eh.lora_rank);
  for (size_t i = 0; i < eh.loops.size(); ++i)
    RRT_CHECK(
        eh.loops[i] >= 1 && eh.loops[i] < r.loops && (i == 0 || eh.loops[i] > eh.loops[i - 1]),
        "early_exit.exits", "head adapters sit on intermediate exits: ascending loops in 1..",
        r.loops - 1, ", got ", eh.loops[i]);
  RRT_CHECK(r.block_layers > 0 && r.loops > 0, "recursion",
            "block_layers and loops must be positive");
  RRT_CHECK(m.n_layers == 0 || m.n_layers == r.block_layers * r.loops, "recursion.loops",
            "block_layers ", r.block_layers, " x loops ", r.loops, " must equal the model's ",
            m.n_layers, " layers");
  RRT_CHECK(lora.rank_attention >= 0 && lora.rank_mlp >= 0, "lora.rank",
            "ranks must be >= 0, "
            "got ",
            lora.rank_attention, " (attention) and ", lora.rank_mlp, " (mlp)");
  RRT_CHECK(lora.alpha >= 0, "lora.alpha", "must be >= 0 (0 means alpha = rank)");
}

std::string to_string(Family f) { return family_descriptor(f).name; }

std::string to_string(Activation a) {
  switch (a) {
    case Activation::swiglu:
      return "swiglu";
    case Activation::geglu:
      return "geglu";
    case Activation::gelu:
      return "gelu";
    case Activation::gelu_tanh:
      return "gelu_tanh";
  }
  return "?";
}

std::string to_string(Sharing s) { return s == Sharing::cycle ? "cycle" : "sequence"; }

std::string to_string(ops::RopeScalingType t) {
  switch (t) {
    case ops::RopeScalingType::none:
      return "none";
    case ops::RopeScalingType::linear:
      return "linear";
    case ops::RopeScalingType::dynamic:
      return "dynamic";
    case ops::RopeScalingType::llama3:
      return "llama3";
  }
  return "?";
}

}  // namespace rrt
