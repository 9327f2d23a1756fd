#include "model/config.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace rrt {

int64_t ModelConfig::rot_dim() const {
  // Rounded down to an even count of dims: rotary pairs (i, i + rot/2).
  int64_t r = static_cast<int64_t>(static_cast<double>(dh()) * rotary_fraction);
  return r - r % 2;
}

double ModelConfig::embedding_multiplier() const {
  return embed_scale > 0 ? embed_scale : std::sqrt(static_cast<double>(d_model));
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
  m.family = f;
  m.norm = f == Family::neox ? Norm::layer : Norm::rms;
  m.norm_unit_offset = f == Family::gemma;
  m.linear_bias = f == Family::neox;
  m.parallel_residual = f == Family::neox;
  m.rotary_fraction = f == Family::neox ? 0.25 : 1.0;
  m.embed_scale = f == Family::gemma ? 0.0 : 1.0;
  m.tied_head = f == Family::gemma;
  m.activation = f == Family::llama   ? Activation::swiglu
                 : f == Family::gemma ? Activation::geglu
                                      : Activation::gelu;
}

void check_family_structure(const ModelConfig& m) {
  const std::string fam = "model.family " + to_string(m.family);
  const bool neox = m.family == Family::neox, gemma = m.family == Family::gemma;
  RRT_CHECK((m.norm == Norm::layer) == neox, fam, "uses ", neox ? "LayerNorm" : "RMSNorm",
            "; model.norm does not match");
  RRT_CHECK(m.linear_bias == neox, fam, neox ? "has" : "has no", " projection biases; ",
            "model.linear_bias does not match");
  RRT_CHECK(m.norm_unit_offset == gemma, fam, gemma ? "scales" : "does not scale",
            " its RMSNorm by (1 + w); model.norm_unit_offset does not match");
  RRT_CHECK(!m.parallel_residual || neox, fam, "has no parallel residual");
  if (gemma)
    RRT_CHECK(m.activation == Activation::geglu && m.embed_scale == 0.0, fam,
              "uses GeGLU and embeddings scaled by sqrt(d_model) (embed_scale 0)");
  else
    RRT_CHECK(m.embed_scale == 1.0, fam, "does not scale its embeddings (embed_scale 1)");
  if (neox)
    RRT_CHECK(m.activation == Activation::gelu || m.activation == Activation::gelu_tanh, fam,
              "uses a GELU MLP (activation gelu or gelu_tanh), not ", to_string(m.activation));
  if (m.family == Family::llama)
    RRT_CHECK(m.activation == Activation::swiglu, fam, "uses SwiGLU, not ",
              to_string(m.activation));
}

Position position_of(const RecursionConfig& r, int64_t l) {
  if (r.sharing == Sharing::cycle) return {l / r.block_layers, l % r.block_layers};
  return {l % r.loops, l / r.loops};
}

std::array<int64_t, 2> proj_shape(const ModelConfig& m, Proj p) {
  switch (p) {
    case Proj::q: return {m.q_dim(), m.d_model};
    case Proj::k:
    case Proj::v: return {m.kv_dim(), m.d_model};
    case Proj::o: return {m.d_model, m.q_dim()};
    case Proj::gate:
    case Proj::up: return {m.ffn, m.d_model};
    case Proj::down: return {m.d_model, m.ffn};
  }
  return {0, 0};
}

void validate(const ModelSpec& spec) {
  const ModelConfig& m = spec.model;
  const RecursionConfig& r = spec.recursion;
  const LoraConfig& lora = spec.lora;
  RRT_CHECK(m.vocab > 0 && m.d_model > 0 && m.ffn > 0, "model", "vocab, d_model and ffn must be positive");
  RRT_CHECK(m.n_heads > 0 && m.n_kv_heads > 0, "model", "n_heads and n_kv_heads must be positive");
  RRT_CHECK(m.n_heads % m.n_kv_heads == 0, "model.n_kv_heads", "kv heads (", m.n_kv_heads,
            ") must divide heads (", m.n_heads, ")");
  RRT_CHECK(m.head_dim > 0 || m.d_model % m.n_heads == 0, "model.head_dim", "d_model ", m.d_model,
            " is not divisible by n_heads ", m.n_heads, "; set head_dim explicitly");
  RRT_CHECK(m.rot_dim() > 0 && m.rotary_fraction <= 1.0, "model.rotary_fraction",
            "rotary dims must be in (0, head_dim], got fraction ", m.rotary_fraction);
  RRT_CHECK(m.max_seq_len > 0, "model.max_seq_len", "must be positive");
  const ExitHeadConfig& eh = spec.exit_head;
  RRT_CHECK(eh.lora_rank >= 0, "early_exit.head_lora_rank", "must be >= 0, got ", eh.lora_rank);
  for (size_t i = 0; i < eh.loops.size(); ++i)
    RRT_CHECK(eh.loops[i] >= 1 && eh.loops[i] < r.loops && (i == 0 || eh.loops[i] > eh.loops[i - 1]),
              "early_exit.exits", "head adapters sit on intermediate exits: ascending loops in 1..",
              r.loops - 1, ", got ", eh.loops[i]);
  RRT_CHECK(r.block_layers > 0 && r.loops > 0, "recursion", "block_layers and loops must be positive");
  RRT_CHECK(m.n_layers == 0 || m.n_layers == r.block_layers * r.loops, "recursion.loops",
            "block_layers ", r.block_layers, " x loops ", r.loops, " must equal the model's ",
            m.n_layers, " layers");
  RRT_CHECK(lora.rank_attention >= 0 && lora.rank_mlp >= 0, "lora.rank", "ranks must be >= 0, "
            "got ", lora.rank_attention, " (attention) and ", lora.rank_mlp, " (mlp)");
  RRT_CHECK(lora.alpha >= 0, "lora.alpha", "must be >= 0 (0 means alpha = rank)");
}

std::string to_string(Family f) {
  switch (f) {
    case Family::llama: return "llama";
    case Family::gemma: return "gemma";
    case Family::neox: return "neox";
  }
  return "?";
}

std::string to_string(Activation a) {
  switch (a) {
    case Activation::swiglu: return "swiglu";
    case Activation::geglu: return "geglu";
    case Activation::gelu: return "gelu";
    case Activation::gelu_tanh: return "gelu_tanh";
  }
  return "?";
}

std::string to_string(Sharing s) { return s == Sharing::cycle ? "cycle" : "sequence"; }

}  // namespace rrt
