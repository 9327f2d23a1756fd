// The rrt command: git-style subcommands (CLI11). The only place that turns exceptions into
// exit codes: 0 success, 1 an error (printed as "rrt: [where] what"), 2 bad usage, 3 `rrt train`
// stopped on a signal after writing a checkpoint (trainer/shutdown.h; CLI::RuntimeError(3)).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <exception>

#include "cli/commands.h"
#include "core/device.h"
#include "ops/blas_kernels.h"
#include "ops/cpu_bf16/gemm.h"

int main(int argc, char** argv) {
  rrt::ops::select_openblas_kernels(argv);  // may re-execute rrt with OPENBLAS_CORETYPE set
  CLI::App app{
      "rrt - train and serve Recursive and Relaxed Recursive Transformers\n"
      "Docs: docs/method.md, docs/demo.md, docs/runs.md, docs/configs.md,\n"
      "      docs/data.md, docs/conversion.md, docs/distillation.md,\n"
      "      docs/distributed.md, docs/evaluation.md, docs/sweeps.md,\n"
      "      docs/inference.md"};
  app.require_subcommand(1);
  // A callback: naming the bf16 path creates a oneDNN primitive, which only --version should pay.
  app.set_version_flag("--version", [] {
    return std::string("rrt 0.1.0 (CPU") + (rrt::cuda_compiled() ? ", CUDA" : "") +
           "; OpenBLAS kernels " + rrt::ops::openblas_core() +
           ")\nbf16: " + rrt::ops::cpu_bf16::gemm_path();
  });
  rrt::cli::add_train_command(app);
  rrt::cli::add_eval_command(app);
  rrt::cli::add_prepare_command(app);
  rrt::cli::add_config_command(app);
  rrt::cli::add_demo_command(app);
  rrt::cli::add_convert_command(app);
  rrt::cli::add_export_command(app);
  rrt::cli::add_sweep_command(app);
  rrt::cli::add_plot_command(app);
  rrt::cli::add_plot_exits_command(app);
  rrt::cli::add_generate_command(app);
  rrt::cli::add_serve_bench_command(app);
  rrt::cli::add_serve_command(app);
  rrt::cli::add_exit_classifier_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // app.exit prints the help, the version or the usage error; its codes are CLI11's own (106
    // for a missing option, 109 for an extra argument, ...), not the documented 2. A
    // RuntimeError carries rrt's code (3 after a signal), and help or --version is a success.
    const int code = app.exit(e);
    if (code == 0 || dynamic_cast<const CLI::RuntimeError*>(&e) != nullptr) return code;
    return 2;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "rrt: %s\n", e.what());
    std::fflush(stderr);
    // Skip exit handlers: after a failed write HDF5 may hold a file it cannot close, and its
    // own atexit cleanup would crash on it. Everything rrt wrote is already closed or removed.
    std::_Exit(1);
  }
  return 0;
}
