#include "trainer/sweep/process.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <optional>

#include "core/error.h"
#include "trainer/shutdown.h"

namespace rrt {

ProcessResult run_process(const std::vector<std::string>& argv,
                          const std::vector<std::pair<std::string, std::string>>& env,
                          const std::string& log_path, const std::function<void(int)>& on_start) {
  RRT_CHECK(!argv.empty(), "process", "no program to run");
  int out_fd = -1;
  int pipe_fds[2] = {-1, -1};
  if (!log_path.empty()) {
    out_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    RRT_CHECK(out_fd >= 0, log_path, "cannot open the log: ", std::strerror(errno));
  } else {
    RRT_CHECK(::pipe2(pipe_fds, O_CLOEXEC) == 0, "process", "pipe: ", std::strerror(errno));
    out_fd = pipe_fds[1];
  }
  // Everything the child needs is built before fork: only async-signal-safe calls after it.
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<std::string> env_strings;
  for (char** e = environ; *e; ++e) {
    const std::string entry = *e;
    bool replaced = false;
    for (const auto& [k, v] : env) replaced |= entry.starts_with(k + "=");
    if (!replaced) env_strings.push_back(entry);
  }
  for (const auto& [k, v] : env) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (std::string& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  int exec_error[2];
  RRT_CHECK(::pipe2(exec_error, O_CLOEXEC) == 0, "process", "pipe: ", std::strerror(errno));

  // Forwarding: the stop signals stay blocked from before the check to after the child is
  // registered, so one that comes meanwhile is either seen here (nothing starts) or handled,
  // and forwarded, once the child exists.
  const bool forward = stop_signals_forwarded();
  std::optional<BlockStopSignals> blocked;
  if (forward) blocked.emplace();
  if (forward && stop_signal() != 0) {
    ::close(exec_error[0]);
    ::close(exec_error[1]);
    if (pipe_fds[0] >= 0) ::close(pipe_fds[0]);
    ::close(out_fd);
    ProcessResult r;
    r.started = false;
    return r;
  }
  const pid_t pid = ::fork();
  if (pid == 0) {
    if (forward) {
      // Out of the terminal's foreground group: a Ctrl-C reaches the child through the parent
      // only. A stop signal pending here (sent to the group before setpgid) is dropped by
      // ignoring it (the parent forwards its own copy); the defaults come back for exec.
      ::setpgid(0, 0);
      struct sigaction ignore {
      }, fallback{};
      ignore.sa_handler = SIG_IGN;
      fallback.sa_handler = SIG_DFL;
      for (int s : {SIGTERM, SIGINT, SIGUSR1}) {
        ::sigaction(s, &ignore, nullptr);
        ::sigaction(s, &fallback, nullptr);
      }
      ::pthread_sigmask(SIG_SETMASK, &blocked->old_mask(), nullptr);
    }
    ::dup2(out_fd, STDOUT_FILENO);
    ::dup2(out_fd, STDERR_FILENO);
    ::execvpe(args[0], args.data(), envp.data());
    const int err = errno;  // tell the parent why, through the close-on-exec pipe
    [[maybe_unused]] auto n = ::write(exec_error[1], &err, sizeof err);
    ::_exit(127);
  }
  if (forward && pid > 0) {
    ::setpgid(pid, pid);  // also here: whichever of the two runs first
    set_stop_child(pid);
  }
  blocked.reset();  // a signal that came since the check is forwarded now
  ::close(exec_error[1]);
  if (pipe_fds[1] >= 0) ::close(pipe_fds[1]);
  if (pid < 0) {
    const int err = errno;
    ::close(exec_error[0]);
    if (pipe_fds[0] >= 0) ::close(pipe_fds[0]);
    if (!log_path.empty()) ::close(out_fd);
    RRT_FAIL("process", "cannot start ", argv[0], ": fork: ", std::strerror(err));
  }
  if (!log_path.empty()) ::close(out_fd);
  int child_errno = 0;
  const bool exec_failed = ::read(exec_error[0], &child_errno, sizeof child_errno) > 0;
  ::close(exec_error[0]);
  ProcessResult r;
  if (!exec_failed && on_start) on_start(pid);
  if (pipe_fds[0] >= 0) {
    char buf[4096];
    ssize_t n;
    while ((n = ::read(pipe_fds[0], buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR))
      if (n > 0) r.output.append(buf, static_cast<size_t>(n));
    ::close(pipe_fds[0]);
  }
  if (forward) {
    // Wait for the exit without reaping, then unregister the child with the signals blocked:
    // until it is reaped its pid cannot be reused, so a forwarded signal never hits another
    // process.
    siginfo_t info{};
    while (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOWAIT) < 0 &&
           errno == EINTR) {
    }
    const BlockStopSignals block;
    set_stop_child(0);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  RRT_CHECK(!exec_failed, "process", "cannot run ", argv[0], ": ", std::strerror(child_errno));
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
  return r;
}

std::string shell_quote(const std::string& word) {
  if (!word.empty() &&
      word.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                             "_-./=:,+%@") == std::string::npos)
    return word;
  std::string out = "'";
  for (char c : word) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

}  // namespace rrt
