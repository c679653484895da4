#include "common/model/wire_stage_runner.h"

#include <torch/torch.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/model/torch_seam.h"
#include "common/status/status_macros.h"

namespace resbm {
namespace {

// Ids as a (rows, seq_len) int64 tensor; undefined when there are none.
absl::StatusOr<at::Tensor> IdTensor(const char* what, absl::Span<const int32_t> ids, int64_t rows,
                                    int64_t seq_len) {
  if (ids.empty()) return at::Tensor();
  if (static_cast<int64_t>(ids.size()) != rows * seq_len) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": ", ids.size(), " ids; expected ", rows, " x ", seq_len));
  }
  return AtTorchSeam("stage input", what, [&]() -> absl::StatusOr<at::Tensor> {
    at::Tensor tensor = torch::empty({rows, seq_len}, torch::kInt64);  // (b, T)
    std::copy(ids.begin(), ids.end(), tensor.data_ptr<int64_t>());
    return tensor;
  });
}

}  // namespace

absl::StatusOr<std::unique_ptr<WireStageRunner>> WireStageRunner::Create(
    const StageRunnerOptions& options, WireDtype wire_dtype) {
  RESBM_ASSIGN_OR_RETURN(auto runner, StageRunner::Create(options));
  RESBM_ASSIGN_OR_RETURN(auto transfer, WireTransfer::Create(runner->device()));
  return std::unique_ptr<WireStageRunner>(
      new WireStageRunner(std::move(runner), std::move(transfer), wire_dtype));
}

WireStageRunner::WireStageRunner(std::unique_ptr<StageRunner> runner,
                                 std::unique_ptr<WireTransfer> transfer, WireDtype wire_dtype)
    : runner_(std::move(runner)), transfer_(std::move(transfer)), wire_dtype_(wire_dtype) {}

int64_t WireStageRunner::parameter_count() const {
  int64_t count = 0;
  for (const auto& [name, p] : runner_->Parameters()) count += p.numel();
  return count;
}

absl::StatusOr<WireTransfer::Pending> WireStageRunner::Forward(int64_t microbatch,
                                                               const StageInput& input,
                                                               bool train) {
  RESBM_ASSIGN_OR_RETURN(at::Tensor ids, IdTensor("ids", input.ids, input.rows, input.seq_len));
  at::Tensor x = ids;  // (b, T) token ids on the first stage
  if (input.z != nullptr) {
    RESBM_ASSIGN_OR_RETURN(x, transfer_->Upload(*input.z));  // (b, T, k) on the device
  }
  const at::Tensor tokens = runner_->uses_token_ids() ? ids : at::Tensor();
  RESBM_ASSIGN_OR_RETURN(at::Tensor z, train ? runner_->Forward(microbatch, x, tokens)
                                             : runner_->Evaluate(x, tokens));  // (b, T, k)
  return transfer_->StartEncode(z, wire_dtype_);
}

absl::StatusOr<double> WireStageRunner::ForwardLoss(int64_t microbatch, const StageInput& input,
                                                    bool train, double loss_scale) {
  RESBM_ASSIGN_OR_RETURN(at::Tensor ids, IdTensor("ids", input.ids, input.rows, input.seq_len));
  RESBM_ASSIGN_OR_RETURN(at::Tensor targets,
                         IdTensor("targets", input.targets, input.rows, input.seq_len));
  at::Tensor x = ids;
  if (input.z != nullptr) {
    RESBM_ASSIGN_OR_RETURN(x, transfer_->Upload(*input.z));  // (b, T, k) on the device
  }
  const at::Tensor tokens = runner_->uses_token_ids() ? ids : at::Tensor();
  return train ? runner_->ForwardLoss(microbatch, x, targets, loss_scale, tokens)
               : runner_->EvaluateLoss(x, targets, tokens);
}

absl::StatusOr<std::optional<WireTransfer::Pending>> WireStageRunner::Backward(
    int64_t microbatch, const WireTensor* grad) {
  at::Tensor grad_output;
  if (grad != nullptr) {
    RESBM_ASSIGN_OR_RETURN(grad_output, transfer_->Upload(*grad));  // (b, T, k) on the device
  }
  RESBM_ASSIGN_OR_RETURN(at::Tensor input_grad, runner_->Backward(microbatch, grad_output));
  if (runner_->spec().is_first()) return std::optional<WireTransfer::Pending>();
  RESBM_ASSIGN_OR_RETURN(WireTransfer::Pending pending,
                         transfer_->StartEncode(input_grad, wire_dtype_));
  return std::optional<WireTransfer::Pending>(std::move(pending));
}

}  // namespace resbm
