// checkpoint_diff A.h5 B.h5 TOLERANCE: compares the parameters of two checkpoints of one model
// (relative L2 difference per tensor, the worst reported) and their training state (step, data
// cursor or a mixture's per-source counts, tokens seen: exactly). Exit 0 when everything is within TOLERANCE, 1 otherwise.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "checkpoint/checkpoint.h"
#include "config/config_io.h"
#include "model/parameters.h"

namespace {

rrt::CheckpointContents load(const std::string& path, rrt::ParameterSet& params) {
  return rrt::load_checkpoint(path, params, nullptr);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: checkpoint_diff A.h5 B.h5 TOLERANCE\n");
    return 2;
  }
  try {
    const std::string a_path = argv[1], b_path = argv[2];
    const double tolerance = std::atof(argv[3]);
    const rrt::RunConfig config =
        rrt::parse_run_config(rrt::read_checkpoint_header(a_path).config_yaml, a_path);
    rrt::ParameterSet a(config.model, rrt::ParameterSet::Grads::without);
    rrt::ParameterSet b(config.model, rrt::ParameterSet::Grads::without);
    const rrt::CheckpointContents ca = load(a_path, a), cb = load(b_path, b);
    const rrt::TrainState sa = ca.state, sb = cb.state;
    bool ok = true;
    if (ca.mixture_counts != cb.mixture_counts) {  // a mixture's cursor (data.sources)
      std::printf("mixture cursor differs: %zu / %zu sources", ca.mixture_counts.size(),
                  cb.mixture_counts.size());
      for (size_t i = 0; i < ca.mixture_counts.size() && i < cb.mixture_counts.size(); ++i)
        std::printf(", %ld/%ld", long(ca.mixture_counts[i]), long(cb.mixture_counts[i]));
      std::printf("\n");
      ok = false;
    }
    if (sa.step != sb.step || sa.adam_step != sb.adam_step || sa.data_epoch != sb.data_epoch ||
        sa.data_index != sb.data_index || sa.tokens_seen != sb.tokens_seen) {
      std::printf("state differs: step %ld/%ld, cursor (%ld, %ld)/(%ld, %ld), tokens %ld/%ld\n",
                  long(sa.step), long(sb.step), long(sa.data_epoch), long(sa.data_index),
                  long(sb.data_epoch), long(sb.data_index), long(sa.tokens_seen),
                  long(sb.tokens_seen));
      ok = false;
    }
    double worst = 0, worst_abs = 0;
    std::string worst_name;
    for (int i = 0; i < a.registry().size(); ++i) {
      const float *x = a.value(i), *y = b.value(i);
      double diff = 0, norm = 0;
      for (int64_t j = 0; j < a.numel(i); ++j) {
        const double d = static_cast<double>(x[j]) - y[j];
        diff += d * d;
        norm += static_cast<double>(y[j]) * y[j];
        worst_abs = std::max(worst_abs, std::abs(d));
      }
      const double relative = std::sqrt(diff / std::max(norm, 1e-30));
      if (relative > worst) {
        worst = relative;
        worst_name = a.registry()[i].name;
      }
    }
    std::printf("parameters: worst relative L2 difference %.3e (%s), max abs difference %.3e\n",
                worst, worst_name.c_str(), worst_abs);
    if (worst > tolerance) ok = false;
    return ok ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "checkpoint_diff: %s\n", e.what());
    return 2;
  }
}
