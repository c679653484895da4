#include "tools/resbmctl/local_cluster.h"

#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "absl/strings/str_cat.h"
#include "common/config/job_config.h"
#include "common/runtime/child_process.h"
#include "common/runtime/shutdown_signal.h"
#include "common/status/status_macros.h"
#include "common/train/run_summary.h"
#include "tools/resbmctl/follow_job.h"
#include "tools/resbmctl/job_client.h"
#include "tools/resbmctl/job_views.h"

namespace resbm {
namespace {

absl::Status CopyOutput(const std::string& from, const std::string& to) {
  std::error_code error;
  const auto parent = std::filesystem::path(to).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent, error);
  std::filesystem::copy_file(from, to, std::filesystem::copy_options::overwrite_existing, error);
  if (error) return absl::UnavailableError(absl::StrCat(from, " -> ", to, ": ", error.message()));
  return absl::OkStatus();
}

// Stops a child with SIGTERM; an error unless it exited 0.
absl::Status StopCleanly(ChildProcess& child, const std::string& name) {
  auto status = child.Stop(absl::Seconds(15));
  if (!status || !WIFEXITED(*status) || WEXITSTATUS(*status) != 0) {
    return absl::InternalError(absl::StrCat(
        name, " did not stop cleanly: ", status ? DescribeWaitStatus(*status) : "lost"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status RunLocalCluster(const LocalClusterOptions& options) {
  JobOverrides overrides;
  if (options.stages > 0) overrides.stages = options.stages;
  if (options.steps > 0) overrides.steps = options.steps;
  if (options.replicas > 0) overrides.replicas = options.replicas;
  RESBM_ASSIGN_OR_RETURN(v1::JobConfig config,
                         LoadJobConfigWithOverrides(options.config_path, overrides));
  if (options.replicas < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--replicas: ", options.replicas, "; expected >= 1 (0: the config's)"));
  }
  if (options.spare_workers < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--spare-workers: ", options.spare_workers, "; expected >= 0"));
  }
  // One worker per stage of every pipeline (stages.replicas of them), plus the spares.
  const int64_t workers_wanted = JobWorkerCount(config) + options.spare_workers;

  std::error_code error;
  const std::string data_dir = options.log_dir + "/data";
  std::filesystem::remove_all(data_dir, error);
  std::filesystem::create_directories(data_dir, error);
  if (error) {
    return absl::InvalidArgumentError(
        absl::StrCat("--log-dir: '", options.log_dir, "': ", error.message()));
  }
  const std::string port_file = options.log_dir + "/coordinator.port";
  std::filesystem::remove(port_file, error);
  // Every process on this machine, on loopback only: plaintext, said explicitly.
  RESBM_ASSIGN_OR_RETURN(
      auto coordinator,
      ChildProcess::Start({options.bin_dir + "/resbm-coordinator", "--listen=127.0.0.1:0",
                           "--port-file=" + port_file, "--data-dir=" + data_dir,
                           "--drain-seconds=1", "--plaintext"},
                          options.log_dir + "/coordinator.log"));
  const std::string port = WaitForFileLine(port_file, absl::Seconds(60));
  if (port.empty()) {
    return absl::UnavailableError(absl::StrCat(
        "coordinator: did not start serving within 60 s; its log:\n", coordinator->Log()));
  }
  std::vector<std::unique_ptr<ChildProcess>> workers;
  for (int64_t i = 0; i < workers_wanted; ++i) {
    RESBM_ASSIGN_OR_RETURN(
        auto worker, ChildProcess::Start({options.bin_dir + "/resbm-worker", "--listen=127.0.0.1:0",
                                          "--coordinator=127.0.0.1:" + port,
                                          absl::StrCat("--threads=", options.threads_per_worker),
                                          // The coordinator's default checkpoint directory.
                                          "--checkpoint-dir=" + data_dir + "/checkpoints",
                                          "--drain-seconds=2", "--plaintext"},
                                         absl::StrCat(options.log_dir, "/worker-", i, ".log")));
    workers.push_back(std::move(worker));
  }
  std::printf(
      "resbmctl local: coordinator on 127.0.0.1:%s, %lld workers (%lld spare); logs in %s\n",
      port.c_str(), static_cast<long long>(workers_wanted),
      static_cast<long long>(options.spare_workers), options.log_dir.c_str());
  std::fflush(stdout);

  JobClient client("127.0.0.1:" + port);
  absl::Status result;
  auto submitted = client.Submit(config);
  absl::StatusOr<v1::Job> job = submitted;
  if (submitted.ok()) {
    std::printf(
        "submitted %s; resbmctl watch %s --plaintext --coordinator=127.0.0.1:%s follows it too\n",
        submitted->job_id().c_str(), submitted->job_id().c_str(), port.c_str());
    std::fflush(stdout);
    job = FollowJob(client, submitted->job_id(), /*json=*/false);
  }
  if (!job.ok()) {
    result = absl::IsCancelled(job.status())
                 ? absl::CancelledError("interrupted: stopping the cluster")
                 : job.status();
  } else if (job->state() != v1::JOB_STATE_SUCCEEDED) {
    result = absl::InternalError(
        absl::StrCat(job->job_id(), " ", JobStateName(job->state()), ": ", job->message(),
                     "\ncoordinator log: ", options.log_dir, "/coordinator.log"));
  } else {
    for (const auto& [name, to] :
         {std::pair<std::string, std::string>{"summary.json", options.summary_json},
          {"losses.csv", options.loss_csv}}) {
      if (absl::Status copied = CopyOutput(job->output_dir() + "/" + name, to); !copied.ok()) {
        result = copied;
      }
    }
    std::printf("done: %s\nsummary: %s\nloss curve: %s\n",
                RunSummary::FromProto(job->summary()).Describe().c_str(),
                options.summary_json.c_str(), options.loss_csv.c_str());
    if (!options.export_dir.empty() && result.ok()) {
      auto exported = client.ExportModel(job->job_id(), options.export_dir);
      if (!exported.ok()) {
        result = exported.status();
      } else {
        std::printf(
            "model: %s/model.safetensors (%u tensors, %llu parameters, step %llu) and "
            "config.json\n",
            options.export_dir.c_str(), exported->tensors(),
            static_cast<unsigned long long>(exported->parameters()),
            static_cast<unsigned long long>(exported->step()));
      }
    }
  }
  absl::Status stopped = StopCleanly(*coordinator, "coordinator");
  if (result.ok()) result = stopped;
  for (size_t i = 0; i < workers.size(); ++i) {
    // A worker that died during the job (and was recovered from) is not a failure here.
    if (!workers[i]->Running()) continue;
    absl::Status worker_stopped = StopCleanly(*workers[i], absl::StrCat("worker ", i));
    if (result.ok()) result = worker_stopped;
  }
  return result;
}

}  // namespace resbm
