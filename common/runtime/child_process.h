// ChildProcess: a started binary (the local cluster launcher's coordinator and workers, and
// the integration tests' real processes): signals, exit status with a timeout, its log.
// SIGKILLs the child on destruction if it still runs. Not thread-safe.
#ifndef RESBM_COMMON_RUNTIME_CHILD_PROCESS_H_
#define RESBM_COMMON_RUNTIME_CHILD_PROCESS_H_

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace resbm {

class ChildProcess {
 public:
  // Starts argv[0] (a path) with `argv`. With a `log_path`, stdout and stderr go to that
  // file; otherwise they are inherited. The child starts with SIGINT/SIGTERM unblocked and
  // with RESBM_PARENT_PID set: our binaries then get SIGTERM when the thread that started
  // them ends (so start long-lived children from the main thread).
  static absl::StatusOr<std::unique_ptr<ChildProcess>> Start(const std::vector<std::string>& argv,
                                                             const std::string& log_path = "");
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  bool Running();
  void Signal(int signal);
  // The raw wait status if the child exited within `timeout`.
  std::optional<int> Wait(absl::Duration timeout);
  // SIGTERM, then SIGKILL if still running after `grace`; returns the wait status.
  std::optional<int> Stop(absl::Duration grace);
  // The log file's content ("" without one).
  std::string Log() const;

 private:
  ChildProcess(pid_t pid, int exited_fd, std::string log_path)
      : pid_(pid), exited_fd_(exited_fd), log_path_(std::move(log_path)) {}

  pid_t pid_;
  int exited_fd_;  // A pidfd: readable once the child has exited.
  std::string log_path_;
  std::optional<int> status_;
};

// Waits until `path` holds a non-empty first line and returns it; "" after `timeout`. Woken
// by inotify when a file in its directory is written or renamed into place.
std::string WaitForFileLine(const std::string& path, absl::Duration timeout);

// A readable description of a wait status: "exit 0", "signal 9".
std::string DescribeWaitStatus(int status);

}  // namespace resbm

#endif  // RESBM_COMMON_RUNTIME_CHILD_PROCESS_H_
