// The rrt command. Subcommands arrive with their issues; today: demo.
// This is the only place that turns exceptions into exit codes.
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include "cli/demo.h"
#include "core/device.h"

namespace {

void usage() {
  std::puts(
      "rrt - Recursive and Relaxed Recursive Transformers\n"
      "\n"
      "usage: rrt <command> [options]\n"
      "\n"
      "commands:\n"
      "  demo [--steps N]   train a small relaxed recursive model on an embedded text\n"
      "  version            print the version and the backends this build has\n"
      "\n"
      "rrt <command> --help shows a command's options.");
}

}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
      usage();
      return argc < 2 ? 2 : 0;
    }
    const std::string cmd = argv[1];
    if (cmd == "version" || cmd == "--version") {
      std::printf("rrt 0.1.0 (CPU%s)\n", rrt::cuda_compiled() ? ", CUDA" : "");
      return 0;
    }
    if (cmd == "demo") {
      rrt::DemoOptions opt;
      for (int i = 2; i < argc; ++i) {
        if (!std::strcmp(argv[i], "--steps") && i + 1 < argc) {
          opt.steps = std::stoi(argv[++i]);
        } else if (!std::strcmp(argv[i], "--help")) {
          std::puts("usage: rrt demo [--steps N]\n\nTrains a 2-layer x 2-loop relaxed recursive "
                    "Llama (LoRA rank 8) on bytes of an embedded text and prints the loss.");
          return 0;
        } else {
          std::fprintf(stderr, "rrt demo: unknown option '%s' (try rrt demo --help)\n", argv[i]);
          return 2;
        }
      }
      return rrt::run_demo(opt);
    }
    std::fprintf(stderr, "rrt: unknown command '%s' (try rrt --help)\n", cmd.c_str());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rrt: %s\n", e.what());
    return 1;
  }
}
