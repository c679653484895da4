// Shutdown signals for the service binaries: block SIGINT and SIGTERM in every thread (call
// BlockShutdownSignals first in main, before any thread starts), then wait for one in main.
// Thread-safe.
#ifndef RESBM_COMMON_RUNTIME_SHUTDOWN_SIGNAL_H_
#define RESBM_COMMON_RUNTIME_SHUTDOWN_SIGNAL_H_

#include <functional>
#include <string>

namespace resbm {

// Set by ChildProcess in its children's environment: the launcher's pid.
inline constexpr char kParentPidVariable[] = "RESBM_PARENT_PID";

// Also, when kParentPidVariable names the parent, asks for SIGTERM when the parent dies.
void BlockShutdownSignals();
// Blocks until SIGINT or SIGTERM arrives; returns the signal number.
int WaitForShutdownSignal();
// Consumes a pending SIGINT or SIGTERM without waiting; true if there was one.
bool ShutdownSignalPending();

// The rest of a started service's main: logs "NAME: metrics on port M" (when M is not 0),
// writes `port` to `port_file` (when set; whole, renamed into place, for launchers that wait
// for it), waits for SIGINT or SIGTERM, calls `stop` and logs "NAME: stopped".
void ServeUntilShutdownSignal(const std::string& name, int port, int metrics_port,
                              const std::string& port_file, const std::function<void()>& stop);

}  // namespace resbm

#endif  // RESBM_COMMON_RUNTIME_SHUTDOWN_SIGNAL_H_
