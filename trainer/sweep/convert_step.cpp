// prepare_run (trainer/sweep/sweep.h): a run's starting weights converted from a plain model, the way
// `rrt convert` makes them, from any of the sources a sweep may name.
#include <filesystem>
#include <map>

#include "core/durable_file.h"
#include "core/error.h"
#include "model/convert.h"
#include "model/gguf_import.h"
#include "model/hf_import.h"
#include "trainer/sweep/sweep.h"
#include "trainer/checkpoint.h"
#include "trainer/config_io.h"

namespace rrt {

namespace fs = std::filesystem;

namespace {

// convert.from: a run directory (its final checkpoint), an rrt checkpoint of a plain model,
// an HF directory or a GGUF file.
HfModel load_source(const std::string& from, const std::string& run) {
  const std::string where = run + ": convert.from";
  RRT_CHECK(fs::exists(from), where, from,
            " does not exist; if another sweep makes it (its `before:`), run that one first");
  std::string checkpoint = from;
  if (fs::is_directory(from) && fs::exists(fs::path(from) / "config.yaml") &&
      !fs::exists(fs::path(from) / "config.json")) {
    const RunConfig cfg = load_run_config((fs::path(from) / "config.yaml").string());
    checkpoint = checkpoint_path(from, cfg.train.steps);
    RRT_CHECK(fs::exists(checkpoint), where, "the run in ", from, " has not finished (no ",
              fs::path(checkpoint).filename().string(),
              "); train it first (the sweep that makes it, or rrt train ", from, "/config.yaml)");
  } else if (fs::path(from).extension() == ".gguf") {
    return load_gguf_model(from);
  } else if (fs::is_directory(from)) {
    refuse_incomplete_output(from, "export", "export it again (rrt export)");
    return load_hf_model(from);
  }
  const CheckpointContents header = read_checkpoint_header(checkpoint);
  const RunConfig cfg = parse_run_config(header.config_yaml, checkpoint + ":/config");
  RRT_CHECK(cfg.model.recursion.loops == 1 && cfg.model.lora.rank_attention == 0 &&
                cfg.model.lora.rank_mlp == 0,
            where, checkpoint, " is not a plain model (recursion.loops ", cfg.model.recursion.loops,
            ", LoRA ranks ", cfg.model.lora.rank_attention, "/", cfg.model.lora.rank_mlp,
            "); convert from the full-depth model");
  HfModel source;
  source.spec.model = cfg.model.model;
  source.spec.recursion = cfg.model.recursion;
  source.spec.lora = cfg.model.lora;
  source.params = std::make_unique<ParameterSet>(source.spec, ParameterSet::Grads::without);
  load_checkpoint(checkpoint, *source.params, nullptr);
  return source;
}

}  // namespace

bool prepare_run(const SweepRun& run) {
  if (!run.convert) return false;
  const fs::path init = fs::path(run.dir) / "init.h5";
  if (fs::exists(init) || !list_checkpoints(run.dir).empty()) return false;
  const ConvertStep& step = *run.convert;
  HfModel source = load_source(step.from, run.name);
  const ModelSpec& want = run.config.model;
  ConvertOptions c;
  c.loops = want.recursion.loops;
  c.sharing = want.recursion.sharing;
  static const std::map<std::string, InitRule> rules = {{"stepwise", InitRule::stepwise},
                                                        {"average", InitRule::average},
                                                        {"lower", InitRule::lower},
                                                        {"upper", InitRule::upper},
                                                        {"random", InitRule::random}};
  c.init = rules.at(step.init);
  c.rank_attention = want.lora.rank_attention;
  c.rank_mlp = want.lora.rank_mlp;
  c.lora_init = step.lora_init == "zero" ? LoraInit::zero : LoraInit::svd;
  c.seed = step.seed;
  c.per_loop_norms = want.recursion.per_loop_norms;
  Converted out = convert_to_recursive(source.spec, *source.params, c);

  // The converted model must be the run's model: compare the resolved texts.
  RunConfig made = run.config;
  made.model.model = out.spec.model;
  made.model.model.n_layers = source.spec.positions();
  made.model.recursion = out.spec.recursion;
  made.model.lora = out.spec.lora;
  const std::string made_yaml = to_yaml(made), want_yaml = to_yaml(run.config);
  if (made_yaml != want_yaml) {
    const auto [in_run, in_source] = first_config_difference(want_yaml, made_yaml);
    RRT_FAIL(run.name + ": convert.from", "the model converted from ", step.from,
             " differs from the run's model ('", in_run, "' in the run, '", in_source,
             "' converted); the sweep's base config must describe the same model, with the "
             "recursion and lora sections of the run (lora.alpha 0: conversion uses scale 1)");
  }
  fs::create_directories(run.dir);
  save_checkpoint(init.string(), want_yaml, *out.params, nullptr, {});
  return true;
}

}  // namespace rrt
