// A CPU build's device engine: the factory says why there is none.
#include "core/error.h"
#include "inference/device_engine.h"

namespace rrt::inference {

bool device_engine_compiled() { return false; }

std::unique_ptr<Engine> make_device_engine(const ModelWeights&, const ParameterSet&,
                                           const EngineCapacity&) {
  RRT_FAIL("Engine",
           "device cuda: this rrt was built without CUDA (-DRRT_CUDA=OFF); rebuild "
           "with the CUDA toolkit to serve on a GPU, or use device cpu");
}

}  // namespace rrt::inference
