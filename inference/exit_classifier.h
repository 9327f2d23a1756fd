// A small learned exit classifier (CALM, Schuster et al. 2022; docs/inference.md, "The
// classifier exit"): per loop end k < K, a probe that reads the token's state through the shared
// final norm (the head's input) and the saturation cosine of that loop, and predicts whether the
// exit at loop k already agrees with the full-depth argmax (CALM's "consistency" oracle). The
// scheduler exits a token at the first loop whose probability reaches the threshold; the
// features come from the decode call itself (Engine::run_stage_saturation), so no
// vocabulary-sized head runs for a token that stays.
//
// A probe over features x [F] (F = D + 1: the normed state, then the cosine):
//   hidden 0 (a linear probe): z = w1 . x + b1
//   hidden H:                  z = w2 . tanh(W1 x + b1) + b2      W1 [H, F], b1 [H], w2 [H]
//   p = sigmoid(z)
// The file (safetensors) names the model it belongs to (ModelIdentity: shape and a CRC-32 of
// every weight); loading it for another model is an error. Training: inference/
// exit_classifier_train.h, `rrt exit-classifier train` (cli/cmd_exit_classifier.cpp).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"

namespace rrt {
class ParameterSet;
}

namespace rrt::inference {

// What a classifier says about the model whose states it was trained on.
struct ModelIdentity {
  int64_t loops = 0, block_layers = 0, d_model = 0, vocab = 0, parameters = 0;
  uint32_t weights_crc32 = 0;  // zlib CRC-32 of every parameter's fp32 values, registry order
  bool operator==(const ModelIdentity&) const = default;
  std::string describe() const;
};

// The identity of a model: its shape and a CRC-32 over its weights (one pass over the values;
// ~0.2 s for a 135M-parameter model).
ModelIdentity model_identity(const ModelSpec& spec, const ParameterSet& params);

// One loop end's probe (the formulas above). w1 [max(H, 1), F], b1 [max(H, 1)], w2 [H].
template <typename T>
struct ProbeParams {
  int64_t features = 0, hidden = 0;
  std::vector<T> w1, b1, w2;
  T b2 = 0;
  void resize(int64_t f, int64_t h);  // zeros
  int64_t size() const { return static_cast<int64_t>(w1.size() + b1.size() + w2.size()) + 1; }
};

// z of one example x [F]; no allocation.
template <typename T>
T probe_logit(const ProbeParams<T>& p, const T* x);

// Mean binary cross-entropy of sigmoid(z) against labels y (0 or 1) over n examples x [n, F],
// plus 0.5 * l2 * (|w1|^2 + |w2|^2) (weights, not biases). With grad (shaped as p), adds the
// gradient of that loss into it. Returns the loss.
template <typename T>
T probe_loss(const ProbeParams<T>& p, const T* x, const T* y, int64_t n, double l2,
             ProbeParams<T>* grad);

class ExitClassifier {
 public:
  ModelIdentity model;
  std::string checkpoint;                  // the file it was trained from (informational)
  std::string report;                      // the training report (JSON), kept in the file
  std::vector<ProbeParams<float>> probes;  // loops 1..K-1 (index k - 1), features D + 1

  int64_t loops() const { return model.loops; }
  int64_t hidden() const { return probes.empty() ? 0 : probes[0].hidden; }
  // P(exit at `loop` agrees with the full depth) for a state through the final norm [D] and its
  // saturation cosine; loop in 1..K-1. No allocation.
  double probability(int64_t loop, const float* normed_state, double similarity) const;
  // Throws naming `file` and both identities when the classifier belongs to another model.
  void check_model(const ModelIdentity& served, const std::string& file) const;
};

// Safetensors: loop.{k}.w1, .b1, .w2 (hidden > 0), .b2 for k = 1..K-1; the identity, the hidden
// size, the feature list, the source checkpoint and the report in the metadata. Atomic.
void save_exit_classifier(const std::string& path, const ExitClassifier& c);
// Checks the format (its metadata, every tensor's shape) and, when `served` is given, the model.
ExitClassifier load_exit_classifier(const std::string& path);
ExitClassifier load_exit_classifier(const std::string& path, const ModelIdentity& served);

}  // namespace rrt::inference
