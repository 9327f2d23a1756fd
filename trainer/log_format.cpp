#include "trainer/log_format.h"

#include <cmath>
#include <cstdio>

namespace rrt {

std::string format_perplexity(double ppl, int decimals) {
  if (std::isnan(ppl)) return "nan";
  if (std::isinf(ppl)) return ppl > 0 ? "inf" : "-inf";
  char buf[48];
  if (std::fabs(ppl) >= 1e5)
    std::snprintf(buf, sizeof buf, "%.3e", ppl);
  else
    std::snprintf(buf, sizeof buf, "%.*f", decimals, ppl);
  return buf;
}

double table_peak_tflops(const std::string& name) {
  // The same figures as bench/gpu_train.cpp's table by compute capability (SXM, dense bf16).
  if (name.find("H100") != std::string::npos || name.find("H200") != std::string::npos)
    return 989.0;
  if (name.find("A100") != std::string::npos) return 312.0;
  return 0.0;
}

}  // namespace rrt
