// Coordinator: the coordinator process's server: the Control service for workers, the
// public JobService, gRPC health and reflection; and the job runner behind the JobManager:
// leases each job its workers (one per stage of each pipeline; jobs never share one),
// assigns the stages, and drives each job's training loop over them through a
// DistributedBackend, several jobs at once. Jobs live in `data_dir` and survive restarts.
// Start/Shutdown; thread-safe.
#ifndef RESBM_SERVICES_COORDINATOR_COORDINATOR_H_
#define RESBM_SERVICES_COORDINATOR_COORDINATOR_H_

#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/metrics/metrics_server.h"
#include "common/modelio/model_exporter.h"
#include "common/train/run_summary.h"
#include "common/transport/bearer_tokens.h"
#include "common/transport/transport_security.h"
#include "services/coordinator/control_service.h"
#include "services/coordinator/coordinator_metrics.h"
#include "services/coordinator/job_manager.h"
#include "services/coordinator/job_service.h"
#include "services/coordinator/job_start_plan.h"
#include "services/coordinator/submission_limiter.h"
#include "services/coordinator/worker_registry.h"

namespace resbm {

struct CoordinatorOptions {
  // host:port to listen on; port 0 picks a free port.
  std::string listen_address = "127.0.0.1:0";
  // Jobs (jobs.db) and their outputs (jobs/<job-id>/).
  std::string data_dir = "out/coordinator";
  // Where stages write checkpoints: a directory every worker can reach. Empty:
  // `data_dir`/checkpoints.
  std::string checkpoint_dir;
  absl::Duration heartbeat_interval = absl::Seconds(1);
  // A worker unheard of for this long is not healthy.
  absl::Duration heartbeat_timeout = absl::Seconds(5);
  // How long a started job waits for the workers it was leased before it fails (a queued job
  // waits in the queue until enough are idle, however long).
  absl::Duration worker_wait = absl::Minutes(10);
  // A step that takes longer is failed (and recovered from).
  absl::Duration step_timeout = absl::Minutes(5);
  // host:port of the Prometheus /metrics endpoint; empty: none.
  std::string metrics_address;
  // TLS for every connection (workers must present a certificate from the CA, and the
  // coordinator presents its own to them), or plaintext (the default here for in-process
  // use; the binary asks for it explicitly with --plaintext).
  TransportSecurity security = TransportSecurity::Plaintext();
  // Users of the job API and their bearer tokens; required with TLS. Unset: the job API is
  // open (plaintext runs on one machine).
  std::optional<BearerTokens> tokens;
  // Job submissions per user per sliding minute, and jobs waiting at once (0: no limit).
  int64_t max_submits_per_minute = 60;
  int64_t max_queued_jobs = 100;
  // Queued or running jobs one user may have (0: no limit), and the users who may cancel
  // anyone's job (everyone else cancels only their own).
  int64_t max_unfinished_jobs_per_user = 0;
  std::set<std::string> admin_users;
  // How many jobs run at once (on disjoint workers), per user, and how often smaller jobs
  // may start ahead of a waiting one (PlanJobStarts).
  JobStartLimits job_start_limits = {/*max_running_jobs=*/8, /*max_running_jobs_per_user=*/0,
                                     /*max_overtakes=*/4};
  // Live progress of the running job (not owned); null: silent.
  std::FILE* progress = stdout;
};

class Coordinator {
 public:
  // Opens the data directory, resumes an interrupted job, and serves.
  static absl::StatusOr<std::unique_ptr<Coordinator>> Start(const CoordinatorOptions& options);
  ~Coordinator();
  Coordinator(const Coordinator&) = delete;
  Coordinator& operator=(const Coordinator&) = delete;

  int port() const { return port_; }
  // Port of /metrics; 0 without one.
  int metrics_port() const { return metrics_server_ ? metrics_server_->port() : 0; }
  WorkerRegistry& registry() { return registry_; }
  JobManager& jobs() { return *jobs_; }

  // Stops the running job before its next step (it stays RUNNING in the store, resumed by
  // the next start) and the server. Idempotent.
  void Shutdown(absl::Time deadline);

 private:
  explicit Coordinator(const CoordinatorOptions& options);
  // The JobRunner: one run of one job on the registered workers.
  absl::StatusOr<RunSummary> RunJob(const JobRun& run);
  // ExportModel's work: an ended job's final (or last complete) checkpoint stitched into
  // its output_dir/model, reused when already there for that step. One at a time.
  absl::StatusOr<ExportResult> ExportJob(const std::string& job_id);
  // The manifest of `job`'s checkpoint to export, writing one for the last complete
  // checkpoint of a job that did not succeed.
  absl::StatusOr<std::string> ExportManifest(const v1::Job& job);
  // Before a scrape: jobs by state, workers by health.
  void RefreshMetrics();

  CoordinatorOptions options_;
  WorkerRegistry registry_;
  ControlService control_;
  CoordinatorMetrics metrics_;
  SubmissionLimiter limiter_;
  std::unique_ptr<JobManager> jobs_;
  std::unique_ptr<JobService> job_service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<MetricsServer> metrics_server_;
  int port_ = 0;
  bool shut_down_ = false;
  // Exports in progress: Shutdown waits for them (their threads call into this object).
  absl::Mutex export_mu_;
  absl::Mutex export_count_mu_;
  int64_t exports_running_ ABSL_GUARDED_BY(export_count_mu_) = 0;
  bool exports_closed_ ABSL_GUARDED_BY(export_count_mu_) = false;
};

}  // namespace resbm

#endif  // RESBM_SERVICES_COORDINATOR_COORDINATOR_H_
