#include "services/coordinator/job_service.h"

#include <algorithm>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/config/job_config.h"
#include "common/status/grpc_status.h"
#include "common/status/status_macros.h"
#include "services/coordinator/watch_job_reactor.h"

namespace resbm {
namespace {

// Finishes a unary call with `result`'s status, moving its value into `response` when OK.
template <typename T>
grpc::ServerUnaryReactor* Answer(grpc::CallbackServerContext* context, absl::StatusOr<T> result,
                                 T* response) {
  auto* reactor = context->DefaultReactor();
  if (result.ok()) *response = std::move(*result);
  reactor->Finish(ToGrpcStatus(result.status()));
  return reactor;
}

// Ends a server-streaming call that was refused before it started.
template <typename Message>
class RefusedStream final : public grpc::ServerWriteReactor<Message> {
 public:
  explicit RefusedStream(const absl::Status& status) { this->Finish(ToGrpcStatus(status)); }
  void OnDone() override { delete this; }
};

absl::Status CheckJobId(const std::string& job_id) {
  if (job_id.empty()) return absl::InvalidArgumentError("job_id: empty; expected e.g. 'job-1'");
  return absl::OkStatus();
}

}  // namespace

JobService::JobService(JobManager* manager, WorkerRegistry* registry, const BearerTokens* tokens,
                       SubmissionLimiter* limiter, JobServicePolicy policy,
                       ModelExportFn export_model)
    : manager_(manager),
      registry_(registry),
      tokens_(tokens),
      limiter_(limiter),
      policy_(std::move(policy)),
      export_model_(std::move(export_model)) {}

absl::StatusOr<std::string> JobService::Authenticate(
    const grpc::CallbackServerContext& context) const {
  if (tokens_ == nullptr) return std::string();
  return tokens_->Authenticate(context);
}

grpc::ServerUnaryReactor* JobService::SubmitJob(grpc::CallbackServerContext* context,
                                                const v1::SubmitJobRequest* request,
                                                v1::Job* response) {
  absl::StatusOr<std::string> user = Authenticate(*context);
  if (!user.ok()) return Answer<v1::Job>(context, user.status(), response);
  if (absl::Status limited = CheckUserLimits(*user); !limited.ok()) {
    return Answer<v1::Job>(context, limited, response);
  }
  if (limiter_ != nullptr) {
    if (absl::Status admitted = limiter_->Admit(*user); !admitted.ok()) {
      return Answer<v1::Job>(context, admitted, response);
    }
  }
  return Answer(context, manager_->Submit(request->config(), *user, request->priority()), response);
}

absl::Status JobService::CheckUserLimits(const std::string& user) {
  const int64_t queued = manager_->queued_jobs();
  if (policy_.max_queued_jobs > 0 && queued >= policy_.max_queued_jobs) {
    return absl::ResourceExhaustedError(
        absl::StrCat("queue: ", queued, " jobs waiting; expected at most ", policy_.max_queued_jobs,
                     " (resbm-coordinator --max-queued-jobs); retry when one starts"));
  }
  if (policy_.max_unfinished_jobs_per_user == 0) return absl::OkStatus();
  RESBM_ASSIGN_OR_RETURN(const std::vector<v1::Job> jobs, manager_->List());
  int64_t unfinished = 0;
  for (const v1::Job& job : jobs) {
    const bool active = job.state() == v1::JOB_STATE_QUEUED || job.state() == v1::JOB_STATE_RUNNING;
    if (active && job.owner() == user) ++unfinished;
  }
  if (unfinished < policy_.max_unfinished_jobs_per_user) return absl::OkStatus();
  return absl::ResourceExhaustedError(
      absl::StrCat("user '", user, "': ", unfinished, " jobs queued or running; expected at most ",
                   policy_.max_unfinished_jobs_per_user,
                   " (resbm-coordinator --max-unfinished-jobs-per-user); retry when one ends"));
}

absl::Status JobService::CheckMayCancel(const std::string& user, const std::string& job_id) {
  if (tokens_ == nullptr || policy_.admins.count(user) != 0) return absl::OkStatus();
  RESBM_ASSIGN_OR_RETURN(const v1::Job job, manager_->Get(job_id));
  if (job.owner() == user) return absl::OkStatus();
  return absl::PermissionDeniedError(absl::StrCat(
      "job '", job_id, "' belongs to ", job.owner().empty() ? "nobody" : "'" + job.owner() + "'",
      "; user '", user, "' may cancel only its own jobs (admins: --admin-users)"));
}

grpc::ServerUnaryReactor* JobService::GetJob(grpc::CallbackServerContext* context,
                                             const v1::GetJobRequest* request, v1::Job* response) {
  if (auto user = Authenticate(*context); !user.ok()) {
    return Answer<v1::Job>(context, user.status(), response);
  }
  if (absl::Status status = CheckJobId(request->job_id()); !status.ok()) {
    return Answer<v1::Job>(context, status, response);
  }
  return Answer(context, manager_->Get(request->job_id()), response);
}

grpc::ServerUnaryReactor* JobService::ListJobs(grpc::CallbackServerContext* context,
                                               const v1::ListJobsRequest* request,
                                               v1::ListJobsResponse* response) {
  if (auto user = Authenticate(*context); !user.ok()) {
    return Answer<v1::ListJobsResponse>(context, user.status(), response);
  }
  auto jobs = manager_->List();
  if (!jobs.ok()) return Answer<v1::ListJobsResponse>(context, jobs.status(), response);
  v1::ListJobsResponse list;
  for (auto& job : *jobs) *list.add_jobs() = std::move(job);
  return Answer(context, absl::StatusOr<v1::ListJobsResponse>(std::move(list)), response);
}

grpc::ServerUnaryReactor* JobService::CancelJob(grpc::CallbackServerContext* context,
                                                const v1::CancelJobRequest* request,
                                                v1::Job* response) {
  absl::StatusOr<std::string> user = Authenticate(*context);
  if (!user.ok()) return Answer<v1::Job>(context, user.status(), response);
  if (absl::Status status = CheckJobId(request->job_id()); !status.ok()) {
    return Answer<v1::Job>(context, status, response);
  }
  if (absl::Status allowed = CheckMayCancel(*user, request->job_id()); !allowed.ok()) {
    return Answer<v1::Job>(context, allowed, response);
  }
  return Answer(context, manager_->Cancel(request->job_id()), response);
}

grpc::ServerWriteReactor<v1::JobEvent>* JobService::WatchJob(grpc::CallbackServerContext* context,
                                                             const v1::WatchJobRequest* request) {
  if (auto user = Authenticate(*context); !user.ok()) {
    return new RefusedStream<v1::JobEvent>(user.status());
  }
  return WatchJobReactor::Start(manager_, request->job_id());
}

grpc::ServerUnaryReactor* JobService::GetClusterStatus(grpc::CallbackServerContext* context,
                                                       const v1::GetClusterStatusRequest* request,
                                                       v1::ClusterStatus* response) {
  if (auto user = Authenticate(*context); !user.ok()) {
    return Answer<v1::ClusterStatus>(context, user.status(), response);
  }
  absl::StatusOr<std::vector<v1::Job>> jobs = manager_->List();
  if (!jobs.ok()) return Answer<v1::ClusterStatus>(context, jobs.status(), response);
  return Answer(context, absl::StatusOr<v1::ClusterStatus>(ClusterView(*jobs)), response);
}

v1::ClusterStatus JobService::ClusterView(std::vector<v1::Job> jobs) const {
  // Running jobs in the order they started, then the queue as the scheduler orders it.
  auto active = [](const v1::Job& job) {
    return job.state() == v1::JOB_STATE_RUNNING || job.state() == v1::JOB_STATE_QUEUED;
  };
  jobs.erase(std::remove_if(jobs.begin(), jobs.end(), [&](const v1::Job& j) { return !active(j); }),
             jobs.end());
  std::stable_sort(jobs.begin(), jobs.end(), [](const v1::Job& a, const v1::Job& b) {
    if (a.state() != b.state()) return a.state() == v1::JOB_STATE_RUNNING;
    if (a.state() == v1::JOB_STATE_RUNNING) return a.started_unix_ms() < b.started_unix_ms();
    return a.priority() > b.priority();
  });
  v1::ClusterStatus status;
  std::map<std::string, uint32_t> held;
  const absl::Time now = absl::Now();
  for (const auto& worker : registry_->All()) {
    auto* w = status.add_workers();
    w->set_worker_id(worker.id);
    w->set_address(worker.address);
    w->set_device(worker.device);
    w->set_healthy(registry_->IsHealthy(worker));
    w->set_last_seen_ms_ago(absl::ToInt64Milliseconds(now - worker.last_seen));
    w->set_job_id(worker.job_id);
    if (worker.job_id.empty()) continue;
    if (registry_->IsHealthy(worker)) ++held[worker.job_id];
    auto job = std::find_if(jobs.begin(), jobs.end(),
                            [&](const v1::Job& j) { return j.job_id() == worker.job_id; });
    if (job == jobs.end()) continue;
    // Pipeline r's stage s at slot r * P + s.
    const auto& slots = job->stage_addresses();
    const int slot =
        static_cast<int>(std::find(slots.begin(), slots.end(), worker.address) - slots.begin());
    if (slot == slots.size()) continue;
    const uint32_t stages = std::max<uint32_t>(1, job->config().stages().num_stages());
    w->set_assigned(true);
    w->set_stage(static_cast<uint32_t>(slot) % stages);
    w->set_replica(static_cast<uint32_t>(slot) / stages);
  }
  for (const v1::Job& job : jobs) {
    v1::ClusterJob* j = status.add_jobs();
    j->set_job_id(job.job_id());
    j->set_state(job.state());
    j->set_owner(job.owner());
    j->set_priority(job.priority());
    j->set_workers_needed(static_cast<uint32_t>(JobWorkerCount(job.config())));
    j->set_workers_held(held[job.job_id()]);
    j->set_message(job.message());
    if (job.state() == v1::JOB_STATE_QUEUED) status.set_queued_jobs(status.queued_jobs() + 1);
  }
  status.set_idle_workers(static_cast<uint32_t>(registry_->IdleHealthy()));
  return status;
}

grpc::ServerWriteReactor<v1::ExportModelChunk>* JobService::ExportModel(
    grpc::CallbackServerContext* context, const v1::ExportModelRequest* request) {
  using Refused = RefusedStream<v1::ExportModelChunk>;
  if (auto user = Authenticate(*context); !user.ok()) return new Refused(user.status());
  if (absl::Status status = CheckJobId(request->job_id()); !status.ok()) {
    return new Refused(status);
  }
  if (!export_model_) return new Refused(absl::UnimplementedError("export: not configured"));
  if (exports_->fetch_add(1) >= kMaxExports) {
    exports_->fetch_sub(1);
    return new Refused(absl::ResourceExhaustedError(
        absl::StrCat("export: ", kMaxExports, " exports running; retry when one ends")));
  }
  return ExportModelReactor::Start(export_model_, request->job_id(),
                                   [exports = exports_] { exports->fetch_sub(1); });
}

}  // namespace resbm
