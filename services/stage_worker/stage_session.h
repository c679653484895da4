// StageSession: one stage assignment as the worker's executor thread runs it: the stage
// (WireStageRunner: model, optimizer, device transfers), the link to the next stage and the
// sender; each step is a StepRun over them. Only the executor
// thread touches it (it owns the module and the device); not thread-safe.
#ifndef RESBM_SERVICES_STAGE_WORKER_STAGE_SESSION_H_
#define RESBM_SERVICES_STAGE_WORKER_STAGE_SESSION_H_

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/model/wire_stage_runner.h"
#include "common/runtime/cancellation.h"
#include "common/transport/frame_link.h"
#include "resbm/v1/stage_worker.grpc.pb.h"
#include "services/stage_worker/frame_sender.h"
#include "services/stage_worker/gradient_ring.h"
#include "services/stage_worker/reduce_inbox.h"
#include "services/stage_worker/stage_metrics.h"

namespace resbm {

struct StageSessionOptions {
  // A LibTorch device string (ResolveComputeDevice): "cpu", "cuda", "cuda:1".
  std::string device = "cpu";
  // How long Create waits for the next stage to accept a connection.
  absl::Duration connect_timeout = absl::Seconds(10);
  // Frames queued for sending, and tensors waiting for the sender, before either blocks
  // (backpressure).
  int64_t max_queued_frames = 8;
  // Where the session reports its traffic, timings and errors (not owned); may be null.
  StageMetrics* metrics = nullptr;
  // Of the stream to the next stage (TLS with this worker's certificate); null: plaintext.
  std::shared_ptr<grpc::ChannelCredentials> channel_credentials;
  // The only directory this worker writes checkpoints to and reads them from (absolute; the
  // coordinator's --checkpoint-dir, shared). Empty: checkpoint requests are refused.
  std::string checkpoint_dir;
  // Where the previous replica's all-reduce chunks arrive (the service delivers them);
  // required when the assignment has several replicas.
  std::shared_ptr<ReduceInbox> reduce_inbox;
};

class StageSession {
 public:
  static absl::StatusOr<std::unique_ptr<StageSession>> Create(const v1::StageAssignment& assignment,
                                                              const StageSessionOptions& options);
  ~StageSession();  // Ends the stream to the next stage.
  StageSession(const StageSession&) = delete;
  StageSession& operator=(const StageSession&) = delete;

  // Runs this stage's ops of one step (a StepRun). `upstream` is the link from the previous
  // stage (null on stage 0). Fails the step (and drops its gradients) on the first bad frame,
  // lost neighbour, missed `deadline` or when `cancel` trips.
  absl::StatusOr<v1::RunStepResponse> RunStep(const v1::RunStepRequest& request,
                                              const std::shared_ptr<FrameLink>& upstream,
                                              absl::Time deadline,
                                              std::shared_ptr<Cancellation> cancel);
  // Applies optimizer step `step` once: a step already applied (a redone step carries the
  // previous update again) is skipped; one past the next is FAILED_PRECONDITION (an update
  // this stage missed: its state would differ from its replicas').
  // With an outer optimizer, a step that ends its period then synchronises the stage's
  // replicas (by `deadline`, or sooner if `cancel` trips); one whose synchronisation failed
  // synchronises when its update is carried again.
  absl::Status ApplyStep(const v1::ApplyStepRequest& request, absl::Time deadline,
                         const Cancellation* cancel);
  // Takes a new downstream address and replica ring for the same job and stage, keeping
  // the stage's state (AssignRequest.keep_state).
  absl::Status Rewire(const v1::StageAssignment& assignment);
  // The stage's state for a new replica (FetchState), and taking it from the worker at
  // `address` (AssignRequest.state_from).
  absl::StatusOr<v1::FetchStateResponse> FetchState(const v1::FetchStateRequest& request) const;
  absl::Status AdoptStateFrom(const std::string& address);
  // Returns the size of the written file.
  absl::StatusOr<int64_t> SaveCheckpoint(const v1::SaveCheckpointRequest& request,
                                         absl::Time deadline);
  // Returns the restored step.
  absl::StatusOr<int64_t> LoadCheckpoint(const v1::LoadCheckpointRequest& request);

  const v1::StageAssignment& assignment() const { return assignment_; }
  int64_t parameter_count() const;
  // What each boundary link's mailbox may hold before it stops reading: two steps' frames
  // (the window it accepts) of the largest microbatch, plus two, at the wire width and dtype.
  int64_t inbox_budget_bytes() const { return inbox_budget_bytes_; }

 private:
  StageSession(const v1::StageAssignment& assignment, const StageSessionOptions& options,
               std::unique_ptr<WireStageRunner> stage);
  StageRunner& runner() { return stage_->runner(); }
  const StageRunner& runner() const { return stage_->runner(); }
  absl::Status ConnectDownstream();
  // Ends the stream to the next stage (its normal end when idle, else cancelled).
  void CloseDownstream();
  // The clip factor of this replica in `request` (per replica under an outer optimizer).
  absl::StatusOr<double> ClipFactorOf(const v1::ApplyStepRequest& request) const;
  // Outer optimizer: the synchronisation of the stage's replicas at the end of a period,
  // once (a no-op otherwise).
  absl::Status SynchroniseIfDue(absl::Time deadline, const Cancellation* cancel);
  // The ring over this stage's replicas; none (null ring_) for one replica.
  absl::Status JoinReplicaRing();
  absl::Status ValidateRequest(const v1::RunStepRequest& request) const;
  absl::Status CheckJob(const std::string& job_id) const;

  v1::StageAssignment assignment_;
  StageSessionOptions options_;
  std::unique_ptr<WireStageRunner> stage_;
  WireDtype wire_dtype_;
  int64_t wire_width_;
  int64_t inbox_budget_bytes_ = 0;
  // The stream to stage index + 1 (absent on the last stage).
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<grpc::GenericStub> stub_;  // Exchange's raw frames.
  std::shared_ptr<grpc::ClientContext> downstream_context_;
  std::shared_ptr<FrameLink> downstream_;
  std::unique_ptr<GradientRing> ring_;
  int64_t steps_applied_ = 0;  // Optimizer steps this stage's state holds.
  // Outer optimizer: the steps_applied_ of the last synchronisation, and what the ones not
  // yet reported in a RunStep response cost.
  int64_t synced_at_ = 0;
  int64_t unreported_sync_bytes_ = 0;
  double unreported_sync_seconds_ = 0.0;
  // The thread that sends boundary tensors; declared last so that it stops first.
  std::unique_ptr<FrameSender> sender_;
};

}  // namespace resbm

#endif  // RESBM_SERVICES_STAGE_WORKER_STAGE_SESSION_H_
