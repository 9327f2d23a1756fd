// Token embedding: out[i] = scale * table[tokens[i]]   table: [V, D], out: [M, D].
// Gemma multiplies by sqrt(D); Llama and NeoX use scale 1.
#pragma once

#include <cstdint>

namespace rrt::ops {

template <typename S>
void embedding_forward(const int32_t* tokens, const S* table, S* out, int64_t M, int64_t D,
                       int64_t V, S scale);
// dtable[tokens[i]] += scale * dout[i]
template <typename S>
void embedding_backward(const int32_t* tokens, const S* dout, S* dtable, int64_t M, int64_t D,
                        S scale);

}  // namespace rrt::ops
