// resbm-coordinator: serves the job API (JobService) and the workers' Control service, keeps
// jobs in its data directory, and runs them one at a time on the registered stage workers
// (resbm-worker --coordinator=ADDRESS). A restart, even after kill -9, resumes the running
// job from its last complete checkpoint. SIGTERM/SIGINT: stop the running job before its next
// step (it stays RUNNING, for the next start) and exit.
#include <cstdio>
#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/runtime/bulk_allocator.h"
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
  resbm::KeepBulkBuffersMapped();
  resbm::BlockShutdownSignals();
  resbm::CoordinatorOptions options;
  std::string port_file;
  int64_t wait_seconds = 600, step_timeout_seconds = 300, heartbeat_timeout_ms = 5000;
  int64_t drain_seconds = 2;
  resbm::FlagParser flags("resbm-coordinator",
                          "Serves the ResBM job API and runs the submitted jobs on registered "
                          "stage workers (resbm-worker --coordinator=ADDRESS).");
  flags.AddString("listen", &options.listen_address, "host:port to serve on (port 0: any)");
  flags.AddString("port-file", &port_file, "write the bound port here once serving");
  flags.AddString("data-dir", &options.data_dir,
                  "jobs database (jobs.db) and job outputs (jobs/<job-id>/)");
  flags.AddString("checkpoint-dir", &options.checkpoint_dir,
                  "where stages write checkpoints; every worker must reach it (default: "
                  "<data-dir>/checkpoints)");
  flags.AddString("metrics-listen", &options.metrics_address,
                  "host:port of the Prometheus /metrics endpoint (empty: none)");
  flags.AddInt("wait-workers-seconds", &wait_seconds,
               "how long a started job waits for the workers it was given to answer (a queued "
               "job waits in the queue, however long, until enough workers are idle)");
  flags.AddInt("step-timeout-seconds", &step_timeout_seconds,
               "a step that takes longer fails and is recovered from");
  flags.AddInt("heartbeat-timeout-ms", &heartbeat_timeout_ms,
               "a worker unheard of for this long is not healthy");
  flags.AddInt("drain-seconds", &drain_seconds, "how long open calls get to end on shutdown");
  resbm::TransportSecurityOptions security;
  resbm::AddTransportSecurityFlags(&flags, &security);
  flags.AddInt("max-submits-per-minute", &options.max_submits_per_minute,
               "job submissions per user in any minute (0: no limit)");
  flags.AddInt("max-queued-jobs", &options.max_queued_jobs,
               "jobs waiting at once; more submissions are refused (0: no limit)");
  flags.AddInt("max-unfinished-jobs-per-user", &options.max_unfinished_jobs_per_user,
               "queued or running jobs one user may have; more submissions are refused (0: no "
               "limit)");
  resbm::JobStartLimits& limits = options.job_start_limits;
  flags.AddInt("max-running-jobs", &limits.max_running_jobs,
               "jobs running at once, each on workers of its own (0: as many as the workers "
               "allow)");
  flags.AddInt("max-running-jobs-per-user", &limits.max_running_jobs_per_user,
               "running jobs one user may have; the others wait queued (0: no limit)");
  flags.AddInt("max-overtakes", &limits.max_overtakes,
               "jobs that may start ahead of a queued job that does not fit yet before it "
               "holds its place (0: strict order)");
  std::string admins;
  flags.AddString("admin-users", &admins,
                  "comma-separated users (of --auth-tokens-file) who may cancel any job");
  std::string tokens_file;
  flags.AddString("auth-tokens-file", &tokens_file,
                  "the job API's users: 'USER TOKEN' lines; required with TLS");
  if (auto exit_code = flags.ParseCommandLine(argc, argv)) return *exit_code;
  for (const auto& [name, value] :
       {std::pair<const char*, int64_t>{"max-running-jobs", limits.max_running_jobs},
        {"max-running-jobs-per-user", limits.max_running_jobs_per_user},
        {"max-overtakes", limits.max_overtakes}}) {
    if (value < 0) {
      return Fail(absl::InvalidArgumentError(
          absl::StrCat("--", name, ": ", value, "; expected 0 or more")));
    }
  }
  auto loaded = resbm::TransportSecurity::Load(security, /*server=*/true);
  if (!loaded.ok()) return Fail(loaded.status());
  options.security = *loaded;
  if (!tokens_file.empty()) {
    auto tokens = resbm::BearerTokens::Load(tokens_file);
    if (!tokens.ok()) return Fail(tokens.status());
    options.tokens = *std::move(tokens);
  }
  for (absl::string_view admin : absl::StrSplit(admins, ',', absl::SkipWhitespace())) {
    options.admin_users.insert(std::string(absl::StripAsciiWhitespace(admin)));
  }
  options.worker_wait = absl::Seconds(wait_seconds);
  options.step_timeout = absl::Seconds(step_timeout_seconds);
  options.heartbeat_timeout = absl::Milliseconds(heartbeat_timeout_ms);

  auto coordinator = resbm::Coordinator::Start(options);
  if (!coordinator.ok()) return Fail(coordinator.status());
  std::printf("resbm-coordinator: serving on port %d, data in %s\n", (*coordinator)->port(),
              options.data_dir.c_str());
  resbm::ServeUntilShutdownSignal(
      "resbm-coordinator", (*coordinator)->port(), (*coordinator)->metrics_port(), port_file,
      [&] { (*coordinator)->Shutdown(absl::Now() + absl::Seconds(drain_seconds)); });
  return 0;
}
