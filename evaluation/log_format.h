// Numbers of the progress line and the evaluation reports that need more than a printf format.
#pragma once

#include <cstdint>
#include <string>

namespace rrt {

// A perplexity with `decimals` decimals, in scientific notation from 1e5 on (an untrained or
// diverged model's 1.7e+38 would otherwise print 39 digits): "8.17", "1.234e+05", "inf".
std::string format_perplexity(double ppl, int decimals = 2);

// "512 KiB", "1.50 GiB".
std::string format_bytes(int64_t bytes);

// The throughput part of the progress line: "21.7 GFLOP/s (teacher 61%) | MFU 40.1% | peak mem
// 1.20 GiB", each part only where it applies (teacher_fraction > 0, mfu > 0, peak_rss >= 0).
std::string throughput_text(double gflops, double teacher_fraction, double mfu, int64_t peak_rss);

// The dense bf16 peak in TFLOP/s of a GPU named `device_name` (cuda_device_name): H100 and
// H200 989, A100 312; 0 for anything else (no MFU is logged then; log.peak_tflops sets it).
double table_peak_tflops(const std::string& device_name);

}  // namespace rrt
