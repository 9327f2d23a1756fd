// Early-exit serving on one GPU (inference/device_engine.h): the throughput of static, continuous
// sequence-wise and continuous depth-wise batching for the TinyLlama-shaped relaxed model
// (bench/tinyllama.h: B = 11 x K = 2, LoRA r = 64) with random weights, through the same
// run_serve_bench as `rrt serve-bench` (medians over interleaved repeats, the paper-style theory
// from the run's own exit distribution and fitted per-call latency beside each measurement).
// Random weights do not say when to exit (their oracle is almost always the last loop), so the
// exit settings besides none and oracle are drawn at stated distributions (drawn:P1,P2): the
// schedulers are measured at the exit rates a trained model would have.
//   bench_gpu_serve [--requests N] [--max-batch B] [--prompt A-B] [--output A-B]
//                   [--repeats R] [--exits none,oracle,drawn:0.5,0.5,...] (as rrt serve-bench)
// Prints the markdown table of rrt serve-bench and one RESULT line per exit setting.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "bench/tinyllama.h"
#include "core/device.h"
#include "inference/device_engine.h"
#include "inference/serve_bench.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  int64_t requests = 64, max_batch = 32;
  int64_t prompt_min = 32, prompt_max = 256, output_min = 32, output_max = 256;
  int repeats = 3;
  std::string exits = "none,oracle,drawn:0.5,0.5,drawn:0.8,0.2";
};

void parse_range(const char* s, int64_t& lo, int64_t& hi) {
  const char* dash = std::strchr(s, '-');
  lo = std::atoll(s);
  hi = dash ? std::atoll(dash + 1) : lo;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    if (k == "--requests")
      o.requests = std::atoll(argv[i + 1]);
    else if (k == "--max-batch")
      o.max_batch = std::atoll(argv[i + 1]);
    else if (k == "--prompt")
      parse_range(argv[i + 1], o.prompt_min, o.prompt_max);
    else if (k == "--output")
      parse_range(argv[i + 1], o.output_min, o.output_max);
    else if (k == "--repeats")
      o.repeats = std::atoi(argv[i + 1]);
    else if (k == "--exits")
      o.exits = argv[i + 1];
    else {
      std::fprintf(stderr, "unknown option %s\n", argv[i]);
      return 2;
    }
  }
  if (rrt::cuda_device_count() == 0) {
    std::printf("RESULT serve \"no GPU visible\" skipped\n");
    return 0;
  }
  try {
    const rrt::ModelSpec spec = rrt::bench::tinyllama(true);
    const auto t0 = Clock::now();
    rrt::ParameterSet host(spec, rrt::ParameterSet::Grads::without);
    rrt::bench::fill_weights(host);
    const rrt::inference::EngineCapacity cap =
        rrt::inference::capacity_for_batch(o.max_batch, o.prompt_max + o.output_max);
    const auto engine =
        rrt::inference::make_device_engine(rrt::inference::bind_weights(spec, host), host, cap);
    std::printf("tinyllama relaxed B=11 K=2 r=64 on %s: setup %.1f s\n",
                rrt::cuda_device_name(0).c_str(),
                std::chrono::duration<double>(Clock::now() - t0).count());
    rrt::inference::WorkloadOptions w;
    w.requests = o.requests;
    w.prompt_min = o.prompt_min;
    w.prompt_max = o.prompt_max;
    w.output_min = o.output_min;
    w.output_max = o.output_max;
    const rrt::inference::Workload work = rrt::inference::make_workload(w, spec.model.vocab);
    rrt::inference::BenchOptions b;
    b.exits = rrt::inference::parse_exit_settings(o.exits);
    b.max_batch = o.max_batch;
    b.repeats = o.repeats;
    b.verbose = true;
    const rrt::inference::BenchReport r = rrt::inference::run_serve_bench(*engine, work, b);
    std::printf("%s\n", rrt::inference::bench_markdown(r).c_str());
    for (const rrt::inference::ExitResult& e : r.results) {
      double st = 0, sq = 0, dw = 0, st_t = 0, sq_t = 0, dw_t = 0, loops = 0;
      for (const auto& s : e.schedulers) {
        const double tps = s.median_tokens_per_second, t = s.theory_block_seconds;
        if (s.batching == rrt::inference::Batching::static_batch) st = tps, st_t = t;
        if (s.batching == rrt::inference::Batching::sequence_wise) sq = tps, sq_t = t;
        if (s.batching == rrt::inference::Batching::depth_wise)
          dw = tps, dw_t = t, loops = s.mean_loops;
      }
      std::printf(
          "RESULT serve \"%s\" depth_tokens_per_s=%.0f x_static=%.2f x_sequence=%.2f "
          "theory_x_static=%.2f theory_x_sequence=%.2f mean_loops=%.2f\n",
          e.exit.label().c_str(), dw, dw / st, dw / sq, st_t / dw_t, sq_t / dw_t, loops);
    }
  } catch (const std::exception& e) {
    std::printf("RESULT serve FAILED: %s\n", e.what());
    return 1;
  }
  return 0;
}
