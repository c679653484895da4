// resbmctl: the ResBM cluster's command-line tool (see commands.h).
#include "common/runtime/shutdown_signal.h"
#include "tools/resbmctl/commands.h"

int main(int argc, char** argv) {
  // Signals are collected by the commands' wait loops (and turned into clean stops).
  resbm::BlockShutdownSignals();
  return resbm::RunResbmctl(argc, argv);
}
