// rrt export CHECKPOINT --out DIR [--force]
// Writes DIR/config.json + DIR/model.safetensors: a Hugging Face LlamaForCausalLM of the
// unrolled model (K * B layers, each position's LoRA merged into its weights), fp32.
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "cli/commands.h"
#include "core/error.h"
#include "model/hf_export.h"
#include "model/parameters.h"
#include "trainer/checkpoint.h"
#include "trainer/config_io.h"

namespace rrt::cli {

namespace {

struct ExportOpts {
  std::string checkpoint, out;
  bool force = false;
};

// Reads the model described by a checkpoint's embedded run config and loads its weights.
std::pair<ModelSpec, std::unique_ptr<ParameterSet>> load_model_from_checkpoint(
    const std::string& path) {
  const CheckpointContents header = read_checkpoint_header(path);
  // Export needs the model sections only. The training-only checks between fields (seq_len
  // within max_seq_len, the byte tokenizer's vocabulary, the device) are set aside, so a
  // checkpoint whose training settings no longer fit its model still exports.
  const RunConfig run =
      parse_run_config(header.config_yaml, path + ":/config",
                       {"train.seq_len=1", "train.device=cpu", "data.tokenizer=unused.model"});
  auto params = std::make_unique<ParameterSet>(run.model);
  load_checkpoint(path, *params, nullptr);
  return {run.model, std::move(params)};
}

void run_export(const ExportOpts& o) {
  const auto t0 = std::chrono::steady_clock::now();
  // Fail before reading a large checkpoint (export_hf checks again, and checks writability).
  std::error_code ec;
  RRT_CHECK(o.force || !std::filesystem::is_directory(o.out, ec) ||
                std::filesystem::is_empty(o.out, ec),
            "export " + o.out, "is not empty; choose a new or empty directory, or pass --force "
            "to replace config.json and model.safetensors there");
  std::printf("reading %s\n", o.checkpoint.c_str());
  std::fflush(stdout);
  auto [spec, params] = load_model_from_checkpoint(o.checkpoint);
  std::printf("exporting %ld loops x %ld block layers (%s sharing, LoRA rank %ld/%ld) as %ld "
              "HF layers\n",
              static_cast<long>(spec.recursion.loops),
              static_cast<long>(spec.recursion.block_layers),
              to_string(spec.recursion.sharing).c_str(),
              static_cast<long>(spec.lora.rank_attention), static_cast<long>(spec.lora.rank_mlp),
              static_cast<long>(spec.positions()));
  std::fflush(stdout);
  export_hf(spec, *params, o.out, o.force);
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("wrote %s/config.json and %s/model.safetensors in %.1f s\n", o.out.c_str(),
              o.out.c_str(), secs);
}

}  // namespace

void add_export_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "export",
      "Export an rrt checkpoint as an HF LlamaForCausalLM directory of the unrolled model\n"
      "(K*B layers; each position's LoRA merged into its weights; fp32). Load it with\n"
      "transformers' AutoModelForCausalLM.from_pretrained(DIR) or rrt convert --from DIR.");
  auto o = std::make_shared<ExportOpts>();
  cmd->add_option("checkpoint", o->checkpoint, "rrt checkpoint (.h5) written by train/convert")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--out", o->out, "output directory (created; must be empty unless --force)")
      ->required();
  cmd->add_flag("--force", o->force,
                "write into a non-empty directory, replacing config.json and model.safetensors");
  cmd->callback([o] { run_export(*o); });
}

}  // namespace rrt::cli
