// resbmctl's commands: submit, get, list, cancel, watch and cluster against a coordinator's
// JobService, and local (a whole cluster on this machine). Each parses its own flags and
// returns the process exit code: 0 done, 1 failed, 2 bad usage or input, 130 interrupted.
#ifndef RESBM_TOOLS_RESBMCTL_COMMANDS_H_
#define RESBM_TOOLS_RESBMCTL_COMMANDS_H_

namespace resbm {

// argv[0] is "resbmctl"; argv[1] the command.
int RunResbmctl(int argc, char** argv);

}  // namespace resbm

#endif  // RESBM_TOOLS_RESBMCTL_COMMANDS_H_
