// resbm-coordinator: serves the Control service, waits for one worker per stage, runs the
// job (the config file, or the default job) on them with live progress, writes the summary
// and the loss curve, and exits. A SIGTERM/SIGINT stops it at once.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <thread>

#include "common/config/job_flags.h"
#include "common/runtime/flag_parser.h"
#include "common/runtime/shutdown_signal.h"
#include "services/coordinator/coordinator.h"

namespace {

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "resbm-coordinator: %s\n", status.ToString().c_str());
  return status.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  resbm::BlockShutdownSignals();
  resbm::CoordinatorOptions options;
  resbm::JobFlags job;
  std::string port_file, job_id = "job-1", checkpoint_dir = "out/checkpoints";
  int64_t wait_seconds = 120;
  resbm::FlagParser flags("resbm-coordinator",
                          "Runs a ResBM job on registered stage workers (resbm-worker "
                          "--coordinator=ADDRESS).");
  flags.AddString("listen", &options.listen_address, "host:port to serve on (port 0: any)");
  job.Register(&flags);
  flags.AddString("job-id", &job_id, "identifier of the job on the wire");
  flags.AddString("port-file", &port_file, "write the bound port here once serving");
  flags.AddString("checkpoint-dir", &checkpoint_dir,
                  "where stages write checkpoints (training.checkpoint_every > 0); every "
                  "worker must reach it");
  flags.AddInt("wait-workers-seconds", &wait_seconds, "how long to wait for the workers");
  if (auto status = flags.Parse(argc, argv); !status.ok()) return Fail(status);
  if (flags.help_requested()) {
    std::printf("%s", flags.Usage().c_str());
    return 0;
  }
  resbm::TrainerOptions trainer;
  auto config = job.LoadConfig(flags);
  if (!config.ok()) return Fail(config.status());
  trainer.config = *config;
  trainer.summary_json_path = job.summary_json;
  trainer.loss_csv_path = job.loss_csv;
  options.worker_wait = absl::Seconds(wait_seconds);

  auto coordinator = resbm::Coordinator::Start(options);
  if (!coordinator.ok()) return Fail(coordinator.status());
  std::printf("resbm-coordinator: serving on port %d, waiting for %u workers\n",
              (*coordinator)->port(), trainer.config.stages().num_stages());
  std::fflush(stdout);
  if (!port_file.empty()) {
    std::ofstream(port_file + ".tmp") << (*coordinator)->port() << "\n";
    std::rename((port_file + ".tmp").c_str(), port_file.c_str());
  }
  // The job runs on its own thread so a signal can end the process at any moment.
  absl::StatusOr<resbm::RunSummary> summary = absl::UnknownError("not finished");
  std::atomic<bool> job_done{false};
  std::thread job_thread([&] {
    summary = (*coordinator)->RunJob(job_id, trainer, checkpoint_dir);
    job_done = true;
    ::kill(::getpid(), SIGTERM);  // Wakes the signal wait below.
  });
  const int signal = resbm::WaitForShutdownSignal();
  if (!job_done) {
    // Stopped mid-job: the job is not persisted yet (that is the job API's work), so there is
    // nothing to drain but the server; the job thread's calls die with the process.
    std::printf("resbm-coordinator: signal %d, stopping\n", signal);
    (*coordinator)->Shutdown(absl::Now() + absl::Seconds(1));
    std::printf("resbm-coordinator: stopped\n");
    std::fflush(stdout);
    std::_Exit(0);
  }
  job_thread.join();
  (*coordinator)->Shutdown(absl::Now() + absl::Seconds(2));
  if (!summary.ok()) return Fail(summary.status());
  std::printf("done: %s\nsummary: %s\nloss curve: %s\n", summary->Describe().c_str(),
              job.summary_json.c_str(), job.loss_csv.c_str());
  return 0;
}
