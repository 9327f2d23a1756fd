// Numbers of the progress line and the evaluation reports that need more than a printf format.
#pragma once

#include <string>

namespace rrt {

// A perplexity with `decimals` decimals, in scientific notation from 1e5 on (an untrained or
// diverged model's 1.7e+38 would otherwise print 39 digits): "8.17", "1.234e+05", "inf".
std::string format_perplexity(double ppl, int decimals = 2);

// The dense bf16 peak in TFLOP/s of a GPU named `device_name` (cuda_device_name): H100 and
// H200 989, A100 312; 0 for anything else (no MFU is logged then; log.peak_tflops sets it).
double table_peak_tflops(const std::string& device_name);

}  // namespace rrt
