// Whole-model tolerances of a bf16 backend (CUDA, CPU bf16) against the fp32 CPU model on the
// same bf16-rounded weights, in one place: tests/gpu/test_model_gpu.cpp, test_exits_gpu.cpp,
// tests/model/test_core_bf16.cpp and tests/trainer/test_precision.cpp read these. They measure
// the bf16 activations only (the weights are rounded before either model sees them). bf16 has an
// 8-bit significand: one rounding is up to 2^-9 = 0.2% relative, and a position rounds a dozen
// activations on the way forward and as many on the way back.
#pragma once

namespace rrt::testing::bf16_model_tol {

// Relative L2 of the logits [N, T, V] (or of an exit's logits).
inline constexpr double kLogits = 3e-2;
// Relative difference of the mean loss (and of the weighted CE).
inline constexpr double kLoss = 1e-2;
// KD, SD and each exit's means, relative with an absolute floor of kTermFloor: small
// differences of log-probabilities of bf16 hidden states.
inline constexpr double kTerm = 3e-2;
inline constexpr double kTermFloor = 1e-2;
// Relative L2 of each parameter's gradient, its reference norm floored at 5% of what a tensor of
// its size would have at the arena's RMS gradient (a gradient that nearly cancels, such as a
// norm weight's sum over rows, has no meaningful relative error of its own).
inline constexpr double kGradient = 8e-2;
// Relative L2 of the whole gradient arena.
inline constexpr double kArena = 3e-2;
// The same for models with Gemma 3's sandwich norms and q/k head norms: each layer's branch
// output is normalised before its residual add, so every branch enters the residual (and its
// gradient the backward stream, through the post norm's rstd of a small branch output) at full
// scale instead of diluted, and the norms add four roundings a position. Measured on the tiny
// relaxed Gemma 3 (B = 2, K = 3, CPU bf16 against fp32): logits 1.4e-2 and every tensor within
// kGradient (worst 6.7e-2), arena 5.0e-2, its error in the first block layer and the
// embedding (the end of the backward); without the sandwich norms the same model gives 5.8e-3
// and 2.5e-2 like the other families.
inline constexpr double kArenaSandwich = 6e-2;

}  // namespace rrt::testing::bf16_model_tol
