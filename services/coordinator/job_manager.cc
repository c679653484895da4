#include "services/coordinator/job_manager.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/config/job_config.h"
#include "common/modelio/model_init_check.h"
#include "common/status/failure_cause.h"
#include "common/status/status_macros.h"
#include "common/train/job_dataset.h"

namespace resbm {
namespace {

constexpr int kRecentRecoveries = 8;

// Appends `event` to the progress's last recoveries, keeping the newest kRecentRecoveries.
void AddRecoveryRecord(const RecoveryEvent& event, v1::JobProgress* progress) {
  v1::RecoveryRecord* record = progress->add_recent_recoveries();
  record->set_step(static_cast<uint64_t>(event.failed_step));
  record->set_resumed_after(static_cast<uint64_t>(event.resumed_after));
  record->set_code(absl::StatusCodeToString(event.failure.code()));
  record->set_cause(
      static_cast<v1::FailureCause>(CauseOf(event.failure).value_or(FailureCause::kUnspecified)));
  record->set_message(std::string(event.failure.message()));
  record->set_unix_ms(absl::ToUnixMillis(absl::Now()));
  auto* records = progress->mutable_recent_recoveries();
  if (records->size() > kRecentRecoveries) {
    records->DeleteSubrange(0, records->size() - kRecentRecoveries);
  }
}

int64_t NowUnixMs() { return absl::ToUnixMillis(absl::Now()); }

// The workers `job_id` of `queue` needs.
int64_t WorkersNeeded(const std::vector<PendingJob>& queue, const std::string& job_id) {
  for (const PendingJob& job : queue) {
    if (job.job_id == job_id) return job.workers;
  }
  return 0;
}

bool Finished(v1::JobState state) {
  return state == v1::JOB_STATE_SUCCEEDED || state == v1::JOB_STATE_FAILED ||
         state == v1::JOB_STATE_CANCELLED;
}

// The coordinator reads the data, so it checks that the files are there before accepting.
absl::Status CheckDataFiles(const v1::JobConfig& config) {
  auto check = [](const std::string& field, const std::string& path) -> absl::Status {
    std::error_code error;
    if (!std::filesystem::exists(path, error)) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ": '", path, "' does not exist on the coordinator; expected a file or directory"));
    }
    return absl::OkStatus();
  };
  const auto& data = config.data();
  if (data.has_byte_corpus()) {
    for (int i = 0; i < data.byte_corpus().paths_size(); ++i) {
      RESBM_RETURN_IF_ERROR(
          check(absl::StrCat("data.byte_corpus.paths[", i, "]"), data.byte_corpus().paths(i)));
    }
  }
  if (data.has_token_shards()) {
    for (int i = 0; i < data.token_shards().train_paths_size(); ++i) {
      RESBM_RETURN_IF_ERROR(check(absl::StrCat("data.token_shards.train_paths[", i, "]"),
                                  data.token_shards().train_paths(i)));
    }
    for (int i = 0; i < data.token_shards().val_paths_size(); ++i) {
      RESBM_RETURN_IF_ERROR(check(absl::StrCat("data.token_shards.val_paths[", i, "]"),
                                  data.token_shards().val_paths(i)));
    }
  }
  return absl::OkStatus();
}

// init.from_job names a job of this coordinator: it becomes that job's final checkpoint.
absl::Status ResolveFromJob(JobStore& store, v1::JobConfig* config) {
  v1::InitConfig* init = config->mutable_init();
  if (!init->has_from_job()) return absl::OkStatus();
  const std::string parent_id = init->from_job();
  absl::StatusOr<v1::Job> parent = store.Get(parent_id);
  if (!parent.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("init.from_job: '", parent_id, "' is not a job of this coordinator"));
  }
  if (parent->state() != v1::JOB_STATE_SUCCEEDED || !parent->has_final_checkpoint_step()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "init.from_job: '", parent_id, "' is ", v1::JobState_Name(parent->state()),
        " without a final checkpoint; expected a SUCCEEDED job (or use init.from_checkpoint "
        "or init.from_model with what resbmctl export wrote)"));
  }
  init->set_from_checkpoint(parent->final_checkpoint_manifest());
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<JobManager>> JobManager::Open(const std::string& data_dir,
                                                             JobRunner runner,
                                                             WorkerRegistry* registry,
                                                             JobManagerOptions options) {
  RESBM_RETURN_IF_ERROR(ValidateJobStartLimits(options.limits));
  std::error_code error;
  std::filesystem::create_directories(data_dir, error);
  if (error) {
    return absl::UnavailableError(
        absl::StrCat("data_dir: '", data_dir, "' cannot be created: ", error.message()));
  }
  RESBM_ASSIGN_OR_RETURN(auto store, JobStore::Open(data_dir + "/jobs.db"));
  std::unique_ptr<JobManager> manager(
      new JobManager(std::filesystem::absolute(data_dir).lexically_normal().string(),
                     std::move(store), std::move(runner), registry, std::move(options)));
  RESBM_ASSIGN_OR_RETURN(const std::vector<v1::Job> jobs, manager->store_->List());
  {
    absl::MutexLock lock(&manager->mu_);
    for (const v1::Job& job : jobs) {
      if (job.state() == v1::JOB_STATE_RUNNING) manager->resumable_.insert(job.job_id());
    }
  }
  registry->set_on_available([m = manager.get()] { m->WorkersChanged(); });
  manager->scheduler_thread_ = std::thread([m = manager.get()] { m->ScheduleLoop(); });
  return manager;
}

JobManager::JobManager(std::string data_dir, std::unique_ptr<JobStore> store, JobRunner runner,
                       WorkerRegistry* registry, JobManagerOptions options)
    : data_dir_(std::move(data_dir)),
      store_(std::move(store)),
      runner_(std::move(runner)),
      registry_(registry),
      limits_(options.limits),
      metrics_(options.metrics),
      on_stop_(std::move(options.on_stop)) {}

JobManager::~JobManager() {
  Shutdown();
  registry_->set_on_available(nullptr);  // Waits for a call in progress.
}

void JobManager::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (on_stop_) on_stop_();
  if (scheduler_thread_.joinable()) scheduler_thread_.join();
  std::vector<std::thread> runs;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [job_id, run] : running_) runs.push_back(std::move(run.thread));
  }
  for (std::thread& run : runs) {
    if (run.joinable()) run.join();
  }
}

void JobManager::WorkersChanged() {
  absl::MutexLock lock(&mu_);
  changed_ = true;
}

absl::StatusOr<v1::Job> JobManager::Submit(v1::JobConfig config, const std::string& owner,
                                           int32_t priority) {
  ApplyJobConfigDefaults(&config);
  RESBM_RETURN_IF_ERROR(ValidateJobConfig(config));
  RESBM_RETURN_IF_ERROR(CheckDataFiles(config));
  RESBM_RETURN_IF_ERROR(ResolveFromJob(*store_, &config));
  // Shapes and files of the source, before anything is stored (headers only: quick).
  RESBM_RETURN_IF_ERROR(ModelInitCheck::Check(config));
  v1::Job job;
  *job.mutable_config() = std::move(config);
  job.set_state(v1::JOB_STATE_QUEUED);
  job.set_owner(owner);
  job.set_priority(priority);
  job.set_submitted_unix_ms(NowUnixMs());
  job.mutable_progress()->set_total_steps(job.config().training().steps());
  absl::MutexLock publish(&publish_mu_);
  absl::MutexLock lock(&mu_);
  RESBM_ASSIGN_OR_RETURN(job, store_->Create(std::move(job), [this](v1::Job* created) {
    created->set_output_dir(absl::StrCat(data_dir_, "/jobs/", created->job_id()));
  }));
  changed_ = true;
  return job;
}

absl::StatusOr<v1::Job> JobManager::Get(const std::string& job_id) { return store_->Get(job_id); }

absl::StatusOr<std::vector<v1::Job>> JobManager::List() { return store_->List(); }

absl::StatusOr<v1::Job> JobManager::Cancel(const std::string& job_id) {
  absl::MutexLock publish(&publish_mu_);
  bool stopped_running = false;
  // Runs after mu_ is released (declared before its lock): the hook may take other locks
  // whose holders read stop_requested, which takes mu_.
  absl::Cleanup tell = [&] {
    if (stopped_running && on_stop_) on_stop_();
  };
  v1::Job job;
  {
    absl::MutexLock lock(&mu_);
    RESBM_ASSIGN_OR_RETURN(job, store_->Get(job_id));
    if (Finished(job.state())) {
      return absl::FailedPreconditionError(absl::StrCat("job_id: '", job_id, "' already ended (",
                                                        v1::JobState_Name(job.state()), ")"));
    }
    changed_ = true;  // The queue changed: the scheduler looks again.
    if (auto running = running_.find(job_id); running != running_.end()) {
      running->second.cancel = true;
      stopped_running = true;
      job.set_cancel_requested(true);  // Kept, should the coordinator restart meanwhile.
      RESBM_RETURN_IF_ERROR(store_->Put(job));
      job.set_message("cancelling: stops before its next step");
      return job;
    }
    overtaken_.erase(job_id);
    resumable_.erase(job_id);
    job.set_state(v1::JOB_STATE_CANCELLED);
    job.set_message("cancelled before it started");
    job.set_finished_unix_ms(NowUnixMs());
    RESBM_RETURN_IF_ERROR(store_->Put(job));
  }
  // Publish (after mu_ is released: it takes it) stores the same job again and tells the
  // watchers; publish_mu_ is still held, so events stay in order.
  PublishLocked(job, v1::JOB_EVENT_KIND_STATE, job.message());
  return job;
}

absl::StatusOr<int64_t> JobManager::Subscribe(const std::string& job_id, Listener listener) {
  absl::MutexLock publish(&publish_mu_);  // No event can come between snapshot and the rest.
  v1::JobEvent snapshot;
  snapshot.set_kind(v1::JOB_EVENT_KIND_SNAPSHOT);
  RESBM_ASSIGN_OR_RETURN(*snapshot.mutable_job(), store_->Get(job_id));
  listener(snapshot);
  absl::MutexLock lock(&mu_);
  const int64_t handle = next_handle_++;
  listeners_[handle] = {job_id, std::move(listener)};
  return handle;
}

void JobManager::Unsubscribe(int64_t handle) {
  absl::MutexLock publish(&publish_mu_);
  absl::MutexLock lock(&mu_);
  listeners_.erase(handle);
}

std::vector<std::string> JobManager::running_job_ids() const {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> ids;
  for (const auto& [job_id, run] : running_) {
    if (!run.done) ids.push_back(job_id);
  }
  return ids;
}

bool JobManager::CancelledLocked(const std::string& job_id) const {
  auto running = running_.find(job_id);
  return running != running_.end() && running->second.cancel;
}

int64_t JobManager::queued_jobs() const {
  auto jobs = store_->List();
  if (!jobs.ok()) return 0;
  int64_t queued = 0;
  for (const auto& job : *jobs) queued += job.state() == v1::JOB_STATE_QUEUED;
  return queued;
}

void JobManager::Publish(const v1::Job& job, v1::JobEventKind kind, const std::string& message) {
  absl::MutexLock publish(&publish_mu_);
  PublishLocked(job, kind, message);
}

void JobManager::PublishLocked(const v1::Job& job, v1::JobEventKind kind,
                               const std::string& message) {
  v1::JobEvent event;
  event.set_kind(kind);
  *event.mutable_job() = job;
  event.set_message(message);
  std::vector<Listener> targets;
  {
    absl::MutexLock lock(&mu_);
    // The runner's copy of the job does not know of a cancel request; the store must.
    if (CancelledLocked(job.job_id())) event.mutable_job()->set_cancel_requested(true);
    for (const auto& [handle, entry] : listeners_) {
      if (entry.first == job.job_id()) targets.push_back(entry.second);
    }
  }
  if (absl::Status stored = store_->Put(event.job()); !stored.ok()) {
    std::fprintf(stderr, "coordinator: %s\n", stored.ToString().c_str());
  }
  for (const auto& listener : targets) listener(event);
}

void JobManager::ScheduleLoop() {
  bool store_failed = false;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      auto wake = [this] { return changed_ || stopping_; };
      if (store_failed) {
        // The store failed to list (a transient SQLite error): look again in a second.
        mu_.AwaitWithTimeout(absl::Condition(&wake), absl::Seconds(1));
      } else {
        mu_.Await(absl::Condition(&wake));
      }
      if (stopping_) return;
      changed_ = false;
    }
    JoinEnded();
    store_failed = !SchedulePass();
  }
}

std::vector<PendingJob> JobManager::PendingJobs(const std::vector<v1::Job>& jobs) {
  std::vector<PendingJob> queue;
  for (const v1::Job& job : jobs) {
    // RUNNING and not run by this coordinator: interrupted by a restart (a run this one ended
    // is never started again, even if storing its end failed).
    const bool resumed = resumable_.count(job.job_id()) != 0;
    if (running_.count(job.job_id()) != 0) continue;
    if (!resumed && job.state() != v1::JOB_STATE_QUEUED) continue;
    PendingJob pending;
    pending.job_id = job.job_id();
    pending.owner = job.owner();
    pending.priority = job.priority();
    // Cancelled, then the coordinator restarted: it ends at once, on no worker.
    pending.workers = job.cancel_requested() ? 0 : JobWorkerCount(job.config());
    pending.overtaken = overtaken_[job.job_id()];
    pending.resumed = resumed;
    queue.push_back(std::move(pending));
  }
  return queue;
}

bool JobManager::SchedulePass() {
  absl::StatusOr<std::vector<v1::Job>> jobs = store_->List();
  if (!jobs.ok()) {
    std::fprintf(stderr, "coordinator: %s\n", jobs.status().ToString().c_str());
    return false;
  }
  JobPool pool;
  pool.idle_workers = registry_->IdleHealthy();
  pool.kept_workers = registry_->KeptIdle();
  pool.healthy_workers = static_cast<int64_t>(registry_->Healthy().size());
  std::vector<PendingJob> queue;
  JobStartPlan plan;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [job_id, run] : running_) {
      if (run.done) continue;
      ++pool.running_jobs;
      ++pool.running_by_owner[run.owner];
    }
    queue = PendingJobs(*jobs);
    plan = PlanJobStarts(queue, pool, limits_);
  }
  for (size_t i = 0; i < plan.start.size(); ++i) {
    const std::string& job_id = plan.start[i];
    const int64_t workers = WorkersNeeded(queue, job_id);
    if (workers > 0 && !registry_->Reserve(job_id, workers)) {
      HoldRest(queue, plan.start, i, &plan.waiting);
      break;
    }
    if (!Start(job_id)) continue;
    absl::MutexLock lock(&mu_);
    for (const std::string& overtaken : plan.overtakes[job_id]) ++overtaken_[overtaken];
  }
  // Only the reasons that changed: most passes repeat them, and each write is a store read.
  std::map<std::string, const std::string*> told;
  for (const v1::Job& job : *jobs) told[job.job_id()] = &job.message();
  for (const auto& [job_id, reason] : plan.waiting) {
    if (*told[job_id] != reason) TellWaiting(job_id, reason);
  }
  return true;
}

void JobManager::HoldRest(const std::vector<PendingJob>& queue,
                          const std::vector<std::string>& start, size_t from,
                          std::map<std::string, std::string>* waiting) {
  const bool recovering = registry_->waiting_jobs() > 0;
  JobPool pool;
  pool.idle_workers = registry_->IdleHealthy();
  pool.kept_workers = registry_->KeptIdle();
  for (size_t j = from; j < start.size(); ++j) {
    (*waiting)[start[j]] = recovering
                               ? "waits while a running job's recovery takes idle workers first"
                               : NeedsWorkersReason(WorkersNeeded(queue, start[j]), pool);
  }
  // A worker lapsed since the count: no event will come for it, so plan again with the new
  // count. (A waiting recovery wakes the scheduler itself when its wait ends.)
  if (!recovering) {
    absl::MutexLock lock(&mu_);
    changed_ = true;
  }
}

void JobManager::TellWaiting(const std::string& job_id, const std::string& reason) {
  absl::MutexLock publish(&publish_mu_);  // A cancel cannot come between the read and the write.
  absl::StatusOr<v1::Job> job = store_->Get(job_id);
  if (!job.ok() || job->message() == reason) return;
  bool waits = job->state() == v1::JOB_STATE_QUEUED;
  if (job->state() == v1::JOB_STATE_RUNNING) {  // Interrupted by a restart, not started again.
    absl::MutexLock lock(&mu_);
    waits = resumable_.count(job_id) != 0;
  }
  if (!waits) return;
  job->set_message(reason);
  PublishLocked(*job, v1::JOB_EVENT_KIND_STATE, reason);
}

bool JobManager::Start(const std::string& job_id) {
  absl::MutexLock publish(&publish_mu_);  // A cancel cannot come between the read and the start.
  absl::StatusOr<v1::Job> job = store_->Get(job_id);
  bool started = false;
  if (job.ok() && (job->state() == v1::JOB_STATE_QUEUED || job->state() == v1::JOB_STATE_RUNNING)) {
    absl::MutexLock lock(&mu_);
    if (!stopping_) {
      overtaken_.erase(job_id);
      resumable_.erase(job_id);
      Running& run = running_[job_id];
      run.owner = job->owner();
      // The thread's first Publish waits for publish_mu_: it starts once this returns.
      run.thread = std::thread([this, job = std::move(*job)]() mutable { RunOne(std::move(job)); });
      started = true;
    }
  }
  if (!started) registry_->ReleaseJob(job_id);  // Cancelled meanwhile: the lease goes.
  return started;
}

void JobManager::JoinEnded() {
  std::vector<std::thread> ended;
  {
    absl::MutexLock lock(&mu_);
    for (auto it = running_.begin(); it != running_.end();) {
      if (!it->second.done) {
        ++it;
        continue;
      }
      ended.push_back(std::move(it->second.thread));
      it = running_.erase(it);
    }
  }
  for (std::thread& thread : ended) thread.join();
}

void JobManager::RunOne(v1::Job job) {
  const std::string job_id = job.job_id();
  absl::Cleanup ended = [this, job_id] {
    registry_->ReleaseJob(job_id);
    if (metrics_ != nullptr) metrics_->JobEnded(job_id);
    absl::MutexLock lock(&mu_);
    running_[job_id].done = true;
    changed_ = true;
  };
  JobRun run;
  run.output_dir = job.output_dir();
  std::error_code error;
  std::filesystem::create_directories(run.output_dir, error);

  if (job.cancel_requested()) {  // Cancelled, then the coordinator restarted.
    job.set_state(v1::JOB_STATE_CANCELLED);
    job.set_message("cancelled by request");
    job.set_finished_unix_ms(NowUnixMs());
    job.clear_stage_addresses();
    Publish(job, v1::JOB_EVENT_KIND_STATE, job.message());
    return;
  }
  StartOrResume(&job, &run);
  AttachHooks(&job, &run);
  run.job = job;
  Conclude(&job, runner_(run));
}

void JobManager::StartOrResume(v1::Job* job, JobRun* run) {
  // A job already RUNNING was interrupted by a coordinator restart: resume it.
  if (job->state() == v1::JOB_STATE_RUNNING) {
    auto* progress = job->mutable_progress();
    const int64_t from = progress->has_checkpoint_step() ? progress->checkpoint_step() : 0;
    absl::Status truncated = store_->TruncateSteps(job->job_id(), from);
    auto steps = store_->Steps(job->job_id());
    if (truncated.ok() && steps.ok() && static_cast<int64_t>(steps->size()) == from &&
        progress->has_checkpoint_step()) {
      run->resume = TrainerResume{from, std::move(*steps), progress->recoveries()};
    } else {
      (void)store_->TruncateSteps(job->job_id(), 0);  // No usable checkpoint: from the start.
      progress->clear_checkpoint_step();
    }
    progress->set_step(run->resume ? from : 0);
    progress->set_resumes(progress->resumes() + 1);
    progress->set_recoveries_without_progress(0);  // A new run's policy starts counting.
    if (metrics_ != nullptr) metrics_->Resumed();
    Publish(*job, v1::JOB_EVENT_KIND_STATE,
            absl::StrCat("resuming after step ", progress->step(), " (coordinator restarted)"));
  } else {
    job->set_state(v1::JOB_STATE_RUNNING);
    job->set_started_unix_ms(NowUnixMs());
    job->set_message("");
    Publish(*job, v1::JOB_EVENT_KIND_STATE, "started");
  }
}

void JobManager::AttachStepHook(v1::Job* job, JobRun* run) {
  const std::string job_id = job->job_id();
  const int64_t steps_at_start = job->progress().step();
  const double seconds_at_start =
      run->resume && !run->resume->records.empty() ? run->resume->records.back().seconds : 0.0;
  auto last_seconds = std::make_shared<double>(seconds_at_start);
  run->hooks.on_step = [this, job, job_id, steps_at_start, seconds_at_start,
                        last_seconds](const StepRecord& record) {
    if (absl::Status status = store_->PutStep(job_id, record); !status.ok()) {
      std::fprintf(stderr, "coordinator: %s\n", status.ToString().c_str());
    }
    auto* p = job->mutable_progress();
    p->set_step(record.step);
    p->set_train_loss(record.stats.loss);
    if (record.val_loss.has_value()) p->set_val_loss(*record.val_loss);
    const double seconds = record.seconds - seconds_at_start;
    const int64_t tokens_per_step = record.tokens / std::max<int64_t>(1, record.step);
    const double rate =
        seconds > 0 ? (record.step - steps_at_start) * tokens_per_step / seconds : 0.0;
    p->set_tokens_per_second(rate);
    p->set_eta_seconds(rate > 0 ? (p->total_steps() - record.step) * tokens_per_step / rate : 0.0);
    if (metrics_ != nullptr) {
      metrics_->StepDone(job_id, record.step, record.seconds - *last_seconds, rate,
                         record.stats.loss);
      if (record.val_loss.has_value()) metrics_->Evaluated(job_id, *record.val_loss);
    }
    *last_seconds = record.seconds;
    job->set_message("");
    Publish(*job, v1::JOB_EVENT_KIND_STEP, "");
  };
}

void JobManager::AttachHooks(v1::Job* job, JobRun* run) {
  // The hooks run on the runner thread (the trainer's): `job` is only touched there.
  const std::string job_id = job->job_id();
  AttachStepHook(job, run);
  run->hooks.on_checkpoint = [this, job](int64_t step, int64_t recoveries_without_progress) {
    job->mutable_progress()->set_checkpoint_step(step);
    job->mutable_progress()->set_recoveries_without_progress(
        static_cast<uint32_t>(recoveries_without_progress));
    Publish(*job, v1::JOB_EVENT_KIND_CHECKPOINT, absl::StrCat("checkpoint after step ", step));
  };
  run->hooks.on_recovery = [this, job, job_id](const RecoveryEvent& event) {
    const int64_t step = event.resumed_after;
    (void)store_->TruncateSteps(job_id, step);
    auto* p = job->mutable_progress();
    p->set_recoveries(p->recoveries() + 1);
    p->set_recoveries_without_progress(static_cast<uint32_t>(event.without_progress));
    AddRecoveryRecord(event, p);
    if (metrics_ != nullptr) metrics_->Recovered(event.failure);
    p->set_step(step);
    Publish(*job, v1::JOB_EVENT_KIND_RECOVERY,
            absl::StrCat("recovered from ", absl::StatusCodeToString(event.failure.code()), " '",
                         event.failure.message(), "': resuming after step ", step));
  };
  run->hooks.on_end = [job](const RunSummary& summary) {
    *job->mutable_summary() = summary.ToProto();
  };
  // Stored with the next event (the first step's at the latest).
  run->hooks.on_data = [job](const DatasetFingerprint& data) {
    *job->mutable_data() = ToDataRecord(data);
  };
  run->hooks.on_initial_eval = [this, job](double val_loss) {
    job->mutable_progress()->set_initial_val_loss(val_loss);
    job->mutable_progress()->set_val_loss(val_loss);
    Publish(*job, v1::JOB_EVENT_KIND_EVALUATION,
            absl::StrFormat("initial val loss %.4f: the model it starts from", val_loss));
  };
  run->hooks.on_final_checkpoint = [this, job](int64_t step, const std::string& manifest) {
    job->set_final_checkpoint_step(static_cast<uint64_t>(step));
    job->set_final_checkpoint_manifest(manifest);
    Publish(*job, v1::JOB_EVENT_KIND_CHECKPOINT,
            absl::StrCat("final checkpoint after step ", step, ": ", manifest));
  };
  run->on_assigned = [this, job](const std::vector<std::string>& addresses) {
    job->clear_stage_addresses();
    for (const auto& address : addresses) job->add_stage_addresses(address);
    Publish(*job, v1::JOB_EVENT_KIND_STATE, "stages assigned");
  };
  run->on_status = [this, job](const std::string& message) {
    job->set_message(message);
    Publish(*job, v1::JOB_EVENT_KIND_STATE, message);
  };
  run->stop_requested = [this, job_id] {
    absl::MutexLock lock(&mu_);
    return stopping_ || CancelledLocked(job_id);
  };
}

void JobManager::Conclude(v1::Job* job, const absl::StatusOr<RunSummary>& summary) {
  bool cancelled, stopping;
  {
    absl::MutexLock lock(&mu_);
    cancelled = CancelledLocked(job->job_id());
    stopping = stopping_;
  }
  if (stopping && !cancelled && !summary.ok() && absl::IsCancelled(summary.status())) {
    return;  // Stopped by the shutdown: stays RUNNING, and the next coordinator resumes it.
  }
  job->clear_stage_addresses();
  job->set_finished_unix_ms(NowUnixMs());
  if (cancelled) {
    job->set_state(v1::JOB_STATE_CANCELLED);
    job->set_message("cancelled by request");
  } else if (summary.ok()) {
    job->set_state(v1::JOB_STATE_SUCCEEDED);
    job->set_message("");
    *job->mutable_summary() = summary->ToProto();
    job->mutable_progress()->set_step(job->progress().total_steps());
  } else {
    job->set_state(v1::JOB_STATE_FAILED);
    job->set_message(absl::StrCat(absl::StatusCodeToString(summary.status().code()), ": ",
                                  summary.status().message()));
  }
  Publish(*job, v1::JOB_EVENT_KIND_STATE, job->message().empty() ? "succeeded" : job->message());
}

}  // namespace resbm
