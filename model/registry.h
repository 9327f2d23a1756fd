// The parameter registry lists every tensor of a model exactly once. Initialisation, loading,
// saving, the optimizer and (later) all-reduce are loops over it, never hand-written per tensor.
#pragma once

#include <string>
#include <unordered_map>
#include <vector>

#include "core/tensor.h"
#include "model/config.h"

namespace rrt {

// bias: projection and LayerNorm biases (NeoX), initialised to zero, never decayed.
enum class ParamKind { embedding, tied_block, lora_a, lora_b, norm, final_norm, head, bias };

struct ParamInfo {
  std::string name;  // e.g. "block.1.attn.q.weight", "lora.2.1.q.A"
  Shape shape;
  ParamKind kind;
  int64_t loop = -1;   // LoRA and per-loop norms: the loop k of their position
  int64_t layer = -1;  // block layer b (tied weights, LoRA, norms)
  bool decay = true;   // AdamW weight decay applies (matrices yes, norms no)
  bool trainable = true;
};

class ParamRegistry {
 public:
  explicit ParamRegistry(const ModelSpec& spec);

  const std::vector<ParamInfo>& params() const { return params_; }
  int size() const { return static_cast<int>(params_.size()); }
  const ParamInfo& operator[](int i) const { return params_.at(i); }
  bool has(const std::string& name) const { return index_.count(name) != 0; }
  int index(const std::string& name) const;
  int64_t total_numel() const;
  // Freezing (early_exit.train): a frozen parameter gets no gradient and no optimizer update.
  void set_trainable(int i, bool trainable) { params_.at(i).trainable = trainable; }
  int64_t numel_of(ParamKind kind) const;

  // Canonical names, shared with checkpoints and fixtures.
  static std::string block_name(int64_t layer, Proj p);  // block.{b}.attn.q.weight
  // block.{b}.attn.q.bias, or loop.{k}.block.{b}.attn.q.bias when vectors are per loop.
  static std::string bias_name(int64_t layer, Proj p, int64_t loop = -1, bool per_loop = false);
  // block.{b}.attn_norm.weight, or loop.{k}.block.{b}.attn_norm.weight with per-loop norms;
  // bias: the LayerNorm bias (.bias) instead.
  static std::string norm_name(int64_t layer, int64_t loop, bool attn, bool per_loop,
                               bool bias = false);
  // Qwen3's per-head RMSNorm of q (q = true) or k: block.{layer}.attn.q_norm.weight [Dh], or
  // loop.{loop}.block.{layer}.attn.q_norm.weight when per loop (a layer vector like the norms).
  static std::string qk_norm_name(int64_t layer, int64_t loop, bool q, bool per_loop);
  // Gemma 2 / 3's norm on the attention output (attn = true) or the MLP output:
  // block.{layer}.attn_post_norm.weight / mlp_post_norm.weight [D], or loop.{loop}.block... per
  // loop.
  static std::string post_norm_name(int64_t layer, int64_t loop, bool attn, bool per_loop);
  static std::string lora_name(int64_t loop, int64_t layer, Proj p, bool a);
  // exit.{k}.head_lora.A / .B: the head adapter of the exit after loop k (1-based).
  static std::string head_lora_name(int64_t exit_loop, bool a);

 private:
  void add(ParamInfo info);
  std::vector<ParamInfo> params_;
  std::unordered_map<std::string, int> index_;
};

}  // namespace rrt
