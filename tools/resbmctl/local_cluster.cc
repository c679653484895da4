#include "tools/resbmctl/local_cluster.h"

#include <signal.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <memory>

#include "absl/strings/str_cat.h"
#include "common/config/job_config.h"
#include "common/runtime/child_process.h"
#include "common/runtime/shutdown_signal.h"
#include "common/status/status_macros.h"

namespace resbm {

absl::Status RunLocalCluster(const LocalClusterOptions& options) {
  // The stage count decides how many workers to start.
  JobOverrides overrides;
  if (options.stages > 0) overrides.stages = options.stages;
  if (options.steps > 0) overrides.steps = options.steps;
  RESBM_ASSIGN_OR_RETURN(v1::JobConfig config,
                         LoadJobConfigWithOverrides(options.config_path, overrides));
  const int64_t stages = config.stages().num_stages();

  std::error_code error;
  std::filesystem::create_directories(options.log_dir, error);
  if (error) {
    return absl::InvalidArgumentError(
        absl::StrCat("--log-dir: '", options.log_dir, "': ", error.message()));
  }
  const std::string port_file = options.log_dir + "/coordinator.port";
  std::filesystem::remove(port_file, error);
  std::vector<std::string> coordinator_argv = {options.bin_dir + "/resbm-coordinator",
                                               "--listen=127.0.0.1:0",
                                               "--port-file=" + port_file,
                                               "--summary-json=" + options.summary_json,
                                               "--loss-csv=" + options.loss_csv,
                                               absl::StrCat("--stages=", stages)};
  if (!options.config_path.empty()) coordinator_argv.push_back("--config=" + options.config_path);
  if (options.steps > 0) coordinator_argv.push_back(absl::StrCat("--steps=", options.steps));
  // The coordinator's output is the job's live progress: it goes straight to the terminal.
  RESBM_ASSIGN_OR_RETURN(auto coordinator, ChildProcess::Start(coordinator_argv));
  const std::string port = WaitForFileLine(port_file, absl::Seconds(60));
  if (port.empty()) {
    return absl::UnavailableError("coordinator: did not start serving within 60 s");
  }
  std::vector<std::unique_ptr<ChildProcess>> workers;
  for (int64_t i = 0; i < stages; ++i) {
    RESBM_ASSIGN_OR_RETURN(
        auto worker, ChildProcess::Start({options.bin_dir + "/resbm-worker", "--listen=127.0.0.1:0",
                                          "--coordinator=127.0.0.1:" + port,
                                          absl::StrCat("--threads=", options.threads_per_worker),
                                          "--drain-seconds=2"},
                                         absl::StrCat(options.log_dir, "/worker-", i, ".log")));
    workers.push_back(std::move(worker));
  }
  std::printf("resbmctl local: coordinator on 127.0.0.1:%s, %lld workers (logs in %s)\n",
              port.c_str(), static_cast<long long>(stages), options.log_dir.c_str());
  std::fflush(stdout);

  absl::Status result;
  std::optional<int> coordinator_status;
  while (!(coordinator_status = coordinator->Wait(absl::Milliseconds(200)))) {
    if (ShutdownSignalPending()) {
      result = absl::CancelledError("interrupted: stopping the cluster");
      coordinator_status = coordinator->Stop(absl::Seconds(5));
      break;
    }
    for (size_t i = 0; i < workers.size(); ++i) {
      if (!workers[i]->Running()) {
        result = absl::UnavailableError(
            absl::StrCat("worker ", i, " exited early; its log:\n", workers[i]->Log()));
        coordinator_status = coordinator->Stop(absl::Seconds(5));
        break;
      }
    }
    if (!result.ok()) break;
  }
  if (result.ok() && (!coordinator_status.has_value() || !WIFEXITED(*coordinator_status) ||
                      WEXITSTATUS(*coordinator_status) != 0)) {
    result = absl::InternalError(absl::StrCat(
        "coordinator: ", coordinator_status ? DescribeWaitStatus(*coordinator_status) : "lost"));
  }
  for (size_t i = 0; i < workers.size(); ++i) {
    auto status = workers[i]->Stop(absl::Seconds(10));
    if (result.ok() && (!status || !WIFEXITED(*status) || WEXITSTATUS(*status) != 0)) {
      result = absl::InternalError(absl::StrCat(
          "worker ", i, " did not stop cleanly: ", status ? DescribeWaitStatus(*status) : "lost"));
    }
  }
  return result;
}

}  // namespace resbm
