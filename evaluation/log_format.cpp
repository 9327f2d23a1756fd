#include "evaluation/log_format.h"

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

std::string format_bytes(int64_t bytes) {
  char buf[32];
  const double b = static_cast<double>(bytes);
  if (bytes < 0)
    return "unknown";
  else if (bytes < 1024)
    std::snprintf(buf, sizeof buf, "%ld B", static_cast<long>(bytes));
  else if (bytes < (int64_t{1} << 20))
    std::snprintf(buf, sizeof buf, "%.0f KiB", b / 1024);
  else if (bytes < (int64_t{1} << 30))
    std::snprintf(buf, sizeof buf, "%.1f MiB", b / 1048576);
  else
    std::snprintf(buf, sizeof buf, "%.2f GiB", b / 1073741824);
  return buf;
}

std::string throughput_text(double gflops, double teacher_fraction, double mfu, int64_t peak_rss) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.1f GFLOP/s", gflops);
  std::string s = buf;
  if (teacher_fraction > 0) {
    std::snprintf(buf, sizeof buf, " (teacher %.0f%%)", 100.0 * teacher_fraction);
    s += buf;
  }
  if (mfu > 0) {
    std::snprintf(buf, sizeof buf, " | MFU %.1f%%", 100.0 * mfu);
    s += buf;
  }
  if (peak_rss >= 0) s += " | peak mem " + format_bytes(peak_rss);
  return s;
}

double table_peak_tflops(const std::string& name) {
  // The same figures as bench/gpu_train.cpp's table by compute capability (SXM, dense bf16).
  if (name.find("H100") != std::string::npos || name.find("H200") != std::string::npos)
    return 989.0;
  if (name.find("A100") != std::string::npos) return 312.0;
  return 0.0;
}

}  // namespace rrt
