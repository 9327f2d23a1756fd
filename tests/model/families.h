// The model structures the family-wide tests run over: Llama, Gemma, NeoX with parallel and
// with sequential residual, Qwen2, Qwen3, Gemma 3 and Gemma 2 (each test picks its own sizes for
// them).
#pragma once

#include "model/config.h"

namespace rrt::testing {

struct FamilyCase {
  const char* name;
  Family family;
  bool parallel;  // NeoX's parallel residual
};

inline constexpr FamilyCase kFamilies[] = {
    {"llama", Family::llama, false},       {"gemma", Family::gemma, false},
    {"neox_parallel", Family::neox, true}, {"neox_sequential", Family::neox, false},
    {"qwen2", Family::qwen2, false},       {"qwen3", Family::qwen3, false},
    {"gemma3", Family::gemma3, false},     {"gemma2", Family::gemma2, false}};

}  // namespace rrt::testing
