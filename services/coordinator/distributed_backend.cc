#include "services/coordinator/distributed_backend.h"

#include "common/status/status_macros.h"

namespace resbm {

DistributedBackend::DistributedBackend(std::unique_ptr<PipelineDriver> driver, int64_t num_stages)
    : driver_(std::move(driver)), num_stages_(num_stages), traffic_(num_stages - 1) {}

absl::StatusOr<StepStats> DistributedBackend::TrainStep(int64_t step,
                                                        const std::vector<int64_t>& inputs,
                                                        const std::vector<int64_t>& targets) {
  RESBM_ASSIGN_OR_RETURN(PipelineStepResult result, driver_->TrainStep(step, inputs, targets));
  const int64_t tokens = static_cast<int64_t>(inputs.size());
  // Boundary b: what stage b sent down and what stage b + 1 sent back up.
  for (int64_t b = 0; b + 1 < num_stages_; ++b) {
    traffic_[b].forward_bytes += static_cast<int64_t>(result.stages[b].activation_bytes_sent());
    traffic_[b].backward_bytes += static_cast<int64_t>(result.stages[b + 1].gradient_bytes_sent());
    traffic_[b].framing_overhead_bytes +=
        static_cast<int64_t>(result.stages[b].activation_overhead_bytes_sent() +
                             result.stages[b + 1].gradient_overhead_bytes_sent());
    traffic_[b].forward_tokens += tokens;
    traffic_[b].backward_tokens += tokens;
  }
  return StepStats{result.loss, result.grad_norm, result.clip_factor};
}

absl::StatusOr<double> DistributedBackend::Evaluate(int64_t round,
                                                    const std::vector<int64_t>& inputs,
                                                    const std::vector<int64_t>& targets) {
  return driver_->Evaluate(round, inputs, targets);
}

}  // namespace resbm
