// rrt export CHECKPOINT --out DIR|FILE [--format hf|gguf] [--dtype fp32|bf16] [--force]
// hf: DIR/config.json + DIR/model.safetensors (+ generation_config.json): a Hugging Face
// LlamaForCausalLM, GemmaForCausalLM, GPTNeoXForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM,
// Gemma3ForCausalLM or Gemma2ForCausalLM of the unrolled model (K * B layers, each position's
// LoRA merged into its weights), plus the tokenizer files of the checkpoint's data.tokenizer, so
// that transformers and lm-evaluation-harness can use DIR as it is. gguf: FILE, llama.cpp's
// format (llama, qwen2, gemma, gemma3).
#include <yaml-cpp/yaml.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "checkpoint/checkpoint_config.h"
#include "cli/commands.h"
#include "config/config_io.h"
#include "core/durable_file.h"
#include "core/error.h"
#include "core/gguf.h"
#include "data/bpe_tokenizer.h"
#include "data/spm_tokenizer.h"
#include "data/tokenizer.h"
#include "data/tokenizer_json.h"
#include "model/gguf_export.h"
#include "model/hf_export.h"
#include "model/parameters.h"

namespace rrt::cli {

namespace {

struct ExportOpts {
  std::string checkpoint, out;
  std::string format = "hf", dtype = "fp32";
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

// The tokenizer a checkpoint was trained with (data.tokenizer in its config), if it is a file.
std::filesystem::path tokenizer_of(const std::string& checkpoint) {
  const CheckpointContents header = read_checkpoint_header(checkpoint);
  const YAML::Node config =
      YAML::Load(resolve_launch_relative_paths(header.config_yaml, header.launch_dir));
  const YAML::Node tok = config["data"] ? config["data"]["tokenizer"] : YAML::Node();
  if (!tok || !tok.IsScalar() || tok.as<std::string>() == "byte") return {};
  return tok.as<std::string>();
}

// Copies the tokenizer file (a SentencePiece tokenizer.model or an HF tokenizer.json) and the HF
// tokenizer files beside it into out_dir.
void copy_tokenizer_files(std::filesystem::path tokenizer, const std::string& out_dir) {
  namespace fs = std::filesystem;
  if (tokenizer.empty()) {
    std::printf("no tokenizer files copied: the checkpoint uses the byte tokenizer\n");
    return;
  }
  std::error_code ec;
  // data.tokenizer naming an HF checkpoint folder: the file rrt reads there.
  if (fs::is_directory(tokenizer, ec)) {
    tokenizer = fs::exists(tokenizer / "tokenizer.model", ec) ||
                        !fs::exists(tokenizer / "tokenizer.json", ec)
                    ? tokenizer / "tokenizer.model"
                    : tokenizer / "tokenizer.json";
  }
  if (!fs::is_regular_file(tokenizer, ec)) {
    std::printf(
        "warning: tokenizer %s (data.tokenizer) not found; copy the tokenizer files into "
        "%s by hand\n",
        tokenizer.c_str(), out_dir.c_str());
    return;
  }
  if (tokenizer.extension() == ".gguf") {
    // The vocabulary lives in the GGUF's metadata (copying a whole model file beside the
    // export would help no one): written out as tokenizer.json and tokenizer_config.json, a
    // byte-level BPE one ("gpt2") or a SentencePiece one ("llama").
    try {
      std::string json_text, config_text;
      const GgufFile file(tokenizer.string());
      if (file.has("tokenizer.ggml.model") && file.get_string("tokenizer.ggml.model") == "llama") {
        const SpmVocab vocab = spm_vocab_from_gguf(file);
        json_text = tokenizer_json_from_spm(vocab);
        config_text = tokenizer_config_from_spm(vocab);
      } else {
        const BpeVocab vocab = bpe_vocab_from_gguf(file);
        json_text = tokenizer_json_from_bpe(vocab);
        config_text = tokenizer_config_from_bpe(vocab);
      }
      for (const auto& [name, text] : {std::pair{"tokenizer.json", &json_text},
                                       std::pair{"tokenizer_config.json", &config_text}}) {
        const fs::path dst = fs::path(out_dir) / name;
        write_file_atomically(dst.string(), *text);
        std::printf("wrote %s (from the tokenizer of %s)\n", dst.c_str(), tokenizer.c_str());
      }
    } catch (const Error& e) {
      std::printf(
          "tokenizer not copied: rrt cannot write the tokenizer of %s as tokenizer.json "
          "(%s); load it with transformers' AutoTokenizer.from_pretrained(dir, "
          "gguf_file=name)\n",
          tokenizer.c_str(), e.what());
    }
    return;
  }
  const fs::path dir = tokenizer.parent_path().empty() ? fs::path(".") : tokenizer.parent_path();
  std::vector<fs::path> copied;
  for (const fs::path& f : {tokenizer, dir / "tokenizer.json", dir / "tokenizer_config.json",
                            dir / "special_tokens_map.json"}) {
    if (!fs::is_regular_file(f, ec)) continue;
    // A tokenizer.json data.tokenizer is also the tokenizer.json beside itself.
    if (std::find(copied.begin(), copied.end(), fs::weakly_canonical(f)) != copied.end()) continue;
    copied.push_back(fs::weakly_canonical(f));
    const bool sp_model = f == tokenizer && f.extension() == ".model";
    const fs::path dst =
        fs::path(out_dir) / (sp_model ? fs::path("tokenizer.model") : f.filename());
    fs::copy_file(f, dst, fs::copy_options::overwrite_existing);
    std::printf("copied %s -> %s\n", f.c_str(), dst.c_str());
  }
}

// The tokenizer's BOS and EOS ids for config.json and generation_config.json, when rrt can load
// it; -1 otherwise (a line says why).
std::pair<int32_t, int32_t> token_ids(const std::filesystem::path& tokenizer) {
  try {
    const auto t = make_tokenizer(tokenizer.empty() ? "byte" : tokenizer.string());
    return {t->bos_id(), t->eos_id()};
  } catch (const Error& e) {
    std::printf("no bos/eos ids written: the tokenizer cannot be loaded (%s)\n", e.what());
    return {-1, -1};
  }
}

void run_gguf_export(const ExportOpts& o, const ModelSpec& spec, const ParameterSet& params) {
  GgufExportOptions options;
  options.dtype = o.dtype == "bf16" ? DType::bf16 : DType::f32;
  options.name = std::filesystem::path(o.checkpoint).stem().string();
  const std::filesystem::path tokenizer = tokenizer_of(o.checkpoint);
  if (tokenizer.extension() == ".gguf")
    options.tokenizer_gguf = tokenizer.string();
  else
    std::printf(
        "no tokenizer in the GGUF file: the checkpoint's tokenizer (%s) is not a GGUF "
        "one; llama.cpp needs tokenizer.* keys to run the file\n",
        tokenizer.empty() ? "byte" : tokenizer.c_str());
  export_gguf(spec, params, o.out, options);
}

void run_export(const ExportOpts& o) {
  const auto t0 = std::chrono::steady_clock::now();
  const bool gguf = o.format == "gguf";
  // Fail before reading a large checkpoint (the exports check again, and check writability).
  std::error_code ec;
  if (gguf)
    RRT_CHECK(o.force || !std::filesystem::exists(o.out, ec), "export " + o.out,
              "exists; choose a new file name, or pass --force to replace it");
  else
    RRT_CHECK(o.force || !std::filesystem::is_directory(o.out, ec) ||
                  std::filesystem::is_empty(o.out, ec),
              "export " + o.out,
              "is not empty; choose a new or empty directory, or pass --force "
              "to replace config.json and model.safetensors there");
  std::printf("reading %s\n", o.checkpoint.c_str());
  std::fflush(stdout);
  auto [spec, params] = load_model_from_checkpoint(o.checkpoint);
  std::printf(
      "exporting %ld loops x %ld block layers (%s sharing, LoRA rank %ld/%ld) as %ld "
      "plain layers, %s, %s\n",
      static_cast<long>(spec.recursion.loops), static_cast<long>(spec.recursion.block_layers),
      to_string(spec.recursion.sharing).c_str(), static_cast<long>(spec.lora.rank_attention),
      static_cast<long>(spec.lora.rank_mlp), static_cast<long>(spec.positions()),
      gguf ? "GGUF" : "HF", o.dtype.c_str());
  std::fflush(stdout);
  if (gguf) {
    run_gguf_export(o, spec, *params);
  } else {
    // INCOMPLETE marks the directory until every file is written (core/durable_file.h): an
    // export that fails or is killed half-way is refused by rrt's readers (convert, the teacher).
    std::filesystem::create_directories(o.out, ec);
    RRT_CHECK(!ec, "export " + o.out, "cannot create the directory (", ec.message(), ")");
    mark_output_incomplete(o.out, "rrt export");
    HfExportOptions options{.overwrite = true,  // emptiness was checked above
                            .dtype = o.dtype == "bf16" ? DType::bf16 : DType::f32};
    std::tie(options.bos_id, options.eos_id) = token_ids(tokenizer_of(o.checkpoint));
    export_hf(spec, *params, o.out, options);
    copy_tokenizer_files(tokenizer_of(o.checkpoint), o.out);
    mark_output_complete(o.out);
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (gguf)
    std::printf("wrote %s in %.1f s\n", o.out.c_str(), secs);
  else
    std::printf("wrote %s/config.json and %s/model.safetensors in %.1f s\n", o.out.c_str(),
                o.out.c_str(), secs);
}

}  // namespace

void add_export_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "export",
      "Export an rrt checkpoint as an HF directory (Llama, Gemma, GPT-NeoX, Qwen2, Qwen3, Gemma 3\n"
      "or Gemma 2, as trained) or a GGUF file (llama, qwen2, gemma, gemma3) of the unrolled model\n"
      "(K*B layers; each position's LoRA merged into its weights; fp32 or bf16). The HF\n"
      "directory gets the checkpoint's tokenizer files and bos/eos ids (config.json,\n"
      "generation_config.json); "
      "load it with transformers' AutoModelForCausalLM.from_pretrained(DIR) or rrt convert\n"
      "--from DIR. The GGUF file gets a GGUF tokenizer's keys; llama.cpp and rrt read it.");
  auto o = std::make_shared<ExportOpts>();
  cmd->add_option("checkpoint", o->checkpoint, "rrt checkpoint (.h5) written by train/convert")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--out", o->out,
                  "output directory (hf: created; must be empty unless --force) or file (gguf)")
      ->required();
  cmd->add_option("--format", o->format, "hf (a transformers directory) or gguf (llama.cpp)")
      ->check(CLI::IsMember({"hf", "gguf"}))
      ->capture_default_str();
  cmd->add_option("--dtype", o->dtype,
                  "fp32, or bf16 (weights rounded to nearest even; GGUF keeps 1-D tensors fp32)")
      ->check(CLI::IsMember({"fp32", "bf16"}))
      ->capture_default_str();
  cmd->add_flag("--force", o->force,
                "replace an existing GGUF file, or write into a non-empty directory, replacing "
                "config.json and model.safetensors");
  cmd->callback([o] { run_export(*o); });
}

}  // namespace rrt::cli
