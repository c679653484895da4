#include "common/runtime/shutdown_signal.h"

#include <pthread.h>
#include <signal.h>

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

}  // namespace resbm
