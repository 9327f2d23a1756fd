// validate_run_config: every field's own rule, then the checks between fields. Errors name the
// key to change (where() is the key; parse_run_config maps it onto a file line).
#include <algorithm>
#include <string>

#include "config/config_fields.h"
#include "config/config_io.h"
#include "config/objective.h"
#include "core/error.h"
#include "model/cuda/device_model.h"

namespace rrt {

namespace {

// "1, 2, 11, 22"
std::string divisors_of(int64_t n) {
  std::string s;
  for (int64_t d = 1; d <= n; ++d)
    if (n % d == 0) s += (s.empty() ? "" : ", ") + std::to_string(d);
  return s;
}

// The byte tokenizer's ids: 256 byte values and one end-of-document token.
constexpr int64_t kByteVocab = 257;

}  // namespace

void validate_run_config(const RunConfig& config) {
  RunConfig copy = config;  // the field list binds to a mutable config; nothing is changed
  for (const Field& f : config_fields(copy)) {
    if (f.role != FieldRole::normal) continue;
    const std::string error = check_field(f, f.get());
    RRT_CHECK(error.empty(), f.key(), error);
  }

  const ModelConfig& m = config.model.model;
  const RecursionConfig& r = config.model.recursion;
  const TrainConfig& t = config.train;
  RRT_CHECK(m.n_layers % r.loops == 0, "recursion.loops", "loops ", r.loops,
            " does not divide model.n_layers ", m.n_layers,
            " (block_layers = n_layers / loops must be whole); loops can be one of ",
            divisors_of(m.n_layers));
  RRT_CHECK(r.block_layers * r.loops == m.n_layers, "recursion.block_layers", "block_layers ",
            r.block_layers, " x loops ", r.loops, " != model.n_layers ", m.n_layers,
            "; block_layers is derived: set it to n_layers / loops (parsing does this)");
  RRT_CHECK(m.n_heads % m.n_kv_heads == 0, "model.n_kv_heads", "n_kv_heads ", m.n_kv_heads,
            " does not divide n_heads ", m.n_heads, " (each kv head serves a whole group of ",
            "query heads); n_kv_heads can be one of ", divisors_of(m.n_heads));
  RRT_CHECK(m.head_dim > 0 || m.d_model % m.n_heads == 0, "model.n_heads", "d_model ", m.d_model,
            " is not divisible by n_heads ", m.n_heads, "; change n_heads or set model.head_dim");
  RRT_CHECK(m.rot_dim() > 0, "model.rotary_fraction", "head_dim ", m.dh(), " x rotary_fraction ",
            m.rotary_fraction,
            " leaves no pair of dims for RoPE to rotate; raise rotary_fraction "
            "(at most 1) or head_dim");
  RRT_CHECK(t.seq_len <= m.max_seq_len, "train.seq_len", "seq_len ", t.seq_len,
            " exceeds model.max_seq_len ", m.max_seq_len, "; shorten seq_len or raise max_seq_len");
  RRT_CHECK(config.data.path.empty() || config.data.sources.empty(), "data.sources",
            "set data.path (one data set) or data.sources (a mixture), not both; to mix "
            "data.path with others, list it as one of the sources");
  RRT_CHECK(config.data.tokenizer != "byte" || m.vocab >= kByteVocab, "model.vocab", "vocab ",
            m.vocab, " is too small for the byte tokenizer, which uses ", kByteVocab,
            " ids (256 bytes + end of document); set vocab: ", kByteVocab);
  // train.device: cuda needs a CUDA build, which the trainer checks (the config stays readable
  // anywhere: a GPU run's checkpoint is evaluated on CPUs). The recompute list must name positions.
  parse_recompute(t.recompute, config.model.positions());
  RRT_CHECK(t.device != "cuda" || t.precision != "fp32", "train.precision",
            "fp32 on train.device: cuda: the CUDA backend computes in bf16 with fp32 master "
            "weights only; set train.precision: auto or bf16");

  // The model's own checks: families this build cannot run yet, rotary dims, ...
  validate(config.model);
  // Exits against the loops, weights against the exits, freezing against the LoRA.
  training_loss_from(config);
}

}  // namespace rrt
