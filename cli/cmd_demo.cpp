// rrt demo: the paper's pipeline in miniature on the embedded public-domain corpus
// (cli/demo_pipeline.h, docs/demo.md): a full-size teacher, its recursive and relaxed
// conversions uptrained with distillation beside a from-scratch model of the same size, early-
// exit post-training, and a table of validation perplexity per exit.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "cli/demo_pipeline.h"

#ifndef RRT_SOURCE_DIR
#define RRT_SOURCE_DIR "."
#endif

namespace rrt::cli {

void add_demo_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "demo",
      "The paper's pipeline in miniature on the embedded corpus: train a full-size teacher, "
      "convert it to recursive and relaxed models, uptrain them with distillation beside a "
      "from-scratch model, post-train early exits, print validation perplexity per exit");
  struct Opts {
    std::string source = RRT_SOURCE_DIR, out, precision = "auto";
    uint64_t seed = 1;
    bool quick = false;
    int64_t teacher_steps = 0, steps = 0, post_steps = 0;
    std::vector<std::string> overrides;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("--source", o->source, "rrt source tree (holds data/corpus and configs/)")
      ->capture_default_str();
  cmd->add_option("--out", o->out,
                  "the run tree; a rerun skips finished stages (default runs/demo, with --quick "
                  "runs/demo-quick; -bf16 appended with --precision bf16)");
  cmd->add_flag("--quick", o->quick, "a few steps of every stage (seconds; for tests)");
  cmd->add_option("--seed", o->seed, "train.seed and data.seed of every stage")
      ->capture_default_str();
  cmd->add_option("--teacher-steps", o->teacher_steps, "steps of the teacher (default 300)");
  cmd->add_option("--steps", o->steps,
                  "uptraining steps of every converted model and the from-scratch one "
                  "(default 150)");
  cmd->add_option("--post-steps", o->post_steps, "early-exit post-training steps (default 100)");
  cmd->add_option("--precision", o->precision,
                  "train.precision of every stage and of the evaluation: auto (fp32 on cpu), "
                  "fp32 or bf16 (on cpu the bf16 backend: AVX512_BF16 or AMX)")
      ->check(CLI::IsMember({"auto", "fp32", "bf16"}))
      ->capture_default_str();
  cmd->add_option("overrides", o->overrides,
                  "key=value overrides for every stage, e.g. train.threads=2");
  cmd->callback([o] {
    DemoPlan plan = o->quick ? DemoPlan::quick_plan() : DemoPlan{};
    plan.source = o->source;
    plan.out = !o->out.empty() ? o->out : o->quick ? "runs/demo-quick" : "runs/demo";
    // Another precision is another plan (plan.json refuses it in the same tree).
    if (o->out.empty() && o->precision == "bf16") plan.out += "-bf16";
    plan.precision = o->precision;
    plan.seed = o->seed;
    if (o->teacher_steps > 0) plan.teacher_steps = o->teacher_steps;
    if (o->steps > 0) plan.student_steps = o->steps;
    if (o->post_steps > 0) plan.post_steps = o->post_steps;
    plan.overrides = o->overrides;
    run_demo_pipeline(plan);
  });
}

}  // namespace rrt::cli
