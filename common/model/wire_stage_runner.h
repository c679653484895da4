// WireStageRunner: the model seam as a stage worker sees it. A stage's inputs arrive as token
// ids and as wire tensors received from a neighbour, and its outputs leave as wire tensors on
// their way to the host; this class owns the StageRunner and the WireTransfer between them,
// so the service code that drives a step never handles an at::Tensor or calls LibTorch.
// Not thread-safe: one executor thread owns it (it owns the module and the device).
#ifndef RESBM_COMMON_MODEL_WIRE_STAGE_RUNNER_H_
#define RESBM_COMMON_MODEL_WIRE_STAGE_RUNNER_H_

#include <cstdint>
#include <memory>
#include <optional>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/model/model_options.h"
#include "common/model/stage_runner.h"
#include "common/wire/wire_tensor.h"
#include "common/wire/wire_transfer.h"

namespace resbm {

// One microbatch as it reaches a stage: `rows` x `seq_len` positions, row-major.
struct StageInput {
  int64_t rows = 0;
  int64_t seq_len = 0;
  // Token ids: the first stage's input, and the token channel's where the stage has one
  // (StageRunner::uses_token_ids); empty elsewhere.
  absl::Span<const int32_t> ids;
  // z (rows, seq_len, k) received from the previous stage; null on the first stage.
  const WireTensor* z = nullptr;
  // The next tokens, on the last stage only.
  absl::Span<const int32_t> targets;
};

class WireStageRunner {
 public:
  // Boundary tensors leave in `wire_dtype`.
  static absl::StatusOr<std::unique_ptr<WireStageRunner>> Create(const StageRunnerOptions& options,
                                                                 WireDtype wire_dtype);
  WireStageRunner(const WireStageRunner&) = delete;
  WireStageRunner& operator=(const WireStageRunner&) = delete;

  // Forward of a stage before the last (`train`: kept for Backward; else evaluation): z for
  // the next stage, its copy to the host started.
  absl::StatusOr<WireTransfer::Pending> Forward(int64_t microbatch, const StageInput& input,
                                                bool train);
  // Forward of the last stage: the mean loss over the microbatch's tokens (`train`: kept for
  // Backward, which propagates loss * loss_scale).
  absl::StatusOr<double> ForwardLoss(int64_t microbatch, const StageInput& input, bool train,
                                     double loss_scale);
  // Backward of `microbatch`; `grad` is dL/dz received from the next stage (null on the last
  // stage). Returns dL/d(input) on its way to the host, or nothing on the first stage.
  absl::StatusOr<std::optional<WireTransfer::Pending>> Backward(int64_t microbatch,
                                                                const WireTensor* grad);

  // Numbers in the stage's parameters.
  int64_t parameter_count() const;
  // Parameters, optimizer step, checkpoints and the rest of the stage.
  StageRunner& runner() { return *runner_; }
  const StageRunner& runner() const { return *runner_; }

 private:
  WireStageRunner(std::unique_ptr<StageRunner> runner, std::unique_ptr<WireTransfer> transfer,
                  WireDtype wire_dtype);

  std::unique_ptr<StageRunner> runner_;
  std::unique_ptr<WireTransfer> transfer_;
  const WireDtype wire_dtype_;
};

}  // namespace resbm

#endif  // RESBM_COMMON_MODEL_WIRE_STAGE_RUNNER_H_
