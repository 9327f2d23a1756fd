#include "cli/demo.h"

#include <chrono>
#include <cstdio>
#include <string_view>
#include <vector>

#include "core/rng.h"
#include "model/optimizer.h"
#include "model/recursive_model.h"

namespace rrt {

namespace {
// A few lines of public-domain text (Thoreau, "Walden"), read as bytes: the demo's corpus.
constexpr std::string_view kCorpus =
    "I went to the woods because I wished to live deliberately, to front only the essential "
    "facts of life, and see if I could not learn what it had to teach, and not, when I came to "
    "die, discover that I had not lived. I did not wish to live what was not life, living is so "
    "dear; nor did I wish to practise resignation, unless it was quite necessary. I wanted to "
    "live deep and suck out all the marrow of life, to live so sturdily and Spartan-like as to "
    "put to rout all that was not life, to cut a broad swath and shave close, to drive life into "
    "a corner, and reduce it to its lowest terms. Simplify, simplify. Our life is frittered "
    "away by detail. An honest man has hardly need to count more than his ten fingers. ";
}  // namespace

int run_demo(const DemoOptions& opt) {
  ModelSpec spec;
  spec.model = {.vocab = 256, .d_model = 64, .n_heads = 4, .n_kv_heads = 2, .ffn = 176,
                .max_seq_len = opt.seq_len};
  spec.recursion = {.block_layers = 2, .loops = 2, .sharing = Sharing::cycle};
  spec.lora = {.rank_attention = 8, .rank_mlp = 8};
  const int64_t N = opt.batch, T = opt.seq_len;
  RecursiveModel model(spec, {.max_batch = N, .max_seq = T});
  model.params().init({.seed = opt.seed});
  AdamW optimizer(model.params(), {.lr = opt.lr, .beta1 = 0.9, .beta2 = 0.95, .weight_decay = 0.1});

  std::printf("rrt demo: relaxed recursive Llama, %ld block layers x %ld loops, LoRA rank %ld\n",
              spec.recursion.block_layers, spec.recursion.loops, spec.lora.rank_attention);
  std::printf("          %.3f M parameters (%.3f M in LoRA), byte-level corpus of %zu bytes\n",
              model.params().registry().total_numel() / 1e6,
              (model.params().registry().numel_of(ParamKind::lora_a) +
               model.params().registry().numel_of(ParamKind::lora_b)) / 1e6,
              kCorpus.size());
  std::vector<int32_t> tokens(N * T), targets(N * T);
  const int64_t span = static_cast<int64_t>(kCorpus.size()) - T - 1;
  CounterRng rng(opt.seed, 99);
  auto t0 = std::chrono::steady_clock::now();
  double first = 0, loss = 0;
  for (int step = 1; step <= opt.steps; ++step) {
    for (int64_t n = 0; n < N; ++n) {  // random windows of the corpus
      const int64_t start = rng.below(step * N + n, static_cast<uint32_t>(span));
      for (int64_t t = 0; t < T; ++t) {
        tokens[n * T + t] = static_cast<unsigned char>(kCorpus[start + t]);
        targets[n * T + t] = static_cast<unsigned char>(kCorpus[start + t + 1]);
      }
    }
    model.params().zero_grads();
    loss = model.forward_backward(tokens.data(), targets.data(), N, T);
    optimizer.step();
    if (step == 1) first = loss;
    if (step == 1 || step % opt.log_every == 0 || step == opt.steps) {
      double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::printf("step %4d  loss %.4f  %.0f tokens/s\n", step, loss, step * N * T / secs);
    }
  }
  std::printf("loss %.3f -> %.3f (uniform over bytes would be %.3f)\n", first, loss, 5.545);
  return loss < first ? 0 : 1;
}

}  // namespace rrt
