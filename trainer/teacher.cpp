#include "trainer/teacher.h"

#include "checkpoint/checkpoint_config.h"
#include "checkpoint/model_source.h"
#include "config/config_io.h"
#include "core/error.h"

namespace rrt {

namespace {

std::unique_ptr<RecursiveModel> plan_teacher(const ModelSpec& spec, int64_t N, int64_t T,
                                             const std::string& path) {
  RRT_CHECK(T <= spec.model.max_seq_len, "distill.teacher", "the teacher at ", path,
            " serves sequences of at most ", spec.model.max_seq_len, " tokens, but train.seq_len ",
            "is ", T, "; shorten train.seq_len");
  return std::make_unique<RecursiveModel>(
      spec, ModelCapacity{.max_batch = N, .max_seq = T, .forward_only = true});
}

}  // namespace

std::unique_ptr<RecursiveModel> load_teacher(
    const std::string& path, int64_t N, int64_t T,
    const std::function<void(const RecursiveModel&)>& planned) {
  // An rrt checkpoint, an HF directory or a GGUF file (checkpoint/model_source.h). The config
  // first, so the teacher is planned, and `planned` runs, before any weight takes memory.
  model_source_kind(path, "distill.teacher");  // a path none of them is: what is accepted
  const CheckpointContents header = read_model_source_header(path);
  // The stored config is the teacher run's resolved config (for an HF directory or GGUF file,
  // its plain model's); its model sections are the teacher.
  const RunConfig config = checkpoint_run_config(header, path + " (/config)");
  auto teacher = plan_teacher(config.model, N, T, path);
  if (planned) planned(*teacher);
  load_model_source_params(path, teacher->params());
  return teacher;
}

}  // namespace rrt
