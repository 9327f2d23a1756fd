// Child processes for the sweep launchers: fork + exec with extra environment variables, the
// output sent to a file or captured. POSIX only (Linux, macOS).
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace rrt {

struct ProcessResult {
  int exit_code = -1;   // the child's exit status; -1 when killed by a signal
  int signal = 0;       // the signal that ended it, else 0
  std::string output;   // captured stdout + stderr (capture mode only)
  bool started = true;  // false: a stop signal had come before the child was started
};

// Runs argv[0] (a path, or a name looked up in PATH) with argv[1..], the environment of this
// process plus `env`. Output: appended to `log_path` when it is not empty, else captured.
// on_start(pid) is called in the parent once the child exists. Throws rrt::Error when the
// program cannot be started.
//
// While a StopSignals(StopMode::forward_to_child) lives (trainer/shutdown.h), the child runs in
// a process group of its own and is registered as the one the stop signals are passed on to,
// from the moment it exists until it has exited; when a stop signal came before the start,
// nothing is started (`started` false).
ProcessResult run_process(const std::vector<std::string>& argv,
                          const std::vector<std::pair<std::string, std::string>>& env,
                          const std::string& log_path,
                          const std::function<void(int)>& on_start = {});

// "a b" -> 'a b': a word the shell reads back as it is (plain words stay as they are).
std::string shell_quote(const std::string& word);

}  // namespace rrt
