#include "common/runtime/child_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/inotify.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/runtime/shutdown_signal.h"

extern char** environ;

namespace resbm {
namespace {

// Sleeps in poll(2) until `fd` is readable or `end`; whether it became readable.
bool AwaitReadable(int fd, absl::Time end) {
  while (true) {
    const absl::Duration left = end - absl::Now();
    if (left <= absl::ZeroDuration()) return false;
    pollfd ready{fd, POLLIN, 0};
    // Rounded up: a wait never ends early and spins on the last millisecond.
    const int ms =
        static_cast<int>(std::min<int64_t>(absl::ToInt64Milliseconds(left) + 1, int64_t{1} << 30));
    const int n = ::poll(&ready, 1, ms);
    if (n > 0) return true;
    if (n < 0 && errno != EINTR) return false;
  }
}

// The first line of `path`; "" if it has none yet.
std::string FirstLine(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  if (in && std::getline(in, line)) return line;
  return "";
}

}  // namespace

absl::StatusOr<std::unique_ptr<ChildProcess>> ChildProcess::Start(
    const std::vector<std::string>& argv, const std::string& log_path) {
  if (argv.empty()) return absl::InvalidArgumentError("argv: empty; expected a program");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (!log_path.empty()) {
    posix_spawn_file_actions_addopen(&actions, 1, log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                     0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
  }
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attributes, &none);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  // The child learns who launched it (BlockShutdownSignals: it stops when we die).
  const std::string parent = absl::StrCat(kParentPidVariable, "=", ::getpid());
  std::vector<char*> env;
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::strncmp(*e, kParentPidVariable, std::strlen(kParentPidVariable)) != 0 ||
        (*e)[std::strlen(kParentPidVariable)] != '=') {
      env.push_back(*e);
    }
  }
  env.push_back(const_cast<char*>(parent.c_str()));
  env.push_back(nullptr);
  pid_t pid = 0;
  const int error =
      posix_spawn(&pid, argv[0].c_str(), &actions, &attributes, args.data(), env.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  if (error != 0) {
    return absl::NotFoundError(absl::StrCat("cannot start ", argv[0], ": ", std::strerror(error)));
  }
  // Readable once the child exits: Wait sleeps on it instead of polling waitpid.
  const int exited = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (exited < 0) {
    const int open_error = errno;
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    return absl::InternalError(absl::StrCat("pidfd_open of ", argv[0], " (pid ", pid,
                                            "): ", std::strerror(open_error),
                                            "; Linux 5.3 or later is needed"));
  }
  return std::unique_ptr<ChildProcess>(new ChildProcess(pid, exited, log_path));
}

ChildProcess::~ChildProcess() {
  if (Running()) {
    Signal(SIGKILL);
    Wait(absl::Seconds(10));
  }
  ::close(exited_fd_);
}

bool ChildProcess::Running() { return !Wait(absl::ZeroDuration()).has_value(); }

void ChildProcess::Signal(int signal) {
  if (!status_.has_value()) ::kill(pid_, signal);
}

std::optional<int> ChildProcess::Wait(absl::Duration timeout) {
  const absl::Time end = absl::Now() + timeout;
  while (!status_.has_value()) {
    int status = 0;
    const pid_t done = ::waitpid(pid_, &status, WNOHANG);
    if (done == pid_) {
      status_ = status;
      break;
    }
    if (done < 0 && errno != EINTR) break;
    if (done == 0 && !AwaitReadable(exited_fd_, end)) break;  // Not exited by `end`.
  }
  return status_;
}

std::optional<int> ChildProcess::Stop(absl::Duration grace) {
  Signal(SIGTERM);
  if (auto status = Wait(grace)) return status;
  Signal(SIGKILL);
  return Wait(absl::Seconds(10));
}

std::string ChildProcess::Log() const {
  if (log_path_.empty()) return "";
  std::ifstream in(log_path_);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

std::string WaitForFileLine(const std::string& path, absl::Duration timeout) {
  const absl::Time end = absl::Now() + timeout;
  // Watched before the first look, so a file that appears in between is not missed. Our
  // services write it whole and rename it into place (IN_MOVED_TO).
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  const int events = ::inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
  if (events < 0) return FirstLine(path);
  const bool watched = ::inotify_add_watch(events, dir.c_str(), IN_CLOSE_WRITE | IN_MOVED_TO) >= 0;
  std::string line = FirstLine(path);
  while (line.empty() && watched && AwaitReadable(events, end)) {
    char buffer[4096];
    while (::read(events, buffer, sizeof(buffer)) > 0) {
    }
    line = FirstLine(path);
  }
  ::close(events);
  return line;
}

std::string DescribeWaitStatus(int status) {
  if (WIFEXITED(status)) return absl::StrCat("exit ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return absl::StrCat("signal ", WTERMSIG(status));
  return absl::StrCat("status ", status);
}

}  // namespace resbm
