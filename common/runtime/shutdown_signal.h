// Shutdown signals for the service binaries: block SIGINT and SIGTERM in every thread (call
// BlockShutdownSignals first in main, before any thread starts), then wait for one in main.
// Thread-safe.
#ifndef RESBM_COMMON_RUNTIME_SHUTDOWN_SIGNAL_H_
#define RESBM_COMMON_RUNTIME_SHUTDOWN_SIGNAL_H_

namespace resbm {

// Set by ChildProcess in its children's environment: the launcher's pid.
inline constexpr char kParentPidVariable[] = "RESBM_PARENT_PID";

// Also, when kParentPidVariable names the parent, asks for SIGTERM when the parent dies.
void BlockShutdownSignals();
// Blocks until SIGINT or SIGTERM arrives; returns the signal number.
int WaitForShutdownSignal();
// Consumes a pending SIGINT or SIGTERM without waiting; true if there was one.
bool ShutdownSignalPending();

}  // namespace resbm

#endif  // RESBM_COMMON_RUNTIME_SHUTDOWN_SIGNAL_H_
