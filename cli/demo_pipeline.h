// rrt demo: the paper's pipeline in miniature (docs/demo.md). A full-size teacher trained on
// the embedded corpus is converted into a recursive model (stepwise, no LoRA) and relaxed ones
// (average + SVD LoRA at two ranks, and zero LoRA as the ablation); each is uptrained with
// knowledge distillation from the teacher for the same steps as a from-scratch model of the
// recursive model's size; one relaxed model is then post-trained for early exits (aggressive
// and uniform weights, with self-distillation). Every model is scored per exit on the same
// validation tokens and the demo prints one table.
//
// The run tree (DemoPlan::out): data/, teacher/, convert/<arm>.h5, <arm>/ runs, eval/<row>.json,
// plan.json (what the tree was made with), stages.json (seconds per stage), results.json and
// results.md. A rerun skips every finished stage and resumes an interrupted one.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace rrt::cli {

struct DemoPlan {
  std::string source;  // rrt source tree: data/corpus/demo.jsonl and configs/demo.yaml
  std::string out;     // the run tree
  uint64_t seed = 1;   // train.seed and data.seed of every stage (the post-training data seed
                       // is seed + 1000: new tokens)
  int64_t teacher_steps = 300;
  int64_t student_steps = 150;  // uptraining, every arm alike (the from-scratch model too)
  int64_t post_steps = 100;     // early-exit post-training
  int64_t student_micro_batch = 8;
  int64_t seq_len = 128;
  int64_t loops = 2;                     // K of every converted model
  std::vector<int64_t> ranks = {4, 32};  // relaxed: average + SVD LoRA at each rank
  int64_t zero_rank = 32;                // relaxed: average + zero LoRA (B = 0) at this rank
  int64_t post_rank = 4;                 // the relaxed model that gets early-exit post-training
  int64_t eval_micro_batch = 16;         // every model is scored on the same
  int64_t eval_batches = 20;             // eval_batches x eval_micro_batch x seq_len tokens
  bool quick = false;                    // a few steps of everything (tests)
  // train.precision of every stage and of the evaluation (auto | fp32 | bf16): bf16 on the CPU
  // is the CPU bf16 backend, the teacher's distillation forward included.
  std::string precision = "auto";
  std::vector<std::string> overrides;  // key=value for every stage (e.g. train.threads=2)

  // The plan of --quick: the same stages, a few steps each on short sequences.
  static DemoPlan quick_plan();
};

// Runs (or resumes) the pipeline and prints the table; returns the table as markdown.
std::string run_demo_pipeline(const DemoPlan& plan);

}  // namespace rrt::cli
