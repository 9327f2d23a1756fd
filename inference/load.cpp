#include "inference/load.h"

#include "checkpoint/model_source.h"
#include "core/error.h"
#include "inference/cpu_bf16_engine.h"
#include "inference/cpu_engine.h"
#include "inference/device_engine.h"
#include "model/cpu_bf16_model.h"

namespace rrt::inference {

ServedModel load_served_model(const std::string& checkpoint, const EngineCapacity& capacity,
                              const std::string& tokenizer, const std::string& device,
                              const std::string& asked_precision) {
  const std::string precision =
      asked_precision == "auto" ? (device == "cuda" ? "bf16" : "fp32") : asked_precision;
  RRT_CHECK(device == "cpu" || device == "cuda", "--device", "'", device,
            "' is not a device: use cpu or cuda");
  RRT_CHECK(precision == "fp32" || precision == "bf16", "--precision", "'", precision,
            "' is not a precision: use auto, fp32 or bf16");
  RRT_CHECK(device == "cpu" || precision == "bf16", "--precision",
            "the cuda engine computes in bf16 only; use --precision bf16");
  std::string why;
  RRT_CHECK(device == "cuda" || precision == "fp32" || cpu_bf16_supported(&why), "--precision",
            "bf16 on the cpu: ", why, "; use --precision fp32");
  ServedModel m;
  m.checkpoint = load_model_source(checkpoint);  // .h5, HF directory or .gguf
  const ModelWeights w = bind_weights(m.checkpoint.config.model, *m.checkpoint.params);
  if (device == "cuda")
    m.engine = make_device_engine(w, *m.checkpoint.params, capacity);
  else if (precision == "bf16")
    m.engine = make_cpu_bf16_engine(w, *m.checkpoint.params, capacity);
  else
    m.engine = std::make_unique<CpuEngine>(w, capacity);
  if (tokenizer != "none") {
    m.tokenizer =
        make_tokenizer(tokenizer.empty() ? m.checkpoint.config.data.tokenizer : tokenizer);
    check_tokenizer_fits_model(*m.tokenizer, m.checkpoint.config.model.model.vocab, checkpoint);
  }
  return m;
}

}  // namespace rrt::inference
