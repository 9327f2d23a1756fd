#include "model/config.h"

#include <algorithm>

#include "core/error.h"

namespace rrt {

int64_t ModelConfig::rot_dim() const {
  // Rounded down to an even count of dims: rotary pairs (i, i + rot/2).
  int64_t r = static_cast<int64_t>(static_cast<double>(dh()) * rotary_fraction);
  return r - r % 2;
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
  RRT_CHECK(m.family == Family::llama, "model.family", to_string(m.family),
            " is not implemented yet (it arrives with checkpoint import); use llama");
  RRT_CHECK(r.block_layers > 0 && r.loops > 0, "recursion", "block_layers and loops must be positive");
  RRT_CHECK(m.n_layers == 0 || m.n_layers == r.block_layers * r.loops, "recursion.loops",
            "block_layers ", r.block_layers, " x loops ", r.loops, " must equal the model's ",
            m.n_layers, " layers");
  for (int p = 0; p < kNumProj; ++p) {
    auto [out, in] = proj_shape(m, static_cast<Proj>(p));
    int64_t rank = lora.rank(static_cast<Proj>(p));
    RRT_CHECK(rank >= 0 && rank <= std::min(out, in), "lora.rank", "rank ", rank, " of ",
              kProjNames[p], " exceeds min(in, out) = ", std::min(out, in));
  }
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

std::string to_string(Sharing s) { return s == Sharing::cycle ? "cycle" : "sequence"; }

}  // namespace rrt
