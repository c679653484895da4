// StageWorkerService: the StageWorker gRPC service (callback API). Unary calls post their
// work to the executor thread, which owns the StageSession; Exchange hands each incoming
// boundary stream to an ExchangeServerReactor and keeps its link as the upstream link.
// Reactions never block and never run the model. A running step has a cancellation token:
// its RunStep call's cancellation trips it, and so do the control calls that make the step
// moot (Assign; Release and LoadCheckpoint of its job; Stop), so they never wait behind a
// step blocked on a lost neighbour. Thread-safe.
#ifndef RESBM_SERVICES_STAGE_WORKER_STAGE_WORKER_SERVICE_H_
#define RESBM_SERVICES_STAGE_WORKER_STAGE_WORKER_SERVICE_H_

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/runtime/cancellation.h"
#include "common/runtime/executor_thread.h"
#include "common/transport/frame_link.h"
#include "resbm/v1/stage_worker.grpc.pb.h"
#include "services/stage_worker/raw_stage_worker_service.h"
#include "services/stage_worker/stage_session.h"

namespace resbm {

class StageWorkerService final : public RawStageWorkerService {
 public:
  explicit StageWorkerService(const StageSessionOptions& options);
  ~StageWorkerService() override;  // Stops the executor (and drops the session on it).

  grpc::ServerUnaryReactor* Assign(grpc::CallbackServerContext* context,
                                   const v1::AssignRequest* request,
                                   v1::AssignResponse* response) override;
  grpc::ServerUnaryReactor* RunStep(grpc::CallbackServerContext* context,
                                    const v1::RunStepRequest* request,
                                    v1::RunStepResponse* response) override;
  grpc::ServerUnaryReactor* ApplyStep(grpc::CallbackServerContext* context,
                                      const v1::ApplyStepRequest* request,
                                      v1::ApplyStepResponse* response) override;
  grpc::ServerUnaryReactor* SaveCheckpoint(grpc::CallbackServerContext* context,
                                           const v1::SaveCheckpointRequest* request,
                                           v1::SaveCheckpointResponse* response) override;
  grpc::ServerUnaryReactor* LoadCheckpoint(grpc::CallbackServerContext* context,
                                           const v1::LoadCheckpointRequest* request,
                                           v1::LoadCheckpointResponse* response) override;
  grpc::ServerUnaryReactor* Release(grpc::CallbackServerContext* context,
                                    const v1::ReleaseRequest* request,
                                    v1::ReleaseResponse* response) override;
  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* Exchange(
      grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* FetchState(grpc::CallbackServerContext* context,
                                       const v1::FetchStateRequest* request,
                                       v1::FetchStateResponse* response) override;
  // Delivered at once (the executor is the one waiting for it), never queued behind a step.
  grpc::ServerUnaryReactor* ReduceChunk(grpc::CallbackServerContext* context,
                                        const grpc::ByteBuffer* request,
                                        grpc::ByteBuffer* response) override;

  // Stops accepting work and joins the executor; pending calls finish with UNAVAILABLE.
  void Stop();

 private:
  // Shuts the link from the previous stage down and forgets it (a rewire: a new one comes).
  void DropUpstream();
  // The budget of the current upstream link and of every later one.
  void SetUpstreamBudget(int64_t bytes);
  // The link from the previous stage, waiting until `deadline` for its stream to arrive (the
  // first step can start before the previous stage's call reaches this server) or `cancel`.
  std::shared_ptr<FrameLink> WaitForUpstream(absl::Time deadline, const Cancellation& cancel);
  // Trips the running step's token with `why` if it serves `job_id` (null: any job).
  void CancelRunningStep(const std::string* job_id, const absl::Status& why);
  // Publishes the step the executor runs, for its lifetime.
  class RunningStep {
   public:
    RunningStep(StageWorkerService* service, std::shared_ptr<Cancellation> cancel,
                const std::string& job_id);
    ~RunningStep();

   private:
    StageWorkerService* const service_;
  };

  const StageSessionOptions options_;
  absl::Mutex mu_;
  absl::CondVar upstream_changed_;
  std::shared_ptr<FrameLink> upstream_ ABSL_GUARDED_BY(mu_);
  // The assignment's inbox budget (StageSession::InboxBudgetBytes), for every upstream link;
  // 0 before the first assignment: one frame at a time.
  int64_t upstream_budget_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  std::shared_ptr<Cancellation> running_step_ ABSL_GUARDED_BY(mu_);
  std::string running_job_ ABSL_GUARDED_BY(mu_);
  // Touched only on the executor thread.
  std::unique_ptr<StageSession> session_;
  ExecutorThread executor_;  // Last: joined first on destruction.
};

}  // namespace resbm

#endif  // RESBM_SERVICES_STAGE_WORKER_STAGE_WORKER_SERVICE_H_
