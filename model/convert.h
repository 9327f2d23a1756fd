// Converting a plain (full-depth) model into a recursive or relaxed recursive one
// (docs/method.md §1 and §2, docs/conversion.md).
//
// The original model is a ModelSpec with recursion {block_layers = L, loops = 1} and no LoRA.
// The result has B = L / K block layers run K times with the chosen sharing pattern; each block
// layer is initialised from original layers by an InitRule, and (when a LoRA rank is set) every
// unrolled position gets LoRA initialised from the SVD of what the tying lost.
//
// Choices where the method is silent:
// - SEQUENCE + stepwise uses the same linspace selection round(linspace(0, L-1, B)) as CYCLE
//   (equally spaced layers, first and last kept); the selected layer need not lie in the block
//   layer's tied group.
// - Lower / upper take the first / last layer of the tied group. For CYCLE this is original layer
//   b / L - B + b ("the last B layers"); for SEQUENCE b*K / b*K + K - 1.
// - Random takes one layer of the tied group, drawn from CounterRng(seed, stream = b).
// - Norms and biases (NeoX) follow the same rule as the weights (average: element-wise mean),
//   tied per block layer; with ConvertOptions::per_loop_norms each position instead keeps its
//   original norms and biases. LoRA relaxes weights only (docs/method.md §1.2), so full rank
//   reproduces an original whose layers differ in norms or biases only with per_loop_norms.
// - The output LoRA uses alpha = 0 (scale s = 1), so B = U_r S_r and A = V_r^T.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/parameters.h"

namespace rrt {

enum class InitRule { stepwise, average, lower, upper, random };
// How a position's LoRA starts. svd (the paper's): B = U_r S_r / s, A = V_r^T from the truncated
// SVD of what tying lost (s = alpha / r), so all of S sits in B; svd_balanced: the same product
// with the singular values split evenly, B = U_r (S_r / s)^(1/2), A = (S_r / s)^(1/2) V_r^T.
// Under Adam, which moves every element by about the learning rate, a large B makes B dA move the
// product several times faster than the tied weight moves (docs/results.md measures 3x on
// SmolLM2); balancing shrinks that. zero: B = 0, A random (the ablation baseline).
enum class LoraInit { svd, svd_balanced, zero };
// The names `rrt convert --lora-init` and a sweep's convert.lora_init take, in enum order.
const std::vector<std::string>& lora_init_names();
// The same names as error messages list them: "svd, svd_balanced or zero".
std::string lora_init_choices();
// "svd", "svd_balanced" or "zero"; throws rrt::Error naming the choices otherwise.
LoraInit parse_lora_init(const std::string& name);

struct ConvertOptions {
  int64_t loops = 2;  // K; must divide L
  Sharing sharing = Sharing::cycle;
  InitRule init = InitRule::stepwise;
  int64_t rank_attention = 0;  // LoRA rank of q, k, v, o (0: none; capped per projection)
  int64_t rank_mlp = 0;        // LoRA rank of gate, up, down (0: none; capped)
  LoraInit lora_init = LoraInit::svd;
  uint64_t seed = 1;            // random init rule and zero-init A
  bool per_loop_norms = false;  // keep each position's original norms and biases
  // Called after each unit of work with (done, total, what): every block layer once its tied
  // tensors are set (total B), then, with SVD-initialised LoRA, every unrolled position once its
  // truncated SVDs are done (total B + L). done counts 1..total. The SVDs of a large model run
  // for minutes; `rrt convert` prints these as progress lines (core/progress.h).
  std::function<void(int64_t done, int64_t total, const std::string& what)> progress = nullptr;
};

// Which original layers feed block layer b (outer index b = 0..B-1): stepwise, lower, upper and
// random give one layer, average the whole tied group (in ascending order).
std::vector<std::vector<int64_t>> init_sources(int64_t L, int64_t B, Sharing sharing, InitRule rule,
                                               uint64_t seed = 1);

// The tied group of block layer b: the original layers (= unrolled positions) it serves.
std::vector<int64_t> tied_group(int64_t L, int64_t B, Sharing sharing, int64_t b);

struct Converted {
  ModelSpec spec;
  std::unique_ptr<ParameterSet> params;
};

// Builds the recursive / relaxed model (values only: ParameterSet::Grads::without). Throws
// rrt::Error when the original is not a plain model or K does not divide L. Ranks are capped per
// projection at min(in, out) (ModelSpec::lora_rank), so a rank >= every dimension gives full rank.
Converted convert_to_recursive(const ModelSpec& original_spec, const ParameterSet& original,
                               const ConvertOptions& options);

std::string to_string(InitRule r);
// The names `rrt convert --init` and a sweep's convert.init take (to_string of each rule).
const std::vector<std::string>& init_rule_names();
// The same names as error messages list them: "stepwise, average, lower, upper, random".
std::string init_rule_choices();
// The rule named so; throws rrt::Error naming the choices otherwise.
InitRule parse_init_rule(const std::string& name);

}  // namespace rrt
