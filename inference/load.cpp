#include "inference/load.h"

#include "core/error.h"
#include "inference/cpu_engine.h"
#include "inference/device_engine.h"

namespace rrt::inference {

ServedModel load_served_model(const std::string& checkpoint, const EngineCapacity& capacity,
                              const std::string& tokenizer, const std::string& device) {
  RRT_CHECK(device == "cpu" || device == "cuda", "--device", "'", device,
            "' is not a device: use cpu or cuda");
  ServedModel m;
  m.checkpoint = load_checkpoint_model(checkpoint);
  const ModelWeights w = bind_weights(m.checkpoint.config.model, *m.checkpoint.params);
  if (device == "cuda")
    m.engine = make_device_engine(w, *m.checkpoint.params, capacity);
  else
    m.engine = std::make_unique<CpuEngine>(w, capacity);
  if (tokenizer != "none")
    m.tokenizer =
        make_tokenizer(tokenizer.empty() ? m.checkpoint.config.data.tokenizer : tokenizer);
  return m;
}

}  // namespace rrt::inference
