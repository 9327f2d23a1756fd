#include "cli/convert_score.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "data/loader.h"
#include "data/prepare.h"
#include "data/shard_set.h"
#include "evaluation/exit_model.h"
#include "evaluation/log_format.h"
#include "model/recursive_model.h"

namespace rrt::cli {

namespace {

namespace fs = std::filesystem;

// The shards to score: opts.path itself, or its text tokenised once into opts.text_shards.
std::string score_shards(const ScoreOptions& o) {
  if (fs::is_directory(o.path) && fs::exists(fs::path(o.path) / kShardSetManifest)) return o.path;
  if (fs::is_regular_file(o.path) && fs::path(o.path).extension() == ".h5") return o.path;
  if (fs::exists(fs::path(o.text_shards) / kShardSetManifest)) return o.text_shards;  // a rerun
  RRT_CHECK(!o.tokenizer.empty(), "rrt convert --score", o.path,
            " is text, and the converted model names no tokenizer (data.tokenizer) to "
            "tokenise it with; tokenise it with rrt prepare --tokenizer ... and pass the shards");
  PrepareOptions p;
  p.inputs = {o.path};
  p.out_dir = o.text_shards;
  p.tokenizer = o.tokenizer;
  p.progress = false;
  const PrepareSummary s = prepare_shards(p);
  std::printf("score: tokenised %s into %s (%ld tokens)\n", o.path.c_str(), o.text_shards.c_str(),
              static_cast<long>(s.tokens));
  return o.text_shards;
}

ExitEvaluation score(const ModelSpec& spec, const ParameterSet& values, TokenLoader& val, int64_t N,
                     int64_t T, int64_t batches) {
  RecursiveModel model(spec, ModelCapacity{.max_batch = N, .max_seq = T});
  const ParamRegistry& to = model.params().registry();
  RRT_CHECK(to.size() == values.registry().size(), "rrt convert --score",
            "the model's parameters do not match its spec (", values.registry().size(), " vs ",
            to.size(), ")");
  for (int i = 0; i < to.size(); ++i) {
    RRT_CHECK(to[i].name == values.registry()[i].name, "rrt convert --score", "parameter ", i,
              " is ", values.registry()[i].name, ", expected ", to[i].name);
    std::memcpy(model.params().value(i), values.value(i),
                static_cast<size_t>(values.numel(i)) * sizeof(float));
  }
  // The evaluator and batches of rrt eval (evaluation/eval_report.cpp), on the same tokens.
  ExitEvaluator evaluator(model, {});
  std::vector<int32_t> inputs(N * T), targets(N * T);
  val.restore({0, 0});
  for (int64_t b = 0; b < batches; ++b) {
    val.next_batch(N, inputs.data(), targets.data());
    evaluator.add_batch(inputs.data(), targets.data(), N, T);
  }
  return evaluator.result();
}

std::string millions(int64_t n) {
  char b[32];
  std::snprintf(b, sizeof b, "%.2f M", static_cast<double>(n) / 1e6);
  return b;
}

std::string pct(double x) {
  char b[32];
  std::snprintf(b, sizeof b, "%.1f%%", 100 * x);
  return b;
}

}  // namespace

ConversionScore score_conversion(const ModelSpec& original_spec, const ParameterSet& original,
                                 const ModelSpec& converted_spec, const ParameterSet& converted,
                                 const ScoreOptions& o) {
  ConversionScore s;
  s.data = score_shards(o);
  s.batches = o.batches;
  s.seq_len = std::min<int64_t>(
      o.seq_len, std::min(original_spec.model.max_seq_len, converted_spec.model.max_seq_len));
  s.micro_batch = o.micro_batch;
  s.val_fraction = o.val_fraction;
  s.eval_overrides = o.eval_overrides;
  s.original_params = original.registry().total_numel();
  s.converted_params = converted.registry().total_numel();
  s.original_layers = original_spec.positions();
  s.loops = converted_spec.recursion.loops;
  s.block_layers = converted_spec.recursion.block_layers;
  const int64_t N = s.micro_batch, T = s.seq_len;
  TokenLoader val(LoaderOptions{s.data, T, s.val_fraction, o.data_seed, 0, 1}, Split::validation);
  RRT_CHECK(val.vocab_size() <= converted_spec.model.vocab, "rrt convert --score", "the data at ",
            s.data, " has a vocabulary of ", val.vocab_size(), " but the model only ",
            converted_spec.model.vocab, "; tokenise it with the model's tokenizer");
  RRT_CHECK(val.sequences() >= N * s.batches, "rrt convert --score", "the validation split of ",
            s.data, " holds ", val.sequences(), " sequences of ", T, " tokens, fewer than ",
            s.batches, " micro-batches of ", N,
            "; give more text, or lower --score-batches or --score-seq-len");
  s.original = score(original_spec, original, val, N, T, s.batches);
  s.converted = score(converted_spec, converted, val, N, T, s.batches);
  return s;
}

std::string conversion_score_text(const ConversionScore& s, const std::string& checkpoint) {
  std::ostringstream t;
  const double orig = s.original.exits.back().perplexity;
  t << "score: " << s.original.tokens << " tokens, the first " << s.batches << " micro-batches of "
    << s.micro_batch << " x " << s.seq_len << " of the validation split (" << pct(s.val_fraction)
    << ") of " << s.data << ", on the CPU in fp32:\n";
  t << "  original: " << s.original_layers << " layers, " << millions(s.original_params)
    << " parameters: perplexity " << format_perplexity(orig) << " (loss "
    << s.original.exits.back().loss << ")\n";
  t << "  converted: " << s.loops << " loops of " << s.block_layers << " block layers, "
    << millions(s.converted_params) << " parameters ("
    << pct(static_cast<double>(s.converted_params) / static_cast<double>(s.original_params))
    << " of the original's):\n";
  for (const ExitScore& e : s.converted.exits) {
    const bool last = &e == &s.converted.exits.back();
    t << "    exit " << e.loop << (last ? " (final)" : "") << ", " << e.loop * s.block_layers
      << " layers: perplexity " << format_perplexity(e.perplexity) << " (loss " << e.loss << "), "
      << format_perplexity(e.perplexity / orig) << " x the original's\n";
  }
  t << "  the same tokens with rrt eval: rrt eval " << checkpoint << " --data " << s.data
    << " --batches " << s.batches << " train.seq_len=" << s.seq_len
    << " train.micro_batch=" << s.micro_batch << " data.val_fraction=" << s.val_fraction
    << s.eval_overrides << "\n";
  t << "note: a converted model scores far worse than its original before uptraining, and that is\n"
       "  expected, not a bug: tying layers replaces each one by a shared block (and a truncated\n"
       "  LoRA only partly restores the difference), so the residual stream every later layer was\n"
       "  trained on is gone. SmolLM2-135M at K = 3 with SVD LoRA rank 64 scores about 1e7-1e10\n"
       "  against the original's 7-50 (docs/results.md).\n"
       "  Uptraining (rrt train on the written config, best with distill.teacher set to the\n"
       "  original) is what recovers quality; full rank with --per-loop-norms reproduces the\n"
       "  original exactly. docs/conversion.md, \"What a conversion does to quality\".\n";
  return t.str();
}

std::string conversion_score_json(const ConversionScore& s) {
  using json = nlohmann::ordered_json;
  auto exits = [](const ExitEvaluation& e) {
    json a = json::array();
    for (const ExitScore& x : e.exits)
      a.push_back({{"loop", x.loop}, {"loss", x.loss}, {"perplexity", x.perplexity}});
    return a;
  };
  json j{{"data", s.data},
         {"batches", s.batches},
         {"seq_len", s.seq_len},
         {"micro_batch", s.micro_batch},
         {"val_fraction", s.val_fraction},
         {"tokens", s.original.tokens},
         {"original",
          {{"layers", s.original_layers},
           {"parameters", s.original_params},
           {"loss", s.original.exits.back().loss},
           {"perplexity", s.original.exits.back().perplexity}}},
         {"converted",
          {{"loops", s.loops},
           {"block_layers", s.block_layers},
           {"parameters", s.converted_params},
           {"parameter_fraction",
            static_cast<double>(s.converted_params) / static_cast<double>(s.original_params)},
           {"exits", exits(s.converted)}}}};
  return j.dump(1);
}

}  // namespace rrt::cli
