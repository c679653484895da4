// JobManager: the coordinator's job queue. Jobs are validated on submission, stored in a
// JobStore, and run by a JobRunner (the coordinator's: a Trainer over a DistributedBackend),
// each on a thread of its own, several at once on disjoint workers: a scheduler thread starts
// a queued job as soon as the worker registry can lease it enough idle workers, in the order
// and within the limits PlanJobStarts decides, and tells each waiting job why it waits.
// Progress, checkpoints and recoveries are stored as they happen and fanned out to watchers.
// A job that was RUNNING when the coordinator died is resumed first, from its last complete
// checkpoint. Thread-safe.
#ifndef RESBM_SERVICES_COORDINATOR_JOB_MANAGER_H_
#define RESBM_SERVICES_COORDINATOR_JOB_MANAGER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/train/run_summary.h"
#include "common/train/trainer.h"
#include "resbm/v1/job_service.pb.h"
#include "services/coordinator/coordinator_metrics.h"
#include "services/coordinator/job_start_plan.h"
#include "services/coordinator/job_store.h"
#include "services/coordinator/worker_registry.h"

namespace resbm {

// One run of a job, as the runner gets it.
struct JobRun {
  v1::Job job;
  // Where summary.json and losses.csv go (exists).
  std::string output_dir;
  // Set when the job resumes from a checkpoint after a coordinator restart.
  std::optional<TrainerResume> resume;
  TrainerHooks hooks;
  // True once the job is cancelled or the coordinator stops: end the run soon.
  std::function<bool()> stop_requested;
  // The runner reports each (re)assignment of the stages.
  std::function<void(const std::vector<std::string>& stage_addresses)> on_assigned;
  // The runner reports what it is waiting for ("waiting for 2 workers, 1 healthy").
  std::function<void(const std::string& message)> on_status;
};

using JobRunner = std::function<absl::StatusOr<RunSummary>(const JobRun& run)>;

struct JobManagerOptions {
  // When jobs start (PlanJobStarts).
  JobStartLimits limits;
  // Steps, recoveries and resumes are counted here (not owned); may be null.
  CoordinatorMetrics* metrics = nullptr;
  // Called, with no lock of the manager held, whenever a running job's stop_requested turns
  // true (a cancel or the shutdown), so whatever the run waits on can wake and look. May be
  // empty.
  std::function<void()> on_stop;
};

class JobManager {
 public:
  using Listener = std::function<void(const v1::JobEvent& event)>;

  // Opens `data_dir`/jobs.db (creating the directory) and starts the scheduler. Each job
  // leases its workers from `registry` (not owned; outlives the manager), which tells the
  // manager when workers become available.
  static absl::StatusOr<std::unique_ptr<JobManager>> Open(const std::string& data_dir,
                                                          JobRunner runner,
                                                          WorkerRegistry* registry,
                                                          JobManagerOptions options = {});
  // Shutdown().
  ~JobManager();
  JobManager(const JobManager&) = delete;
  JobManager& operator=(const JobManager&) = delete;

  // Applies the defaults, validates (INVALID_ARGUMENT naming field, value and expectation;
  // nothing is stored then), resolves init.from_job to that job's final checkpoint, checks the
  // init source against the model (ModelInitCheck) and queues the job.
  // `owner`: the submitting user ("" for an open API), recorded as Job.owner; `priority`:
  // higher starts first among queued jobs.
  absl::StatusOr<v1::Job> Submit(v1::JobConfig config, const std::string& owner,
                                 int32_t priority = 0);
  absl::StatusOr<v1::Job> Get(const std::string& job_id);
  absl::StatusOr<std::vector<v1::Job>> List();
  // QUEUED: cancelled now. RUNNING: stops before its next step (the returned job is still
  // RUNNING; its STATE event follows). Finished: FAILED_PRECONDITION.
  absl::StatusOr<v1::Job> Cancel(const std::string& job_id);

  // Calls `listener` with a SNAPSHOT event of the job as it is (before Subscribe returns),
  // then with every later event of the job, in order (on the thread that publishes it, never
  // after Unsubscribe returns). Returns a handle for Unsubscribe.
  absl::StatusOr<int64_t> Subscribe(const std::string& job_id, Listener listener);
  void Unsubscribe(int64_t handle);

  // The running jobs' ids (sorted) and the number of queued jobs.
  std::vector<std::string> running_job_ids() const;
  int64_t queued_jobs() const;

  // The registry's word that workers may have become available: the scheduler looks again.
  void WorkersChanged();

  // Stops the scheduler and the runs: a running job stops before its next step and stays
  // RUNNING in the store, to be resumed by the next coordinator. Idempotent.
  void Shutdown();

 private:
  // A job the manager runs now.
  struct Running {
    std::string owner;
    bool cancel = false;  // Cancelled while running: ends before its next step.
    bool done = false;    // The run ended; its thread can be joined.
    std::thread thread;
  };

  JobManager(std::string data_dir, std::unique_ptr<JobStore> store, JobRunner runner,
             WorkerRegistry* registry, JobManagerOptions options);
  // The scheduler thread: a pass whenever something changed (a submission, a cancel, a run
  // that ended, workers that became available).
  void ScheduleLoop();
  // Starts what PlanJobStarts says may start and tells the others why they wait; false when
  // the store could not be read.
  bool SchedulePass();
  // The queue as PlanJobStarts takes it, from the stored jobs that do not run now.
  std::vector<PendingJob> PendingJobs(const std::vector<v1::Job>& jobs)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Stores a waiting job's reason as its message (when it changed and the job still waits:
  // queued, or interrupted by a coordinator restart and not resumed yet).
  void TellWaiting(const std::string& job_id, const std::string& reason);
  // Starts job `job_id` on a thread of its own (its workers are leased), unless it was
  // cancelled meanwhile (false; the lease goes).
  bool Start(const std::string& job_id);
  // The plan's starts from `from` on could not have their workers: each waits, saying why.
  void HoldRest(const std::vector<PendingJob>& queue, const std::vector<std::string>& start,
                size_t from, std::map<std::string, std::string>* waiting);
  // Joins the threads of the runs that ended.
  void JoinEnded();
  // One run, on its own thread; lets its workers go and wakes the scheduler when it ends.
  void RunOne(v1::Job job);
  // RUNNING now: started, or resumed from its last checkpoint after a coordinator restart
  // (run->resume set).
  void StartOrResume(v1::Job* job, JobRun* run);
  // The runner's hooks: store and publish `job` (which must outlive the run) as it goes.
  void AttachHooks(v1::Job* job, JobRun* run);
  // AttachHooks' step hook: the step stored, the progress (rate, ETA) and metrics updated.
  void AttachStepHook(v1::Job* job, JobRun* run);
  // The job's end state from the run's outcome (or none: a shutdown leaves it RUNNING).
  void Conclude(v1::Job* job, const absl::StatusOr<RunSummary>& summary);
  // Stores `job` and sends `kind` to its watchers.
  void Publish(const v1::Job& job, v1::JobEventKind kind, const std::string& message)
      ABSL_LOCKS_EXCLUDED(publish_mu_);
  void PublishLocked(const v1::Job& job, v1::JobEventKind kind, const std::string& message)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(publish_mu_);

  // Whether job `job_id` runs and was cancelled.
  bool CancelledLocked(const std::string& job_id) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string data_dir_;
  std::unique_ptr<JobStore> store_;
  JobRunner runner_;
  WorkerRegistry* const registry_;
  const JobStartLimits limits_;
  CoordinatorMetrics* const metrics_;
  const std::function<void()> on_stop_;

  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // Something changed since the scheduler's last pass.
  bool changed_ ABSL_GUARDED_BY(mu_) = true;
  std::map<std::string, Running> running_ ABSL_GUARDED_BY(mu_);
  // Jobs started ahead of each waiting job (PendingJob::overtaken), since this start.
  std::map<std::string, int64_t> overtaken_ ABSL_GUARDED_BY(mu_);
  // Jobs RUNNING in the store when the manager opened (interrupted by a restart) and not
  // started again yet.
  std::set<std::string> resumable_ ABSL_GUARDED_BY(mu_);
  int64_t next_handle_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<int64_t, std::pair<std::string, Listener>> listeners_ ABSL_GUARDED_BY(mu_);
  // Serializes Publish so watchers see events in order and never after Unsubscribe.
  absl::Mutex publish_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  std::thread scheduler_thread_;
};

}  // namespace resbm

#endif  // RESBM_SERVICES_COORDINATOR_JOB_MANAGER_H_
