// Subprocess: starts a real binary for integration tests (stdout and stderr to a log file),
// sends it signals and waits for its exit with a timeout. Kills it (SIGKILL) on destruction
// if still running. Not thread-safe.
#ifndef RESBM_TESTS_TESTING_SUBPROCESS_H_
#define RESBM_TESTS_TESTING_SUBPROCESS_H_

#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace resbm::testing {

// The build's binary directory (ctest sets RESBM_BINARY_DIR).
inline std::string BinaryPath(const std::string& name) {
  const char* dir = std::getenv("RESBM_BINARY_DIR");
  return std::string(dir ? dir : "build") + "/bin/" + name;
}

class Subprocess {
 public:
  Subprocess(std::vector<std::string> argv, std::string log_path) : log_path_(std::move(log_path)) {
    pid_ = ::fork();
    if (pid_ == 0) {
      FILE* log = std::fopen(log_path_.c_str(), "w");
      if (log != nullptr) {
        ::dup2(::fileno(log), 1);
        ::dup2(::fileno(log), 2);
      }
      std::vector<char*> args;
      for (auto& a : argv) args.push_back(a.data());
      args.push_back(nullptr);
      ::execv(args[0], args.data());
      std::_Exit(127);
    }
  }
  ~Subprocess() {
    if (running()) {
      ::kill(pid_, SIGKILL);
      Wait(std::chrono::seconds(10));
    }
  }
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0 && !status_.has_value(); }
  void Signal(int signal) { ::kill(pid_, signal); }

  // The raw wait status once the process exited within `timeout`.
  std::optional<int> Wait(std::chrono::milliseconds timeout) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (!status_.has_value()) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        status_ = status;
        break;
      }
      if (std::chrono::steady_clock::now() >= end) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return status_;
  }

  std::string Log() const {
    std::ifstream in(log_path_);
    std::stringstream buffer;
    buffer << in.rdbuf();
    return buffer.str();
  }

 private:
  std::string log_path_;
  pid_t pid_ = -1;
  std::optional<int> status_;
};

// Waits until `path` exists and holds a line; returns its content ("" on timeout).
inline std::string WaitForFile(const std::string& path, std::chrono::milliseconds timeout) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    std::ifstream in(path);
    std::string line;
    if (in && std::getline(in, line) && !line.empty()) return line;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return "";
}

}  // namespace resbm::testing

#endif  // RESBM_TESTS_TESTING_SUBPROCESS_H_
