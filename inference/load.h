// A trained checkpoint ready to serve: its run config (the model sections describe the model,
// data.tokenizer the tokenizer), its weights (values only) and an engine over them.
#pragma once

#include <memory>
#include <string>

#include "checkpoint/checkpoint.h"
#include "data/tokenizer.h"
#include "inference/engine.h"

namespace rrt::inference {

struct ServedModel {
  CheckpointModel checkpoint;  // config, weights, training state
  std::unique_ptr<Engine> engine;
  std::unique_ptr<Tokenizer> tokenizer;  // null unless asked for
};

// capacity.max_seq 0: the model's max_seq_len (the KV cache is slots x max_seq per position:
// ask for what the requests need). tokenizer: "" the run's data.tokenizer, "none" skip it.
// device: "cpu" (CpuEngine; with precision "bf16" the CPU bf16 engine,
// inference/cpu_bf16_engine.h) or "cuda" (the GPU engine, inference/device_engine.h; bf16 only).
// precision "auto": fp32 on cpu, bf16 on cuda.
ServedModel load_served_model(const std::string& checkpoint, const EngineCapacity& capacity,
                              const std::string& tokenizer = "", const std::string& device = "cpu",
                              const std::string& precision = "auto");

}  // namespace rrt::inference
