// The op-test table: for every op family, the cases (shapes and edge cases) and the tolerance of
// each backend, written once. The CPU op tests (tests/ops/test_*.cpp: fp32 and fp64 against
// naive references, double-precision finite differences) and the CUDA op tests
// (tests/gpu/test_*_gpu.cpp: bf16 kernels against the CPU op, on a GPU or through
// tests/gpu/simulate.sh) are parameterised gtests over these lists, as llama.cpp's
// test-backend-ops runs one case list on every backend. A new case goes here and runs
// everywhere; a new backend iterates the same lists with its own tolerance entries.
//
// Inputs are each backend's own business (the GPU tests draw bf16-representable, never-zero
// values; the CPU tests draw Gaussian doubles), so a case names sizes and edge cases only.
// `fd_samples` caps how many elements per input a finite-difference check perturbs: each sample
// is a whole forward, and the large shapes here come from the GPU tests (the CPU checks their
// gradients on a random subset, always with the first and last element).
#pragma once

#include <cmath>
#include <cstdint>
#include <ostream>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "ops/attention.h"
#include "ops/exit_loss.h"

namespace rrt::testing::op_cases {

using ops::AttentionShape;
using ops::Divergence;

// A tolerance and why it is what it is. CPU checks use rel and abs element-wise
// (|got - want| <= abs + rel |want|); the CUDA checks use rel on the relative L2 error
// ||got - want|| / ||want|| unless the entry says otherwise.
struct Tolerance {
  double rel;
  double abs;
  const char* why;
};

// Finite differences in double (tests/ops/gradcheck.h's defaults, for every op but where noted).
inline constexpr Tolerance kCpuGradient{1e-6, 1e-7,
                                        "central differences with h = 1e-6 in double: truncation "
                                        "~1e-12, round-off ~1e-10"};
// The CUDA backend's storage: what every bf16 output of a kernel carries.
inline constexpr Tolerance kCudaBf16{1e-2, 0,
                                     "bf16 storage alone gives ~2e-3 (8 significant bits); wrong "
                                     "indexing gives errors of order 1"};
inline constexpr Tolerance kCudaF32{1e-5, 0,
                                    "fp32 outputs of identical inputs: only summation order and "
                                    "fused multiply-adds differ"};

// The CPU bf16 backend (ops/cpu_bf16/backend.h, tests/ops/cpu_bf16/) stores what the CUDA
// backend stores, in the same format (bf16 activations rounded to nearest even; fp32 weight
// gradients, statistics, lse and logits) and accumulates in fp32 as it does, so where an entry's
// argument is that storage the two backends share it: the kCpuBf16 entries below and in each op's
// namespace name the CUDA entry they share, and differ only where the arithmetic differs (said
// there). Its checks, like the CUDA ones, are on the relative L2 error against the fp32 CPU op on
// bf16-representable inputs.
inline constexpr const Tolerance& kCpuBf16 = kCudaBf16;
inline constexpr const Tolerance& kCpuBf16F32 = kCudaF32;

// t widened by `factor` where factor > 1 (a check on larger sizes than t was set on).
inline Tolerance scaled(const Tolerance& t, double factor) {
  return factor > 1 ? Tolerance{t.rel * factor, t.abs * factor, t.why} : t;
}

// gtest prints a case by its name (failure messages, --gtest_list_tests).
template <typename Case>
requires requires(const Case& c) { c.name; }
void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }
// The test-name suffix of INSTANTIATE_TEST_SUITE_P: the case's name.
inline constexpr auto kCaseName = [](const auto& info) { return info.param.name; };

// The case called `name` (a test that needs one particular case looks it up here).
template <typename Case>
const Case& find_case(const std::vector<Case>& cases, const std::string& name) {
  for (const Case& c : cases)
    if (c.name == name) return c;
  throw std::runtime_error("op_cases: no case named " + name);
}

inline std::string dims(std::initializer_list<std::pair<const char*, int64_t>> kv) {
  std::string s;
  for (const auto& [k, v] : kv) {
    if (!s.empty()) s += '_';
    s += k;
    s += std::to_string(v);
  }
  return s;
}

// ---- norms: RMSNorm (plain, Gemma's unit offset), LayerNorm (with and without bias) ----------

struct NormCase {
  std::string name;
  int64_t M, D;
  int64_t fd_samples = 300;
};
// One row, a few, more than a CUDA block; D of 1, 7 (no vector path), odd, 4096 + 8.
inline std::vector<NormCase> norm_cases() {
  const int64_t shapes[][2] = {{1, 1}, {1, 7}, {5, 33},   {17, 64}, {3, 129}, {1, 4104},
                               {3, 1}, {3, 7}, {3, 4104}, {129, 1}, {129, 7}, {129, 4104}};
  std::vector<NormCase> out;
  for (const auto& s : shapes)
    out.push_back({dims({{"M", s[0]}, {"D", s[1]}}), s[0], s[1], s[0] * s[1] > 100000 ? 40 : 300});
  return out;
}
namespace norm_tol {
inline constexpr Tolerance kCpuRmsF64{1e-13, 1e-13, "fp64 against the naive formula: one sum"};
inline constexpr Tolerance kCpuRstdF64{1e-13, 0, "fp64: one sqrt of the same sum"};
inline constexpr Tolerance kCpuLayerF64{1e-10, 1e-10,
                                        "fp64: the variance of an offset mean (3.0) cancels"};
inline constexpr Tolerance kCpuMeanF64{1e-13, 1e-13, "fp64: one sum"};
inline constexpr Tolerance kCpuF32{1e-5, 1e-5, "fp32 against the fp64 reference: 2^-24 per op"};
}  // namespace norm_tol

// ---- RoPE ------------------------------------------------------------------------------------

struct RopeCase {
  std::string name;
  int64_t N, T, H, Dh, rot_dim;
};
inline std::vector<RopeCase> rope_cases() {
  return {
      {"single_position", 1, 1, 1, 2, 2},       // the identity
      {"full_three_heads", 2, 5, 3, 8, 8},      // full rotary
      {"partial_quarter", 1, 17, 2, 16, 4},     // rot_dim = Dh / 4 (GPT-NeoX)
      {"half_rot_odd", 1, 9, 6, 12, 6},         // rot_dim / 2 odd
      {"long_sequence", 2, 130, 1, 4, 4},       // T past the GPU tests' 64-row table
      {"full_dh64", 2, 13, 3, 64, 64},          // a real head size, T of no special size
      {"partial_dh10", 3, 7, 2, 10, 4},         // partial, N > 1
      {"partial_dh80_neox", 1, 37, 5, 80, 20},  // NeoX's 25% of Dh 80
  };
}
namespace rope_tol {
inline constexpr Tolerance kCpuF64{1e-12, 1e-12,
                                   "fp64 against angles recomputed with pow: the table's own "
                                   "rounding"};
inline constexpr Tolerance kCpuInverseF64{1e-13, 1e-13, "an orthogonal rotation and its inverse"};
inline constexpr Tolerance kCpuF32{1e-5, 1e-5, "fp32 against fp64"};
}  // namespace rope_tol

// ---- element-wise: SwiGLU, GeGLU, GELU (erf, tanh), add -----------------------------------

struct ElementCase {
  std::string name;
  int64_t n;
  int64_t offset;  // elements in front of every buffer: 1 misaligns the pointers (scalar path)
};
inline std::vector<ElementCase> element_cases() {
  return {{"n1", 1, 0},
          {"n7", 7, 0},
          {"n37", 37, 0},
          {"n129", 129, 0},
          {"n1000", 1000, 0},
          {"n12312", 4104 * 3, 0},
          {"n128_misaligned", 128, 1}};
}
namespace activation_tol {
inline constexpr Tolerance kCpuF64{1e-14, 1e-15, "fp64 against the same formula written again"};
inline constexpr Tolerance kCpuF32{1e-5, 1e-6, "fp32 against fp64"};
}  // namespace activation_tol

// ---- embedding -------------------------------------------------------------------------------

struct EmbeddingCase {
  std::string name;
  int64_t V, D;
  std::vector<int32_t> tokens;  // M = tokens.size(); repeats, the last row of the vocabulary
  double scale;
};
// Tokens in [0, V): every other one among the first 11 (rows repeat, so the accumulation order
// of the backward matters), the last one V - 1 (the last block's range is clamped to V).
inline std::vector<int32_t> repeating_tokens(int64_t M, int64_t V, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_int_distribution<int32_t> pick(0, static_cast<int32_t>(V - 1));
  std::vector<int32_t> t(static_cast<size_t>(M));
  for (auto& x : t) x = pick(gen);
  for (size_t i = 0; i < t.size(); i += 2) t[i] %= 11;
  t.back() = static_cast<int32_t>(V - 1);
  return t;
}
inline std::vector<EmbeddingCase> embedding_cases() {
  std::vector<EmbeddingCase> out = {
      {"one_token", 1, 1, {0}, 1.0},
      {"repeated_token", 5, 3, {4, 4, 4}, 1.0},
      // D spans several 16-column blocks of the CPU backward; Gemma's sqrt(D) scale.
      {"gemma_scale_d37", 11, 37, {0, 3, 3, 10, 7, 3, 0, 10, 1}, std::sqrt(37.0)},
      {"last_row_v300", 300, 8, {299, 0, 150, 299, 299}, 0.5},
  };
  // The CUDA kernels' shapes: one row, a few, more than a block; D of 1, 7, 4096 + 8; V above
  // 1024 (several rows per block of the deterministic backward).
  for (int64_t V : {int64_t{37}, int64_t{3001}})
    for (int64_t M : {int64_t{1}, int64_t{3}, int64_t{129}})
      for (int64_t D : {int64_t{1}, int64_t{7}, int64_t{4104}})
        out.push_back({dims({{"V", V}, {"M", M}, {"D", D}}), V, D, repeating_tokens(M, V, 4),
                       V == 37 ? std::sqrt(static_cast<double>(D)) : 0.5});
  return out;
}
namespace embedding_tol {
inline constexpr Tolerance kCpuF32{1e-6, 1e-6, "fp32 copies of fp64 rows times a scale"};
inline constexpr Tolerance kCpuScatterF64{
    1e-12, 1e-12, "fp64 scatter-add against the naive sum: summation order of repeated rows"};
// The CPU's gradient check perturbs the table: above this size it compares with the naive
// scatter-add instead (the op is linear, so that is the same check without 100 MB buffers).
inline constexpr int64_t kCpuFdMaxTable = int64_t{1} << 20;
}  // namespace embedding_tol

// ---- GEMM and linear with bias ---------------------------------------------------------------

struct GemmCase {
  std::string name;
  int64_t M, N, K;
  int64_t fd_samples = 300;
};
// Every case runs in all four transpose combinations. M = 1, 3, 257; K, N not multiples of 8.
inline std::vector<GemmCase> gemm_cases() {
  return {{"M1_N1_K1", 1, 1, 1},         {"M3_N5_K7", 3, 5, 7},
          {"M17_N4_K9", 17, 4, 9},       {"M1_N13_K2", 1, 13, 2},
          {"M8_N1_K33", 8, 1, 33},       {"M1_N64_K64", 1, 64, 64},
          {"M3_N40_K24", 3, 40, 24},     {"M257_N96_K72", 257, 96, 72, 50},
          {"M257_N33_K13", 257, 33, 13}, {"M64_N5_K7", 64, 5, 7},
          {"M3_N1_K257", 3, 1, 257},     {"M128_N256_K512", 128, 256, 512, 20}};
}
enum class BiasMode { kNone, kAligned, kMisaligned };  // misaligned: the bias pointer one past
inline const char* bias_name(BiasMode b) {
  return b == BiasMode::kNone ? "none" : b == BiasMode::kAligned ? "aligned" : "misaligned";
}
inline constexpr BiasMode kBiasModes[] = {BiasMode::kNone, BiasMode::kAligned,
                                          BiasMode::kMisaligned};
struct LinearCase {
  std::string name;
  int64_t M, in, out;
  int64_t fd_samples = 300;
};
// Every case runs with each BiasMode.
inline std::vector<LinearCase> linear_cases() {
  return {{"M1_in1_out1", 1, 1, 1},
          {"M1_in7_out3", 1, 7, 3},
          {"M5_in9_out6", 5, 9, 6},
          {"M17_in4_out11", 17, 4, 11},
          {"M1_in64_out32", 1, 64, 32},
          {"M3_in24_out40", 3, 24, 40},
          {"M257_in72_out96", 257, 72, 96, 50},
          {"M257_in13_out33", 257, 13, 33, 50},
          {"M16_in2048_out256", 16, 2048, 256, 30}};
}
namespace gemm_tol {
inline constexpr Tolerance kCpuF64{1e-13, 1e-13, "fp64 BLAS against the naive triple loop"};
inline constexpr Tolerance kCpuF32{1e-5, 1e-5, "fp32 BLAS against fp64"};
// kCpuF32 was set on sums of K <= 33 products of unit size. Each fp32 addition rounds at 2^-24
// of a partial sum that grows like sqrt(k), so the error grows about linearly with K: longer sums
// (the CUDA tests' shapes) scale it by K / 33, and the small cases keep it as it is.
inline Tolerance cpu_f32_for_sum(int64_t K) { return scaled(kCpuF32, K / 33.0); }
inline constexpr Tolerance kCudaBf16Out{1e-2, 0,
                                        "bf16 result: its rounding (2^-9) plus accumulation order"};
inline constexpr Tolerance kCudaF32Out{1e-3, 0,
                                       "fp32 result of bf16 operands: accumulation order only"};
inline constexpr Tolerance kCudaChained{1e-2, 0, "through a bf16 intermediate (LoRA's u and du)"};
// The CPU bf16 backend's projections are ops/cpu_bf16/gemm.h's products with the same storage.
inline constexpr const Tolerance& kCpuBf16Out = kCudaBf16Out;
inline constexpr const Tolerance& kCpuBf16F32Out = kCudaF32Out;
inline constexpr const Tolerance& kCpuBf16Chained = kCudaChained;
}  // namespace gemm_tol

// ---- LoRA ------------------------------------------------------------------------------------

struct LoraCase {
  std::string name;
  int64_t M, in, out, R;
  double scale;
};
inline std::vector<LoraCase> lora_cases() {
  return {{"M1_in1_out1_R1", 1, 1, 1, 1, 1.0},
          {"M1_in7_out5_R1", 1, 7, 5, 1, 2.0},
          {"M17_in9_out6_R4", 17, 9, 6, 4, 0.5},
          {"M5_in33_out16_R4", 5, 33, 16, 4, 4.0},
          {"M17_in3_out11_R1", 17, 3, 11, 1, 8.0},
          {"rank_above_in", 17, 3, 11, 4, 8.0},  // rank above `in` is legal arithmetic too
          {"M1_in64_out32_R8", 1, 64, 32, 8, 2.0},
          {"M3_in24_out40_R4", 3, 24, 40, 4, 0.5},
          {"M257_in72_out96_R16", 257, 72, 96, 16, 1.0},
          {"M257_in13_out33_R3", 257, 13, 33, 3, 4.0},
          {"M64_in256_out128_R64", 64, 256, 128, 64, 0.25}};
}
namespace lora_tol {
inline constexpr Tolerance kCpuF64{1e-13, 1e-13, "fp64 BLAS against the naive loops"};
inline constexpr Tolerance kCpuF32{1e-5, 1e-5, "fp32 against fp64"};
// kCpuF32 was set on in * R * scale <= 33 * 4 * 4; the fp32 error of the two chained sums grows
// with it (gemm_tol::cpu_f32_for_sum says why), so larger adapters scale it.
inline Tolerance cpu_f32_for(int64_t in, int64_t R, double scale) {
  return scaled(kCpuF32, static_cast<double>(in) * R * scale / (33.0 * 4 * 4));
}
// y is linear in every entry of x, A and B: a larger step has no truncation error and keeps the
// round-off of the ~M * out outputs each perturbation moves well below tolerance.
inline constexpr double kCpuFdStep = 1e-5;
}  // namespace lora_tol

// ---- attention -------------------------------------------------------------------------------

struct AttentionCase {
  std::string name;
  AttentionShape shape;  // {N, T, H, Hkv, Dh}
  int64_t fd_samples = 300;
  // The mask (ops::AttentionMask): a sliding window, a soft-cap, and documents whose lengths
  // are doc_lengths cycled over each sequence (sequence n starts n entries into the cycle, so
  // sequences differ); empty: one document.
  int64_t window = 0;
  double softcap = 0;
  std::vector<int32_t> doc_lengths = {};

  // doc_start [N, T] of the documents (empty without doc_lengths).
  std::vector<int32_t> doc_starts() const {
    std::vector<int32_t> starts;
    if (doc_lengths.empty()) return starts;
    for (int64_t n = 0; n < shape.N; ++n) {
      size_t next = static_cast<size_t>(n) % doc_lengths.size();
      int64_t start = 0, end = doc_lengths[next];
      for (int64_t t = 0; t < shape.T; ++t) {
        if (t == end) {
          start = end;
          next = (next + 1) % doc_lengths.size();
          end += doc_lengths[next];
        }
        starts.push_back(static_cast<int32_t>(start));
      }
    }
    return starts;
  }
  // The op's mask over `doc_start` (the backend's copy of doc_starts(); null without documents).
  ops::AttentionMask mask(const int32_t* doc_start) const {
    ops::AttentionMask m;
    m.doc_start = doc_lengths.empty() ? nullptr : doc_start;
    m.window = window;
    m.softcap = softcap;
    return m;
  }
};
// MHA, GQA, MQA; T = 1, odd T, T across the 64-row query block and past 128-row tiles; Dh from 1
// to 512. The CUDA tests run every case through rrt's own kernels (forced) and, where cuDNN
// serves the shape on the GPU at hand (choose_attention_path), through cuDNN.
inline std::vector<AttentionCase> attention_cases() {
  return {
      {"mha_three_heads", {2, 5, 3, 3, 4}},
      {"gqa3_odd_t_dh", {1, 17, 6, 2, 5}},
      {"mqa", {2, 9, 3, 1, 8}},
      {"single_position", {2, 1, 2, 2, 3}},
      {"one_past_query_block", {1, 65, 2, 1, 4}},
      {"three_query_blocks_gqa", {1, 130, 6, 2, 3}, 100},
      {"mha_dh64_n2", {2, 64, 4, 4, 64}, 40},
      {"gqa_8_2_t129", {2, 129, 8, 2, 64}, 15},
      {"mqa_t37_dh128", {3, 37, 4, 1, 128}, 30},
      {"gqa_t129_dh128", {1, 129, 8, 2, 128}, 15},
      {"long_odd_t300", {1, 300, 2, 1, 64}, 15},
      {"shorter_than_tile", {2, 7, 2, 2, 64}},
      {"dh20", {2, 19, 4, 4, 20}},
      {"gqa_dh36", {1, 37, 6, 2, 36}},
      {"mqa_dh256", {2, 70, 4, 1, 256}, 20},
      {"t1_dh64", {2, 1, 4, 2, 64}},
      {"dh1", {1, 9, 2, 1, 1}},
      {"dh512", {1, 5, 2, 2, 512}, 50},
      {"dh72", {3, 33, 2, 2, 72}, 50},
      // Masks (issues 24, 25): documents packed in a sequence, sliding windows, soft-capping and
      // all three; windows and documents that cut a 64-row query block's keys from the left.
      {"docs_gqa", {2, 37, 6, 2, 8}, 300, 0, 0, {5, 11, 3, 20}},
      {"docs_across_blocks", {1, 150, 4, 2, 16}, 60, 0, 0, {70, 1, 40, 90}},
      {"window_mqa", {2, 33, 4, 1, 8}, 300, 5},
      {"window_of_one", {1, 9, 2, 1, 4}, 300, 1},
      {"window_across_blocks", {1, 200, 2, 1, 16}, 60, 70},
      {"window_gqa_dh64", {2, 130, 4, 2, 64}, 15, 48},
      {"softcap_mha", {2, 19, 3, 3, 8}, 300, 0, 1.5},
      {"softcap_dh128", {1, 37, 4, 1, 128}, 30, 0, 5.0},
      {"docs_window_softcap", {2, 70, 4, 2, 12}, 100, 9, 2.0, {13, 30, 2, 50}},
      {"docs_window_dh128", {1, 129, 4, 2, 128}, 15, 32, 0, {64, 65}},
  };
}
namespace attention_tol {
inline constexpr Tolerance kCpuOutF64{1e-11, 1e-12, "fp64 blocked softmax against long double"};
inline constexpr Tolerance kCpuLseF64{1e-12, 1e-12, "fp64 log-sum-exp against long double"};
inline constexpr Tolerance kCpuThreads{1e-12, 1e-14, "1 vs 2 threads: the same sums, other order"};
inline constexpr Tolerance kCpuF32{1e-5, 1e-5, "fp32 against fp64"};
// cuDNN: bf16 P enters tensor-core GEMMs.
inline constexpr Tolerance kCudnnLse{1e-3, 0,
                                     "fp32 scores of identical inputs: summation order and "
                                     "cuDNN's exp/log (expected below 1e-4)"};
inline constexpr Tolerance kCudnnOut{1e-2, 0,
                                     "out's bf16 rounding plus P rounded to bf16 before P V "
                                     "(expected ~3e-3)"};
inline constexpr Tolerance kCudnnGrad{2e-2, 0,
                                      "bf16 P and dS = P (dP - D), whose subtraction enlarges "
                                      "relative rounding (expected ~5e-3)"};
// rrt's own kernels keep fp32 up to each output's one bf16 rounding.
inline constexpr Tolerance kFallbackLse{1e-4, 0, "fp32 on identical inputs: summation order"};
inline constexpr Tolerance kFallbackOut{5e-3, 0, "out's bf16 rounding alone (~1e-3)"};
inline constexpr Tolerance kFallbackGrad{1e-2, 0,
                                         "one bf16 rounding of (start + update), the start of "
                                         "the update's size (~3e-3)"};
// The CPU bf16 backend widens every block to fp32 and rounds each output once, as rrt's own CUDA
// kernels do: their entries.
inline constexpr const Tolerance& kCpuBf16Lse = kFallbackLse;
inline constexpr const Tolerance& kCpuBf16Out = kFallbackOut;
inline constexpr const Tolerance& kCpuBf16Grad = kFallbackGrad;
}  // namespace attention_tol

// ---- chunked LM head + cross-entropy ---------------------------------------------------------

struct CrossEntropyCase {
  std::string name;
  int64_t M, D, V, chunk;
  int32_t ignore_index;
  std::vector<int32_t> targets;  // size M
  double weight = 1.0;           // the gradient weight
  int64_t fd_samples = 300;
  double softcap = 0;  // final logit soft-cap (ops/logit_softcap.h); 0: off
};
// Targets in [0, V) with every `ignore_every`-th row (from row 1) ignored (0: none).
inline std::vector<int32_t> ce_targets(int64_t M, int64_t V, int ignore_every, int32_t ignore_index,
                                       uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> dist(0, static_cast<int32_t>(V - 1));
  std::vector<int32_t> t(static_cast<size_t>(M));
  for (int64_t i = 0; i < M; ++i)
    t[i] = (ignore_every && i % ignore_every == 1) ? ignore_index : dist(rng);
  return t;
}
inline std::vector<CrossEntropyCase> cross_entropy_cases() {
  const std::vector<int32_t> ten = {3, -100, 12, 0, 3, -100, 7, 7, 1, 12};
  std::vector<int32_t> long_targets(34);
  for (int64_t i = 0; i < 34; ++i) long_targets[i] = i % 5 == 2 ? -1 : (i * 37) % 300;
  return {
      {"chunk3_not_dividing", 10, 7, 13, 3, -100, ten},
      {"chunk1", 10, 7, 13, 1, -100, ten},
      {"chunk4_last_of_2", 10, 7, 13, 4, -100, ten},
      {"chunk10_single", 10, 7, 13, 10, -100, ten},
      {"chunk16_above_M", 10, 7, 13, 16, -100, ten},
      {"one_row_two_classes", 1, 5, 2, 3, -100, {1}},
      {"ignore_minus1_v300", 34, 32, 300, 8, -1, long_targets},
      // The CUDA kernels' shapes: 5 chunks with the last of 1 row and an odd V; long rows with V
      // not a multiple of 8 or of the block size; one row with chunk > M; aligned sizes.
      {"M257_V1001_5chunks", 257, 72, 1001, 64, -100, ce_targets(257, 1001, 5, -100, 3), 1.0, 20},
      {"M3_V32003_long_rows", 3, 64, 32003, 2, -100, ce_targets(3, 32003, 2, -100, 6), 0.5, 30},
      {"M1_V2_chunk4", 1, 16, 2, 4, -100, ce_targets(1, 2, 0, -100, 9)},
      {"M128_V4096_one_chunk", 128, 256, 4096, 128, -100, ce_targets(128, 4096, 3, -100, 12), 0.25,
       8},
      // Final logit soft-capping (Gemma 2): caps small enough that the random logits saturate.
      {"softcap_chunk3", 10, 7, 13, 3, -100, ten, 1.0, 300, 0.6},
      {"softcap_M257_V1001", 257, 72, 1001, 64, -100, ce_targets(257, 1001, 5, -100, 4), 0.5, 20,
       1.5},
  };
}
namespace cross_entropy_tol {
inline constexpr Tolerance kCpuF64{1e-12, 0, "fp64 mean loss against long double logits"};
inline constexpr Tolerance kCpuF32{1e-5, 0, "fp32 mean loss against the fp64 reference"};
inline constexpr Tolerance kCudaLoss{1e-4, 0,
                                     "relative on the mean loss: fp32 logits of identical "
                                     "inputs, fp32 exp/log"};
inline constexpr Tolerance kCudaGradient{1e-2, 0,
                                         "dlogits are stored in bf16 before the two gradient "
                                         "GEMMs"};
// The CPU bf16 backend runs the CUDA scheme (ops/cpu_bf16/head_loss.cpp): fp32 logits from the
// bf16 GEMM of identical inputs, fp32 softmax and loss, dlogits stored in bf16 before the two
// gradient GEMMs (dh rounded once more onto its start): the CUDA entries and their arguments.
inline constexpr const Tolerance& kCpuBf16Loss = kCudaLoss;
inline constexpr const Tolerance& kCpuBf16Dh = kCudaGradient;
inline constexpr const Tolerance& kCpuBf16DW = kCudaGradient;
}  // namespace cross_entropy_tol

// ---- early-exit + distillation loss ----------------------------------------------------------

struct ExitLossCase {
  std::string name;
  int64_t E = 3, M = 7, D = 5, V = 11, chunk = 3;
  bool teacher = false;
  int64_t teacher_D = 4;  // differs from D on purpose
  Divergence divergence = Divergence::forward_kl;
  double tau = 1.0, alpha = 0.5;
  bool self_distill = false;
  int64_t R = 0;              // head LoRA rank
  bool lora_on_final = true;  // false: adapters on the intermediate exits only (null on the last)
  std::vector<double> weights = {0.1, 0.1, 1.0};  // aggressive(0.1) for three exits
  bool backward = true;                           // false: the CUDA test makes a loss-only call
  bool frozen_head = false;                       // dW null: the head frozen, as under train: lora
  int64_t fd_samples = 300;
  double softcap = 0;          // the exits' final logit soft-cap; 0: off
  double teacher_softcap = 0;  // the teacher's own

  bool has_adapter(int64_t k) const { return R > 0 && (lora_on_final || k + 1 < E); }
};
inline std::vector<ExitLossCase> exit_loss_cases() {
  std::vector<ExitLossCase> out;
  out.push_back({.name = "ce_one_exit", .E = 1, .weights = {1.0}});
  out.push_back({.name = "ce_three_exits"});
  out.push_back({.name = "self_distill", .self_distill = true});
  for (auto [name, div] :
       {std::pair{"forward_kl", Divergence::forward_kl},
        std::pair{"reverse_kl", Divergence::reverse_kl}, std::pair{"tv", Divergence::tv}}) {
    out.push_back({.name = std::string(name) + "_tau1",
                   .E = 1,
                   .teacher = true,
                   .divergence = div,
                   .weights = {1.0}});
    out.push_back({.name = std::string(name) + "_tau2_sd",
                   .teacher = true,
                   .divergence = div,
                   .tau = 2.0,
                   .alpha = 0.3,
                   .self_distill = true});
    out.push_back({.name = std::string(name) + "_tau07_lora",
                   .teacher = true,
                   .divergence = div,
                   .tau = 0.7,
                   .alpha = 0.8,
                   .self_distill = true,
                   .R = 2});
  }
  out.push_back({.name = "lora_only", .R = 3});
  out.push_back({.name = "one_row_chunks",
                 .M = 5,
                 .chunk = 1,
                 .teacher = true,
                 .tau = 1.5,
                 .self_distill = true});
  out.push_back({.name = "chunk_larger_than_M",
                 .M = 4,
                 .chunk = 16,
                 .teacher = true,
                 .divergence = Divergence::reverse_kl,
                 .self_distill = true,
                 .R = 1});
  out.push_back({.name = "two_exits_uniform",
                 .E = 2,
                 .teacher = true,
                 .tau = 3.0,
                 .self_distill = true,
                 .weights = {0.5, 0.5}});
  // The CUDA kernels' cases: real widths, a teacher of another width, odd sizes with chunks that
  // do not divide M, adapters on the intermediate exits only.
  const ExitLossCase gpu = {.name = "", .lora_on_final = false, .fd_samples = 3};
  auto add = [&](ExitLossCase c) { out.push_back(std::move(c)); };
  ExitLossCase c = gpu;
  c.name = "forward_kl_tau2_3exits_sd_lora";
  c.M = 37, c.D = 40, c.V = 1001, c.chunk = 16, c.teacher = true, c.teacher_D = 48;
  c.tau = 2.0, c.alpha = 0.5, c.self_distill = true, c.R = 4;
  add(c);
  c = gpu;
  c.name = "reverse_kl_tau1_5_3exits_sd";
  c.M = 29, c.D = 64, c.V = 517, c.chunk = 8, c.teacher = true, c.teacher_D = 32;
  c.divergence = Divergence::reverse_kl, c.tau = 1.5, c.alpha = 0.7, c.self_distill = true;
  add(c);
  c = gpu;
  c.name = "tv_tau3_3exits_lora";
  c.M = 33, c.D = 48, c.V = 203, c.chunk = 32, c.teacher = true, c.teacher_D = 48;
  c.divergence = Divergence::tv, c.tau = 3.0, c.alpha = 0.4, c.R = 3;
  add(c);
  c = gpu;
  c.name = "no_teacher_sd_lora_odd";
  c.M = 21, c.D = 24, c.V = 97, c.chunk = 5, c.self_distill = true, c.R = 2;
  add(c);
  c = gpu;
  c.name = "one_exit_kd_long_rows";
  c.E = 1, c.M = 6, c.D = 32, c.V = 32003, c.chunk = 4, c.teacher = true, c.teacher_D = 40;
  c.tau = 2.0, c.weights = {1.0};
  add(c);
  c = gpu;
  c.name = "loss_only";
  c.M = 19, c.D = 40, c.V = 301, c.chunk = 7, c.teacher = true, c.teacher_D = 40;
  c.divergence = Divergence::reverse_kl, c.tau = 2.0, c.self_distill = true, c.R = 4;
  c.backward = false;
  add(c);
  c = gpu;
  c.name = "frozen_head_lora_only";
  c.M = 25, c.D = 40, c.V = 257, c.chunk = 9, c.self_distill = true, c.R = 4;
  c.frozen_head = true;
  add(c);
  // Final logit soft-capping: the exits' cap and the teacher's own, small enough to saturate.
  out.push_back({.name = "softcap_tv_sd_lora",
                 .teacher = true,
                 .divergence = Divergence::tv,
                 .tau = 1.5,
                 .alpha = 0.4,
                 .self_distill = true,
                 .R = 2,
                 .softcap = 0.8,
                 .teacher_softcap = 0.5});
  out.push_back({.name = "softcap_reverse_kl_student_only",
                 .teacher = true,
                 .divergence = Divergence::reverse_kl,
                 .tau = 2.0,
                 .softcap = 0.5});
  c = gpu;
  c.name = "softcap_forward_kl_3exits_sd_lora";
  c.M = 37, c.D = 40, c.V = 1001, c.chunk = 16, c.teacher = true, c.teacher_D = 48;
  c.tau = 2.0, c.alpha = 0.5, c.self_distill = true, c.R = 4;
  c.softcap = 2.0, c.teacher_softcap = 1.5;
  add(c);
  return out;
}
namespace exit_loss_tol {
inline constexpr Tolerance kCpuLossF64{1e-12, 0, "fp64 total against long double full logits"};
inline constexpr Tolerance kCpuCeF64{1e-12, 1e-14, "fp64 per-exit CE against long double"};
inline constexpr Tolerance kCpuDivergenceF64{1e-11, 1e-14,
                                             "fp64 KD / SD: differences of log-probabilities"};
inline constexpr Tolerance kCpuF32{1e-5, 0, "fp32 total against fp64"};
inline constexpr Tolerance kCpuChunk{1e-11, 1e-14,
                                     "fp64 gradients over other chunk sizes: BLAS blocking"};
inline constexpr Tolerance kCudaLoss{1e-4, 0,
                                     "relative on the total and the weighted CE: fp32 logits, "
                                     "fp32 exp/log per row, double sums over rows"};
inline constexpr Tolerance kCudaTerm{2e-3, 1e-4,
                                     "KD, SD and each exit's means, relative with an absolute "
                                     "floor: small differences of fp32 log-probabilities"};
inline constexpr Tolerance kCudaGradient{1.5e-2, 0,
                                         "dlogits and the LoRA's u = h A^T are stored in bf16 "
                                         "before the GEMMs that read them"};
// The CPU bf16 backend runs the CUDA scheme (ops/cpu_bf16/exit_loss.cpp): the same argument for
// every entry. Largest measured on the table: dW 2.1e-3, dA 3.6e-3, dB 4.5e-3, dh 5.5e-3 (bf16
// dlogits and u, then dh's own rounding of start + update).
inline constexpr const Tolerance& kCpuBf16Loss = kCudaLoss;
inline constexpr const Tolerance& kCpuBf16Term = kCudaTerm;
inline constexpr const Tolerance& kCpuBf16Dh = kCudaGradient;
inline constexpr const Tolerance& kCpuBf16Grad = kCudaGradient;
}  // namespace exit_loss_tol

}  // namespace rrt::testing::op_cases
