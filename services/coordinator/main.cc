// resbm-coordinator: serves the job API (JobService) and the workers' Control service, keeps
// jobs in its data directory, and runs them, several at once on disjoint workers, on the
// registered stage workers (resbm-worker --coordinator=ADDRESS). A restart, even after kill
// -9, resumes the running jobs from their last complete checkpoints. SIGTERM/SIGINT: stop the
// running jobs before their next step (they stay RUNNING, for the next start) and exit.
#include <cstdio>
#include <string>
#include <utility>

#include "absl/strings/ascii.h"
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

// The command line, before it becomes CoordinatorOptions.
struct CommandLine {
  resbm::CoordinatorOptions options;
  resbm::TransportSecurityOptions security;
  std::string port_file, admins, tokens_file;
  int64_t wait_seconds = 600, step_timeout_seconds = 300, heartbeat_timeout_ms = 5000;
  int64_t drain_seconds = 2;
};

// Where it serves, keeps its data and how it judges workers and steps.
void AddServiceFlags(resbm::FlagParser* flags, CommandLine* c) {
  resbm::CoordinatorOptions& o = c->options;
  flags->AddString("listen", &o.listen_address, "host:port to serve on (port 0: any)");
  flags->AddString("port-file", &c->port_file, "write the bound port here once serving");
  flags->AddString("data-dir", &o.data_dir,
                   "jobs database (jobs.db) and job outputs (jobs/<job-id>/)");
  flags->AddString("checkpoint-dir", &o.checkpoint_dir,
                   "where stages write checkpoints; every worker must reach it (default: "
                   "<data-dir>/checkpoints)");
  flags->AddString("metrics-listen", &o.metrics_address,
                   "host:port of the Prometheus /metrics endpoint (empty: none)");
  flags->AddInt("wait-workers-seconds", &c->wait_seconds,
                "how long a started job waits for the workers it was given to answer (a queued "
                "job waits in the queue, however long, until enough workers are idle)");
  flags->AddInt("step-timeout-seconds", &c->step_timeout_seconds,
                "a step that takes longer fails and is recovered from");
  flags->AddInt("heartbeat-timeout-ms", &c->heartbeat_timeout_ms,
                "a worker unheard of for this long is not healthy");
  flags->AddInt("drain-seconds", &c->drain_seconds, "how long open calls get to end on shutdown");
}

// Who may use the job API, and how much of the pool and the queue each may take.
void AddJobPolicyFlags(resbm::FlagParser* flags, CommandLine* c) {
  resbm::CoordinatorOptions& o = c->options;
  flags->AddInt("max-submits-per-minute", &o.max_submits_per_minute,
                "job submissions per user in any minute (0: no limit)");
  flags->AddInt("max-queued-jobs", &o.max_queued_jobs,
                "jobs waiting at once; more submissions are refused (0: no limit)");
  flags->AddInt("max-unfinished-jobs-per-user", &o.max_unfinished_jobs_per_user,
                "queued or running jobs one user may have; more submissions are refused (0: no "
                "limit)");
  resbm::JobStartLimits& limits = o.job_start_limits;
  flags->AddInt("max-running-jobs", &limits.max_running_jobs,
                "jobs running at once, each on workers of its own (0: as many as the workers "
                "allow)");
  flags->AddInt("max-running-jobs-per-user", &limits.max_running_jobs_per_user,
                "running jobs one user may have; the others wait queued (0: no limit)");
  flags->AddInt("max-overtakes", &limits.max_overtakes,
                "jobs that may start ahead of a queued job that does not fit yet before it "
                "holds its place (0: strict order)");
  flags->AddString("admin-users", &c->admins,
                   "comma-separated users (of --auth-tokens-file) who may cancel any job");
  flags->AddString("auth-tokens-file", &c->tokens_file,
                   "the job API's users: 'USER TOKEN' lines; required with TLS");
}

// The parsed command line's files read and values converted into `c->options`.
absl::Status Resolve(CommandLine* c) {
  resbm::CoordinatorOptions& o = c->options;
  auto loaded = resbm::TransportSecurity::Load(c->security, /*server=*/true);
  if (!loaded.ok()) return loaded.status();
  o.security = *loaded;
  if (!c->tokens_file.empty()) {
    auto tokens = resbm::BearerTokens::Load(c->tokens_file);
    if (!tokens.ok()) return tokens.status();
    o.tokens = *std::move(tokens);
  }
  for (absl::string_view admin : absl::StrSplit(c->admins, ',', absl::SkipWhitespace())) {
    o.admin_users.insert(std::string(absl::StripAsciiWhitespace(admin)));
  }
  o.worker_wait = absl::Seconds(c->wait_seconds);
  o.step_timeout = absl::Seconds(c->step_timeout_seconds);
  o.heartbeat_timeout = absl::Milliseconds(c->heartbeat_timeout_ms);
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  resbm::KeepBulkBuffersMapped();
  resbm::BlockShutdownSignals();
  CommandLine c;
  resbm::FlagParser flags("resbm-coordinator",
                          "Serves the ResBM job API and runs the submitted jobs on registered "
                          "stage workers (resbm-worker --coordinator=ADDRESS).");
  AddServiceFlags(&flags, &c);
  resbm::AddTransportSecurityFlags(&flags, &c.security);
  AddJobPolicyFlags(&flags, &c);
  if (auto exit_code = flags.ParseCommandLine(argc, argv)) return *exit_code;
  if (absl::Status resolved = Resolve(&c); !resolved.ok()) return Fail(resolved);

  auto coordinator = resbm::Coordinator::Start(c.options);
  if (!coordinator.ok()) return Fail(coordinator.status());
  std::printf("resbm-coordinator: serving on port %d, data in %s\n", (*coordinator)->port(),
              c.options.data_dir.c_str());
  resbm::ServeUntilShutdownSignal(
      "resbm-coordinator", (*coordinator)->port(), (*coordinator)->metrics_port(), c.port_file,
      [&] { (*coordinator)->Shutdown(absl::Now() + absl::Seconds(c.drain_seconds)); });
  return 0;
}
