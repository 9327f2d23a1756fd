// rrt train CONFIG [key=value ...]   (under mpirun/srun: data-parallel, docs/distributed.md)
#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "config/config_io.h"
#include "distributed/communicator.h"
#include "trainer/shutdown.h"
#include "trainer/trainer.h"

namespace rrt::cli {

void add_train_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("train", "Train (or resume) a run described by a YAML config");
  auto config = std::make_shared<std::string>();
  auto overrides = std::make_shared<std::vector<std::string>>();
  cmd->add_option("config", *config, "YAML run config (see configs/ and docs/configs.md)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("overrides", *overrides,
                  "key=value overrides, e.g. optim.lr=1e-3 train.steps=500");
  auto profile = std::make_shared<int64_t>(0);
  cmd->add_flag("--profile{3}", *profile,
                "write a Chrome trace of N steps (default 3, from the second step) to "
                "<run_dir>/profile_rank<r>.json; the same as log.profile_steps=N");
  cmd->footer(
      "The run directory (train.run_dir) receives config.yaml, metrics.jsonl and checkpoints.\n"
      "An existing run directory with checkpoints is resumed (checkpoint.resume=false starts "
      "over; checkpoint.existing says what happens to the old checkpoints).\n"
      "SIGTERM, SIGINT or SIGUSR1 finish the current step, write a checkpoint and exit with "
      "status 3;\na second signal exits at once (docs/runs.md).");
  cmd->callback([config, overrides, profile] {
    std::shared_ptr<Communicator> comm = make_communicator();
    StopSignals signals;  // from here on a signal ends training after a step, with a checkpoint
    bool stopped = false;
    try {
      std::vector<std::string> all = *overrides;
      if (*profile > 0) all.push_back("log.profile_steps=" + std::to_string(*profile));
      Trainer trainer(load_run_config(*config, all), comm);
      const TrainSummary s = trainer.run();
      stopped = s.stopped_by_signal != 0;
      if (comm->is_root() && stopped) {
        std::printf(
            "stopped by %s after step %ld: checkpoint %s written; rerun the same "
            "command to resume (exit status %d)\n",
            s.stopped_by_signal > 0 ? signal_name(s.stopped_by_signal) : "a signal to another rank",
            static_cast<long>(s.last_step), s.last_checkpoint.c_str(), kExitStoppedOnSignal);
      } else if (comm->is_root()) {
        std::printf("done: steps %ld..%ld in %.1f s, last checkpoint %s\n",
                    static_cast<long>(s.first_step), static_cast<long>(s.last_step), s.seconds,
                    s.last_checkpoint.c_str());
      }
      std::fflush(stdout);
    } catch (const std::exception& e) {
      if (comm->world_size() == 1) throw;  // main reports it
      // The other ranks may be waiting in a collective for this one: end them all, now.
      std::fflush(stdout);
      std::fprintf(stderr, "rrt: rank %d of %d: %s\nrrt: aborting all %d ranks\n", comm->rank(),
                   comm->world_size(), e.what(), comm->world_size());
      comm->abort(1);
    }
    // main returns the code (CLI11 prints nothing for it); MPI is finalised as on success.
    if (stopped) throw CLI::RuntimeError(kExitStoppedOnSignal);
  });
}

}  // namespace rrt::cli
