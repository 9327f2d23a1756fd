// prepare_run (trainer/sweep/sweep.h): a run's starting weights converted from a plain model, the
// way `rrt convert` makes them, from any of the sources a sweep may name. Runs whose conversions
// would be identical share one: it is made once into <sweep>/_converted/<key>.h5 and hard-linked
// as each run's init.h5.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>

#include "checkpoint/checkpoint.h"
#include "checkpoint/checkpoint_config.h"
#include "config/config_io.h"
#include "core/durable_file.h"
#include "core/error.h"
#include "core/progress.h"
#include "model/convert.h"
#include "model/gguf_import.h"
#include "model/hf_import.h"
#include "trainer/sweep/sweep.h"

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
  const RunConfig cfg = checkpoint_run_config(header, checkpoint + ":/config");
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

// 64-bit FNV-1a: a stable file name for a conversion's settings (not a security hash).
std::string fnv1a_hex(const std::string& text) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : text) h = (h ^ c) * 0x100000001b3ull;
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

// Hard link (no second copy on disk); a copy where the file system has no hard links.
void link_or_copy(const fs::path& from, const fs::path& to) {
  std::error_code ec;
  fs::create_hard_link(from, to, ec);
  if (!ec) return;
  const fs::path tmp = to.string() + ".tmp" + std::to_string(::getpid());
  fs::copy_file(from, tmp, fs::copy_options::overwrite_existing);
  fs::rename(tmp, to);
}

}  // namespace

std::string conversion_key_text(const SweepRun& run) {
  RRT_CHECK(run.convert.has_value(), run.name, "the run has no convert step");
  const ConvertStep& s = *run.convert;
  // Everything the converted weights depend on: the source, the rules and the model made
  // (loops, sharing, ranks, norms are in the run's model sections; the rest of the run's
  // config, its data and training, is not).
  RunConfig model_only;
  model_only.model = run.config.model;
  return "from: " + fs::absolute(s.from).lexically_normal().string() + "\ninit: " + s.init +
         "\nlora_init: " + s.lora_init + "\nseed: " + std::to_string(s.seed) + "\n" +
         to_yaml(model_only);
}

std::string shared_conversion_path(const SweepRun& run) {
  return (fs::path(run.dir).parent_path() / "_converted" /
          (fnv1a_hex(conversion_key_text(run)) + ".h5"))
      .string();
}

bool prepare_run(const SweepRun& run, bool* shared) {
  if (shared != nullptr) *shared = false;
  if (!run.convert) return false;
  const fs::path init = fs::path(run.dir) / "init.h5";
  if (fs::exists(init) || !list_checkpoints(run.dir).empty()) return false;
  const ConvertStep& step = *run.convert;
  const fs::path made_file = shared_conversion_path(run);
  if (fs::exists(made_file)) {  // another run of the sweep made the same conversion
    fs::create_directories(run.dir);
    link_or_copy(made_file, init);
    if (shared != nullptr) *shared = true;
    std::fprintf(stderr, "sweep: %s: shares the conversion %s\n", run.name.c_str(),
                 made_file.string().c_str());
    return true;
  }
  const auto t0 = ProgressClock::now();
  std::fprintf(stderr, "sweep: %s: converting %s (%s init, %s LoRA)\n", run.name.c_str(),
               step.from.c_str(), step.init.c_str(), step.lora_init.c_str());
  std::fflush(stderr);
  HfModel source;
  {
    Heartbeat beat("sweep: " + run.name + ": reading " + step.from);
    source = load_source(step.from, run.name);
  }
  std::fprintf(stderr, "sweep: %s: read the source in %s\n", run.name.c_str(),
               format_duration(seconds_since(t0)).c_str());
  const ModelSpec& want = run.config.model;
  ConvertOptions c;
  c.loops = want.recursion.loops;
  c.sharing = want.recursion.sharing;
  c.init = parse_init_rule(step.init);
  c.rank_attention = want.lora.rank_attention;
  c.rank_mlp = want.lora.rank_mlp;
  c.lora_init = parse_lora_init(step.lora_init);
  c.seed = step.seed;
  c.per_loop_norms = want.recursion.per_loop_norms;
  const auto t1 = ProgressClock::now();
  std::optional<ProgressMeter> meter;  // as rrt convert's: per block layer and position
  c.progress = [&](int64_t done, int64_t total, const std::string& what) {
    if (!meter) meter.emplace("sweep: " + run.name + ": converting", total);
    meter->step(done, what);
  };
  Converted out = [&] {
    Heartbeat beat("sweep: " + run.name + ": converting");
    return convert_to_recursive(source.spec, *source.params, c);
  }();
  std::fprintf(stderr, "sweep: %s: converted in %s\n", run.name.c_str(),
               format_duration(seconds_since(t1)).c_str());

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
  fs::create_directories(made_file.parent_path());
  save_checkpoint(made_file.string(), want_yaml, *out.params, nullptr, {});
  std::ofstream(fs::path(made_file).replace_extension(".txt")) << conversion_key_text(run);
  link_or_copy(made_file, init);
  std::fprintf(stderr, "sweep: %s: wrote %s in %s (shared by runs with the same conversion)\n",
               run.name.c_str(), made_file.string().c_str(),
               format_duration(seconds_since(t0)).c_str());
  std::fflush(stderr);
  return true;
}

}  // namespace rrt
