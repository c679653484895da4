// PipelineDriver: the coordinator's hand on a running pipeline. Assigns stages to workers,
// then drives each training step through the schedule: token ids to stage 0, target ids to
// the last stage, RunStep on every stage at once, and the global clip factor from every
// stage's squared gradient norm, which the next RunStep (or checkpoint) carries to every stage
// to apply before it computes: one round trip a step. Every fan-out runs on gRPC's callback
// stubs, all stages at once. No activation passes through it.
// Not thread-safe: one caller drives one pipeline.
#ifndef RESBM_SERVICES_COORDINATOR_PIPELINE_DRIVER_H_
#define RESBM_SERVICES_COORDINATOR_PIPELINE_DRIVER_H_

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/model/stage_plan.h"
#include "common/schedule/microbatch_deal.h"
#include "common/schedule/pipeline_schedule.h"
#include "common/train/training_backend.h"
#include "resbm/v1/config.pb.h"
#include "resbm/v1/stage_worker.grpc.pb.h"

namespace resbm {

// A training step as the coordinator saw it: what every backend reports (StepStats) and the
// stages' own reports that the distributed backend folds into traffic and timing.
struct PipelineStepResult {
  StepStats stats;
  // One per stage, as the workers reported them.
  std::vector<v1::RunStepResponse> stages;
  // The stage whose RunStep ended last: the one the step waited on.
  int64_t waited_on_stage = -1;
};

// Where one stage's worker is reached: by the coordinator (`address`) and by the previous
// stage's Exchange stream (`exchange_address`; empty: `address`).
struct StageEndpoint {
  std::string address;
  std::string exchange_address;
};

class PipelineDriver {
 public:
  // `workers[s]` serves stage s; `config` must be valid. `credentials` secure the channels to
  // the workers (null: plaintext).
  static absl::StatusOr<std::unique_ptr<PipelineDriver>> Create(
      const std::string& job_id, const v1::JobConfig& config,
      const std::vector<StageEndpoint>& workers,
      std::shared_ptr<grpc::ChannelCredentials> credentials = nullptr);
  // Workers reached at one address by everyone.
  static absl::StatusOr<std::unique_ptr<PipelineDriver>> Create(
      const std::string& job_id, const v1::JobConfig& config,
      const std::vector<std::string>& worker_addresses);

  // Sends every stage its assignment (last stage first, so each stage's downstream is built
  // before it connects). Returns the total parameter count.
  absl::StatusOr<int64_t> Assign();
  // Replicas: puts each of `workers` (by slot) in place of a lost one. A new worker takes
  // its stage's state from a live replica of it (none left: FAILED_PRECONDITION); the others
  // keep theirs and are rewired to the new addresses. The job goes on from the same step
  // (the last step's pending update is sent again; whoever applied it skips it).
  absl::StatusOr<int64_t> Replace(const std::map<size_t, StageEndpoint>& workers);
  // Synchronous replicas: takes pipelines `out` (replica indices) out of the job for want of
  // workers to replace their lost ones. The step's microbatches are dealt to the others, each
  // stage's ring shrinks to its live replicas (rewired, keeping their state), and no call goes
  // to an out pipeline's workers until Replace puts every slot of it back (each then takes
  // its stage's state from a live replica). FAILED_PRECONDITION with the outer optimizer or
  // when no pipeline would be left.
  absl::Status DropPipelines(const std::set<int64_t>& out);
  // Whether DropPipelines(out) may go on: synchronous replicas, a pipeline left.
  bool CanDrop(const std::set<int64_t>& out) const;
  // The pipelines out of the job (empty: all in), and whether slot `slot`'s is in.
  const std::set<int64_t>& dropped() const { return dropped_; }
  bool active(size_t slot) const {
    return dropped_.count(static_cast<int64_t>(slot) / num_stages_) == 0;
  }
  // The slots the last TrainStep refused because their parameters disagreed with their
  // stage's other replicas (that step failed with DATA_LOSS; Replace them).
  const std::vector<size_t>& refused() const { return refused_; }
  // The slots whose worker does not answer a health check within `timeout`.
  std::vector<size_t> Unresponsive(absl::Duration timeout);
  int64_t num_slots() const { return static_cast<int64_t>(addresses_.size()); }

  // Per stage, the bytes its replicas sent each other (gradient all-reduces, outer
  // synchronisations) in the steps and evaluations since the last call.
  std::vector<int64_t> TakeReplicaBytes();

  // One training step on a batch: inputs and targets are (batch_size x seq_len) token ids,
  // row-major, split into the configured microbatches. Its optimizer update is pending until
  // the next TrainStep, Evaluate or SaveCheckpoints carries it (a run ends with a checkpoint).
  absl::StatusOr<PipelineStepResult> TrainStep(int64_t step, const std::vector<int64_t>& inputs,
                                               const std::vector<int64_t>& targets);
  // Mean loss of a batch, forward only; `round` numbers evaluation passes (frames carry it).
  absl::StatusOr<double> Evaluate(int64_t round, const std::vector<int64_t>& inputs,
                                  const std::vector<int64_t>& targets);

  // Every stage writes its checkpoint after `step` steps under its worker's checkpoint
  // directory (all stages at once; complete only when every one acknowledged). Returns the
  // bytes written.
  absl::StatusOr<int64_t> SaveCheckpoints(int64_t step);

  // Every stage restores its checkpoint after `step` steps (all at once); returns `step`.
  absl::StatusOr<int64_t> LoadCheckpoints(int64_t step);

  // Tells every stage's worker to drop this job's state (best effort, short deadlines).
  void Release();

  const std::vector<std::string>& addresses() const { return addresses_; }
  StageEndpoint endpoint(size_t slot) const {
    return StageEndpoint{addresses_[slot], exchange_addresses_[slot]};
  }
  // The workers the last Assign, ApplyStep, SaveCheckpoints or LoadCheckpoints could not
  // reach (UNAVAILABLE) or that did not answer in time (DEADLINE_EXCEEDED).
  const std::vector<std::string>& unreachable() const { return unreachable_; }
  void set_step_timeout(absl::Duration timeout) { step_timeout_ = timeout; }
  // When the worker at `address` stops counting as alive (its heartbeat lapses), and
  // InfiniteFuture for a worker it does not track. A step is cancelled when one of its workers
  // lapses (UNAVAILABLE, kWorkerLost), instead of waiting for the link's keepalive or the
  // step deadline; Release skips lapsed workers. Unset: neither.
  using Liveness = std::function<absl::Time(const std::string& address)>;
  void set_liveness(Liveness liveness) { liveness_ = std::move(liveness); }

 private:
  PipelineDriver(const std::string& job_id, const v1::JobConfig& config,
                 const std::vector<StageEndpoint>& workers,
                 const std::shared_ptr<grpc::ChannelCredentials>& credentials);
  // The stubs of slot `slot` (its worker's StageWorker and health service), on one channel.
  void Connect(size_t slot);
  // Deals the step's microbatches to the pipelines in the job (shares_) and makes the
  // schedules their shares need.
  absl::Status DealToActive();
  // The lowest pipeline in the job: its stages write the checkpoints and report the norm.
  int64_t FirstActive() const;
  // Compares the replicas' parameter checksums stage by stage; fills refused_.
  // The outer optimizer's period (0: synchronous replicas, or one pipeline).
  int64_t OuterPeriod() const;
  // Sum of the squared gradient norms of pipeline `replica`'s stages.
  double PipelineSquaredNorm(const std::vector<v1::RunStepResponse>& responses,
                             int64_t replica) const;
  absl::Status CheckReplicasAgree(const std::vector<v1::RunStepResponse>& responses);
  // A new replica copies a live peer's parameters and optimizer state, not its gradients: a
  // peer whose last RunStep was cancelled before it applied the pending update applies it
  // now (the others skip it), so every copy is of an applied state and the redone step
  // skips the update everywhere. Synchronous replicas only (OuterPeriod() == 0).
  absl::Status ApplyPendingOnLive(const std::set<size_t>& replaced);
  // Assign, or with `replaced` the rewiring Replace describes.
  absl::StatusOr<int64_t> AssignSlots(const std::set<size_t>* replaced);
  // One slot's Assign: fresh, or with `replaced` a rewire (keep_state) or a new replica
  // (state_from a live peer; FAILED_PRECONDITION when the stage has none).
  absl::StatusOr<v1::AssignResponse> AssignSlot(size_t slot, const StageSpec& spec,
                                                const std::set<size_t>* replaced);
  using Done = std::function<void(grpc::Status)>;
  // Starts stage `stage`'s call with `context` on the callback stub; `done` ends it.
  using Start = std::function<void(size_t stage, grpc::ClientContext* context, Done done)>;

  // `status` of stage `stage`'s RPC, its message after "WHAT STAGE (address): ".
  absl::Status OfStage(const grpc::Status& status, size_t stage, absl::string_view what);
  // OfStage; an UNAVAILABLE or DEADLINE_EXCEEDED one also lists the stage's worker as
  // unreachable and carries the kWorkerLost cause.
  absl::Status Unreachable(const grpc::Status& status, size_t stage, absl::string_view what);
  // Starts every stage's call at once, each context with `timeout`; the first failure, as
  // Unreachable with `what`. Fills unreachable_.
  absl::Status OnEveryStage(absl::string_view what, absl::Duration timeout, const Start& start);
  // Runs RunStep on every stage in parallel; cancels the others when one fails.
  // `last` (may be null) gets the stage that finished last.
  absl::StatusOr<std::vector<v1::RunStepResponse>> RunAll(std::vector<v1::RunStepRequest> requests,
                                                          int64_t* last = nullptr);
  // How CallEveryStage treats its calls: whether the first failure cancels the others, and
  // whether a lapsed heartbeat (liveness_) cancels them all.
  struct FanOutPolicy {
    bool cancel_on_failure;
    bool watch_heartbeats;
    // Also the slots of pipelines out of the job (Release: their workers drop the job too).
    bool every_slot = false;
  };
  // Starts every stage's call (no thread per call), its status into `statuses[s]`, and
  // returns once all ended; with `policy.watch_heartbeats`, the stage whose worker's
  // heartbeat lapsed first (all calls then cancelled), if one did. `last` (may be null) gets
  // the stage that ended last.
  std::optional<size_t> CallEveryStage(std::vector<grpc::ClientContext>* contexts,
                                       const Start& start, FanOutPolicy policy,
                                       std::vector<grpc::Status>* statuses, int64_t* last);
  // UNAVAILABLE (kWorkerLost) "WHAT STAGE (address): its worker's heartbeat lapsed WHEN";
  // lists the worker as unreachable.
  absl::Status Lapsed(size_t stage, absl::string_view what, absl::string_view when);
  // One request per slot: each pipeline's share of the step's microbatches, numbered 0..m_r-1
  // in the pipeline, under the training schedule or forward only.
  std::vector<v1::RunStepRequest> MakeRequests(v1::StepMode mode, int64_t step,
                                               const std::vector<int64_t>& inputs,
                                               const std::vector<int64_t>& targets) const;
  static PipelineSchedule ForwardOnlySchedule(int64_t stages, int64_t microbatches);
  // The mean of the last stages' microbatch losses, in the step's microbatch order.
  double MeanLoss(const std::vector<v1::RunStepResponse>& responses) const;
  // Workers are slots: pipeline r's stage s is slot r * P + s.
  size_t Slot(int64_t replica, int64_t stage) const {
    return static_cast<size_t>(replica * num_stages_ + stage);
  }
  // "stage S", or "stage S replica R" where there are several.
  std::string SlotName(size_t slot) const;
  // "WHAT stage S (address)".
  std::string Describe(size_t slot, absl::string_view what) const;

  std::string job_id_;
  v1::JobConfig config_;
  const bool token_channel_;  // Every stage after the first is sent the input ids too.
  const int64_t num_stages_;
  const int64_t num_replicas_;
  std::vector<std::string> addresses_;
  std::vector<std::string> exchange_addresses_;
  std::vector<std::string> unreachable_;
  std::vector<size_t> refused_;
  std::vector<std::unique_ptr<v1::StageWorker::Stub>> stubs_;
  std::vector<std::unique_ptr<grpc::GenericStub>> health_;  // The same channels, untyped.
  std::shared_ptr<grpc::ChannelCredentials> credentials_;
  // Each pipeline's microbatches, and the training schedule for each share's size.
  std::vector<MicrobatchShare> shares_;
  std::map<int64_t, PipelineSchedule> train_schedules_;
  absl::Duration step_timeout_ = absl::Minutes(5);
  Liveness liveness_;
  // The last TrainStep's optimizer update, until a call carries it to every stage.
  std::optional<v1::ApplyStepRequest> pending_apply_;
  // Pipelines out of the job (DropPipelines).
  std::set<int64_t> dropped_;
  // Per stage: bytes its replicas reported sending each other since TakeReplicaBytes.
  std::vector<int64_t> replica_bytes_;
};

}  // namespace resbm

#endif  // RESBM_SERVICES_COORDINATOR_PIPELINE_DRIVER_H_
