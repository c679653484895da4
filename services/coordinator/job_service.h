// JobService: the coordinator's public job API (callback API) over a JobManager and the
// worker registry. Unary calls answer at once (a store read or write); WatchJob streams
// through a WatchJobReactor. Thread-safe.
#ifndef RESBM_SERVICES_COORDINATOR_JOB_SERVICE_H_
#define RESBM_SERVICES_COORDINATOR_JOB_SERVICE_H_

#include <atomic>
#include <memory>
#include <set>
#include <vector>

#include "absl/status/status.h"
#include "common/transport/bearer_tokens.h"
#include "resbm/v1/job_service.grpc.pb.h"
#include "services/coordinator/export_model_reactor.h"
#include "services/coordinator/job_manager.h"
#include "services/coordinator/submission_limiter.h"
#include "services/coordinator/worker_registry.h"

namespace resbm {

// Who may do what with the job API beyond authenticating.
struct JobServicePolicy {
  // Jobs waiting at once (0: no limit); more submissions are RESOURCE_EXHAUSTED.
  int64_t max_queued_jobs = 0;
  // Unfinished (queued or running) jobs one user may have (0: no limit).
  int64_t max_unfinished_jobs_per_user = 0;
  // Users who may cancel anyone's job; everyone else only their own.
  std::set<std::string> admins;
};

class JobService final : public v1::JobService::CallbackService {
 public:
  // None is owned; all must outlive the service. With `tokens` (may be null: an open API)
  // every call must carry one of them ("authorization: Bearer <token>"), else UNAUTHENTICATED.
  // Submissions past `limiter` (may be null: unlimited) or `policy`'s limits are
  // RESOURCE_EXHAUSTED; with tokens, cancelling a job of another user is PERMISSION_DENIED
  // unless the caller is one of `policy.admins`.
  // `export_model` (may be empty: ExportModel is UNIMPLEMENTED) runs on an export's own
  // thread; at most kMaxExports run at once, more are RESOURCE_EXHAUSTED.
  JobService(JobManager* manager, WorkerRegistry* registry, const BearerTokens* tokens = nullptr,
             SubmissionLimiter* limiter = nullptr, JobServicePolicy policy = {},
             ModelExportFn export_model = nullptr);

  static constexpr int kMaxExports = 4;

  grpc::ServerUnaryReactor* SubmitJob(grpc::CallbackServerContext* context,
                                      const v1::SubmitJobRequest* request,
                                      v1::Job* response) override;
  grpc::ServerUnaryReactor* GetJob(grpc::CallbackServerContext* context,
                                   const v1::GetJobRequest* request, v1::Job* response) override;
  grpc::ServerUnaryReactor* ListJobs(grpc::CallbackServerContext* context,
                                     const v1::ListJobsRequest* request,
                                     v1::ListJobsResponse* response) override;
  grpc::ServerUnaryReactor* CancelJob(grpc::CallbackServerContext* context,
                                      const v1::CancelJobRequest* request,
                                      v1::Job* response) override;
  grpc::ServerWriteReactor<v1::JobEvent>* WatchJob(grpc::CallbackServerContext* context,
                                                   const v1::WatchJobRequest* request) override;
  grpc::ServerUnaryReactor* GetClusterStatus(grpc::CallbackServerContext* context,
                                             const v1::GetClusterStatusRequest* request,
                                             v1::ClusterStatus* response) override;
  grpc::ServerWriteReactor<v1::ExportModelChunk>* ExportModel(
      grpc::CallbackServerContext* context, const v1::ExportModelRequest* request) override;

 private:
  // The caller's user name ("" for an open API), or UNAUTHENTICATED.
  // RESOURCE_EXHAUSTED when `user` may not queue another job (policy limits).
  absl::Status CheckUserLimits(const std::string& user);
  // PERMISSION_DENIED unless `user` owns `job_id`'s job or is an admin (with tokens).
  absl::Status CheckMayCancel(const std::string& user, const std::string& job_id);
  absl::StatusOr<std::string> Authenticate(const grpc::CallbackServerContext& context) const;
  // GetClusterStatus' answer from every stored job and the registry's workers.
  v1::ClusterStatus ClusterView(std::vector<v1::Job> jobs) const;

  JobManager* manager_;
  WorkerRegistry* registry_;
  const BearerTokens* tokens_;
  SubmissionLimiter* limiter_;
  const JobServicePolicy policy_;
  ModelExportFn export_model_;
  // Exports streaming now; each reactor gives its place back when done (possibly after the
  // service is gone: hence shared).
  std::shared_ptr<std::atomic<int>> exports_ = std::make_shared<std::atomic<int>>(0);
};

}  // namespace resbm

#endif  // RESBM_SERVICES_COORDINATOR_JOB_SERVICE_H_
