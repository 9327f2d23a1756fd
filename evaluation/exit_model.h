// The model `rrt eval` scores, on the backend the run chose (train.device): a forward over a
// batch, then any loop end's exit logits for rows of that batch, a chunk of rows at a time.
// The evaluators (evaluation/exit_eval.h, evaluation/multiple_choice.h) see only this, so every
// backend of the one model code (model/recursive_core.h) is evaluated by the same statistics.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "model/config.h"

namespace rrt {

class RecursiveModel;

class ExitModel {
 public:
  virtual ~ExitModel() = default;
  virtual const ModelSpec& spec() const = 0;
  // Forward over tokens [N, T] (host); the loop ends stay until the next call.
  virtual void forward_loop_ends(const int32_t* tokens, int64_t N, int64_t T) = 0;
  // Exit `loop` (1..K)'s fp32 logits of n <= chunk() rows of that batch (host row indices into
  // its N*T rows) into host `out` [n, V] (RecursiveCore::exit_logits).
  virtual void exit_logits(int64_t loop, const int32_t* rows, int64_t n, float* out) = 0;
  virtual int64_t chunk() const = 0;
  // Document-aware batches (RecursiveCore::set_document_eos): -1 off, else the EOS id.
  virtual void set_document_eos(int32_t eos) = 0;
  // "cpu", "cpu-bf16" or "cuda": where the model runs and in what (the report says so).
  virtual std::string device() const = 0;
};

// A view of a host model (tests, and callers that built one): it must outlive the view.
std::unique_ptr<ExitModel> exit_model_of(RecursiveModel& model);

// The checkpoint's parameters in a model of `spec` on `device` ("cpu" or "cuda"; train.device)
// in `precision` (train.precision: "bf16" on cpu is the CPU bf16 backend; otherwise the
// device's own), planned for batches of up to N x T tokens and logits chunks of `chunk` rows.
// Throws rrt::Error naming train.device (train.precision) when this build or machine has no
// such device (bf16 arithmetic).
std::unique_ptr<ExitModel> load_exit_model(const std::string& checkpoint, const ModelSpec& spec,
                                           int64_t N, int64_t T, int64_t chunk,
                                           const std::string& device,
                                           const std::string& precision = "auto");

}  // namespace rrt
