// The model structures the family-wide tests run over: Llama, Gemma, and NeoX with parallel and
// with sequential residual (each test picks its own sizes for them).
#pragma once

#include "model/config.h"

namespace rrt::testing {

struct FamilyCase {
  const char* name;
  Family family;
  bool parallel;  // NeoX's parallel residual
};

inline constexpr FamilyCase kFamilies[] = {{"llama", Family::llama, false},
                                           {"gemma", Family::gemma, false},
                                           {"neox_parallel", Family::neox, true},
                                           {"neox_sequential", Family::neox, false}};

}  // namespace rrt::testing
