// ParameterSet: the values and gradients of every registered parameter, each kind in one flat
// arena with identical layout (so the gradient arena can be all-reduced in buckets as is).
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "core/arena.h"
#include "core/error.h"
#include "model/registry.h"

namespace rrt {

class SafetensorsFile;

struct InitConfig {
  uint64_t seed = 1234;
  double std = 0.02;          // linear weights and embeddings
  bool lora_b_zero = true;    // B = 0 so a fresh LoRA leaves the model unchanged
};

class ParameterSet {
 public:
  // Values only (no gradient arena) halves the memory of sets that are never trained here:
  // imported checkpoints and conversion results (a 1.1B model: 4.4 GB instead of 8.8 GB).
  enum class Grads { with, without };
  explicit ParameterSet(const ModelSpec& spec, Grads grads = Grads::with);

  const ParamRegistry& registry() const { return registry_; }
  void set_trainable(int i, bool trainable) { registry_.set_trainable(i, trainable); }
  float* value(int i) const { return values_.view(i).f32(); }
  bool has_grads() const { return has_grads_; }
  float* grad(int i) const {
    RRT_CHECK(has_grads_, "ParameterSet", "this set holds values only (no gradients)");
    return grads_.view(i).f32();
  }
  float* value(const std::string& name) const { return value(registry_.index(name)); }
  float* grad(const std::string& name) const { return grad(registry_.index(name)); }
  int64_t numel(int i) const { return registry_[i].shape.numel(); }

  void zero_grads() {
    if (has_grads_) grads_.zero();
  }
  // Seeded, thread-count independent initialisation (each parameter its own RNG stream).
  void init(const InitConfig& cfg);
  // Loads every registered parameter from a safetensors file (names as in the registry);
  // a missing tensor or a shape mismatch throws naming both.
  void load(const SafetensorsFile& file);
  // Writes every parameter under its registry name (atomically; see write_safetensors).
  void save(const std::string& path, const std::map<std::string, std::string>& metadata = {}) const;

  Arena& values_arena() { return values_; }
  Arena& grads_arena() { return grads_; }

 private:
  ParamRegistry registry_;
  bool has_grads_;
  bool unit_offset_norms_;  // Gemma: norm weights w act as (1 + w), so "identity" is w = 0
  Arena values_{"params"};
  Arena grads_{"grads"};
};

}  // namespace rrt
