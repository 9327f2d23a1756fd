// The frozen teacher of distillation (distill.teacher): an rrt checkpoint (.h5, its model from
// the config stored inside it), a Hugging Face model directory (config.json + safetensors) or a
// GGUF file, opened by checkpoint/model_source.h as `rrt convert` reads them, planned forward only
// for micro-batches of up to N x T tokens.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "model/recursive_model.h"

namespace rrt {

// Throws rrt::Error naming distill.teacher when the path is neither, cannot be read, or its
// model cannot take sequences of T tokens. The vocabulary is checked by set_teacher.
// `planned`, if given, sees the teacher once its memory is planned and before its weights are
// read (the trainer's memory check, trainer/memory_check.h); it may throw.
std::unique_ptr<RecursiveModel> load_teacher(
    const std::string& path, int64_t N, int64_t T,
    const std::function<void(const RecursiveModel&)>& planned = {});

}  // namespace rrt
