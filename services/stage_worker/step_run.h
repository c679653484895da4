// StepRun: one RunStep on a stage worker, op by op. Forward(mb) takes the microbatch's input
// (token ids, or the activation frame from the previous stage), runs the stage and hands z to
// the sender; Backward(mb) takes the gradient frame from the next stage, runs the backward and
// hands dL/d(input) back; Finish flushes the sends, checks the gradients and returns the
// step's report, or the step's error after dropping everything the step left behind. Every
// wait ends at the step's deadline or when its cancellation token trips (a cancelled call, a
// failed send). Lives for one step on the executor thread; not thread-safe.
#ifndef RESBM_SERVICES_STAGE_WORKER_STEP_RUN_H_
#define RESBM_SERVICES_STAGE_WORKER_STEP_RUN_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/model/wire_stage_runner.h"
#include "common/runtime/cancellation.h"
#include "common/transport/frame_link.h"
#include "resbm/v1/stage_worker.pb.h"
#include "services/stage_worker/frame_sender.h"
#include "services/stage_worker/gradient_ring.h"
#include "services/stage_worker/stage_metrics.h"

namespace resbm {

// What a step runs with; none owned, all outliving the StepRun.
struct StepParts {
  WireStageRunner* stage = nullptr;
  FrameSender* sender = nullptr;
  std::shared_ptr<FrameLink> upstream;    // Null on the first stage.
  std::shared_ptr<FrameLink> downstream;  // Null on the last stage.
  StageMetrics* metrics = nullptr;        // May be null.
  std::string job_id;
  WireDtype wire_dtype = WireDtype::kBf16;
  int64_t wire_width = 0;
  int64_t d_model = 0;
  GradientRing* ring = nullptr;  // Several replicas: their gradients are all-reduced on it.
};

class StepRun {
 public:
  // `request` was validated (StageSession::ValidateRequest) and outlives the run.
  StepRun(const v1::RunStepRequest& request, StepParts parts, absl::Time deadline,
          std::shared_ptr<Cancellation> cancel);
  StepRun(const StepRun&) = delete;
  StepRun& operator=(const StepRun&) = delete;

  // Runs the request's ops in order; the first error ends them.
  absl::Status RunOps();
  absl::Status Forward(int64_t mb);
  absl::Status Backward(int64_t mb);
  // The step's report after `ops` (RunOps' status), or the step's error ("stage S step N:
  // ..."), the stage then back where the step began.
  absl::StatusOr<v1::RunStepResponse> Finish(absl::Status ops);

 private:
  const StageSpec& spec() const { return parts_.stage->runner().spec(); }
  // The input of microbatch `mb`: its ids where the stage reads them, `z` where it came.
  StageInput InputOf(int64_t mb, const WireTensor* z) const;
  // Sums this stage's gradients with its other replicas' (parts_.ring), counting the bytes.
  absl::Status AllReduceGradients();
  // Takes the frame (kind, mb) from `link`, checks and decodes it, counting its bytes.
  absl::StatusOr<WireTensor> Receive(FrameLink& link, v1::FrameKind kind, int64_t mb);
  // Hands a tensor on its way to the host to the sender for `link`.
  absl::Status Send(const std::shared_ptr<FrameLink>& link, v1::FrameKind kind, int64_t mb,
                    WireTransfer::Pending tensor);
  // After the ops: the sends flushed, the byte counts and the gradient norm in response_.
  absl::Status Complete();
  void CountTokenIds();

  const v1::RunStepRequest& request_;
  StepParts parts_;
  const absl::Time deadline_;
  const std::shared_ptr<Cancellation> cancel_;
  const bool train_;
  const int64_t step_;
  v1::RunStepResponse response_;
  std::map<int64_t, v1::MicrobatchReport> reports_;
};

}  // namespace resbm

#endif  // RESBM_SERVICES_STAGE_WORKER_STEP_RUN_H_
