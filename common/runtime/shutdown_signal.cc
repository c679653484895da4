#include "common/runtime/shutdown_signal.h"

#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

namespace resbm {
namespace {

sigset_t ShutdownSet() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  return set;
}

}  // namespace

void BlockShutdownSignals() {
  sigset_t set = ShutdownSet();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  // Started by a launcher (ChildProcess): stop cleanly when it dies, even by SIGKILL, rather
  // than live on as an orphan that still holds its job.
  if (const char* parent = std::getenv(kParentPidVariable); parent != nullptr) {
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (std::to_string(::getppid()) != parent) ::kill(::getpid(), SIGTERM);  // Already gone.
  }
}

int WaitForShutdownSignal() {
  sigset_t set = ShutdownSet();
  int signal = 0;
  while (sigwait(&set, &signal) != 0) {
  }
  return signal;
}

bool ShutdownSignalPending() {
  sigset_t set = ShutdownSet();
  timespec zero{0, 0};
  return sigtimedwait(&set, nullptr, &zero) > 0;
}

void ServeUntilShutdownSignal(const std::string& name, int port, int metrics_port,
                              const std::string& port_file, const std::function<void()>& stop) {
  if (metrics_port != 0) std::printf("%s: metrics on port %d\n", name.c_str(), metrics_port);
  std::fflush(stdout);
  if (!port_file.empty()) {
    std::ofstream(port_file + ".tmp") << port << "\n";
    std::rename((port_file + ".tmp").c_str(), port_file.c_str());
  }
  const int signal = WaitForShutdownSignal();
  std::printf("%s: signal %d, stopping\n", name.c_str(), signal);
  std::fflush(stdout);
  stop();
  std::printf("%s: stopped\n", name.c_str());
  std::fflush(stdout);
}

}  // namespace resbm
