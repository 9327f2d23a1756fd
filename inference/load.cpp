#include "inference/load.h"

namespace rrt::inference {

ServedModel load_served_model(const std::string& checkpoint, const EngineCapacity& capacity,
                              const std::string& tokenizer) {
  ServedModel m;
  m.checkpoint = load_checkpoint_model(checkpoint);
  m.engine = std::make_unique<Engine>(bind_weights(m.checkpoint.config.model, *m.checkpoint.params),
                                      capacity);
  if (tokenizer != "none")
    m.tokenizer =
        make_tokenizer(tokenizer.empty() ? m.checkpoint.config.data.tokenizer : tokenizer);
  return m;
}

}  // namespace rrt::inference
