#include "trainer/teacher.h"

#include <cstring>
#include <filesystem>

#include "checkpoint/checkpoint.h"
#include "config/config_io.h"
#include "core/durable_file.h"
#include "core/error.h"
#include "model/hf_import.h"

namespace rrt {

namespace fs = std::filesystem;

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
  RRT_CHECK(fs::exists(path), "distill.teacher", "'", path,
            "' does not exist; give an rrt checkpoint (.h5) or a Hugging Face model directory");
  if (fs::is_directory(path)) {
    RRT_CHECK(fs::exists(fs::path(path) / "config.json"), "distill.teacher", "the directory '",
              path, "' has no config.json: it is not a Hugging Face model directory");
    refuse_incomplete_output(path, "export", "export it again (rrt export)");
    // The plain model of config.json, as load_hf_model builds it: planned before the weights
    // are read, so that `planned` runs before any of them takes memory.
    ModelSpec spec;
    spec.model = read_hf_config(path);
    spec.recursion.block_layers = spec.model.n_layers;
    spec.recursion.loops = 1;
    validate(spec);
    auto teacher = plan_teacher(spec, N, T, path);
    if (planned) planned(*teacher);
    HfModel hf = load_hf_model(path);
    Arena& to = teacher->params().values_arena();
    const Arena& from = hf.params->values_arena();
    RRT_CHECK(to.total_bytes() == from.total_bytes(), "distill.teacher", "layout mismatch");
    std::memcpy(to.base(), from.base(), static_cast<size_t>(to.total_bytes()));
    return teacher;
  }
  const CheckpointContents header = read_checkpoint_header(path);
  // The stored config is the teacher run's resolved config; its model sections are the teacher.
  const RunConfig config = parse_run_config(header.config_yaml, path + " (/config)");
  auto teacher = plan_teacher(config.model, N, T, path);
  if (planned) planned(*teacher);
  load_checkpoint(path, teacher->params(), nullptr);
  return teacher;
}

}  // namespace rrt
