// resbmctl: the ResBM cluster's command-line tool. Subcommands:
//   local   start a coordinator and one worker per stage on this machine and run a job.
#include <limits.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>

#include "common/runtime/flag_parser.h"
#include "common/runtime/shutdown_signal.h"
#include "tools/resbmctl/local_cluster.h"

namespace {

std::string SelfDirectory() {
  char path[PATH_MAX];
  const ssize_t n = ::readlink("/proc/self/exe", path, sizeof(path) - 1);
  if (n <= 0) return ".";
  path[n] = '\0';
  return std::filesystem::path(path).parent_path().string();
}

int Usage() {
  std::fprintf(stderr,
               "usage: resbmctl <command> [flags]\n\ncommands:\n"
               "  local   run a job on a coordinator and stage workers started on this machine\n"
               "\nresbmctl <command> --help for its flags\n");
  return 2;
}

int Local(int argc, char** argv) {
  resbm::LocalClusterOptions options;
  options.bin_dir = SelfDirectory();
  const int64_t cores = std::max(1u, std::thread::hardware_concurrency());
  resbm::FlagParser flags("resbmctl local",
                          "Starts a coordinator and one stage worker per stage as processes on "
                          "loopback, runs the job with live progress, and stops them.");
  flags.AddString("config", &options.config_path, "job config file (default: the default job)");
  flags.AddInt("stages", &options.stages, "override stages.num_stages (= workers started)");
  flags.AddInt("steps", &options.steps, "override training.steps");
  flags.AddString("summary-json", &options.summary_json, "where to write the run summary");
  flags.AddString("loss-csv", &options.loss_csv, "where to write the loss curve");
  flags.AddString("log-dir", &options.log_dir, "where the workers' logs go");
  options.threads_per_worker = 0;
  flags.AddInt("threads-per-worker", &options.threads_per_worker,
               "intra-op threads per worker (0: cores / stages, at least 1)");
  if (auto status = flags.Parse(argc, argv); !status.ok()) {
    std::fprintf(stderr, "resbmctl local: %s\n", status.ToString().c_str());
    return 2;
  }
  if (flags.help_requested()) {
    std::printf("%s", flags.Usage().c_str());
    return 0;
  }
  if (options.threads_per_worker <= 0) {
    const int64_t stages = options.stages > 0 ? options.stages : 4;
    options.threads_per_worker = std::max<int64_t>(1, cores / stages);
  }
  auto status = resbm::RunLocalCluster(options);
  if (status.code() == absl::StatusCode::kCancelled) {
    std::fprintf(stderr, "resbmctl local: %s; every process stopped\n",
                 std::string(status.message()).c_str());
    return 130;
  }
  if (!status.ok()) {
    std::fprintf(stderr, "resbmctl local: %s\n", status.ToString().c_str());
    return status.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Signals are collected by the launcher's wait loop (and forwarded as clean stops).
  resbm::BlockShutdownSignals();
  if (argc < 2) return Usage();
  const std::string command = argv[1];
  if (command == "local") return Local(argc - 1, argv + 1);
  if (command == "--help" || command == "-h" || command == "help") {
    Usage();
    return 0;
  }
  std::fprintf(stderr, "resbmctl: unknown command '%s'\n", command.c_str());
  return Usage();
}
