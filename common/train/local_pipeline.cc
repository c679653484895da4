#include "common/train/local_pipeline.h"

#include <torch/torch.h>

#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/model/grad_clip.h"
#include "common/model/wire_codec.h"
#include "common/status/status_macros.h"

namespace resbm {

absl::StatusOr<std::unique_ptr<LocalPipeline>> LocalPipeline::Create(
    const LocalPipelineOptions& options) {
  if (options.plan.empty()) return absl::InvalidArgumentError("plan: empty; expected >= 1 stage");
  std::vector<std::unique_ptr<StageRunner>> stages;
  for (const StageSpec& spec : options.plan) {
    StageRunnerOptions stage_options;
    stage_options.model = options.model;
    stage_options.compression = options.compression;
    stage_options.optimizer = options.optimizer;
    stage_options.spec = spec;
    stage_options.seed = options.seed;
    stage_options.device = options.device;
    RESBM_ASSIGN_OR_RETURN(auto runner, StageRunner::Create(stage_options));
    stages.push_back(std::move(runner));
  }
  return std::unique_ptr<LocalPipeline>(new LocalPipeline(options, std::move(stages)));
}

LocalPipeline::LocalPipeline(const LocalPipelineOptions& options,
                             std::vector<std::unique_ptr<StageRunner>> stages)
    : options_(options), stages_(std::move(stages)), traffic_(stages_.size() - 1) {}

absl::StatusOr<at::Tensor> LocalPipeline::Cross(const at::Tensor& x, int64_t boundary, bool forward,
                                                bool count) {
  RESBM_ASSIGN_OR_RETURN(WireTensor wire,
                         WireCodec::Encode(x, options_.compression.wire_dtype));  // (B, T, k)
  if (count) {
    auto& traffic = traffic_[boundary];
    const int64_t tokens = x.size(0) * x.size(1);
    (forward ? traffic.forward_bytes : traffic.backward_bytes) +=
        static_cast<int64_t>(wire.payload.size());
    (forward ? traffic.forward_tokens : traffic.backward_tokens) += tokens;
  }
  return WireCodec::Decode(wire);
}

absl::StatusOr<StepStats> LocalPipeline::TrainStep(int64_t step, const at::Tensor& inputs,
                                                   const at::Tensor& targets,
                                                   int64_t microbatches) {
  if (microbatches < 1 || inputs.dim() != 2 || inputs.size(0) % microbatches != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "microbatches: ", microbatches, " for a batch of ", inputs.dim() > 0 ? inputs.size(0) : 0,
        " sequences; expected a divisor of the batch size"));
  }
  const int64_t rows = inputs.size(0) / microbatches;
  const int64_t last = num_stages() - 1;
  StepStats stats;
  for (int64_t mb = 0; mb < microbatches; ++mb) {
    auto x = inputs.narrow(0, mb * rows, rows);   // (b, T)
    auto y = targets.narrow(0, mb * rows, rows);  // (b, T)
    for (int64_t s = 0; s < last; ++s) {
      RESBM_ASSIGN_OR_RETURN(auto z, stages_[s]->Forward(mb, x));  // (b, T, k)
      RESBM_ASSIGN_OR_RETURN(x, Cross(z, s, /*forward=*/true, /*count=*/true));
    }
    RESBM_ASSIGN_OR_RETURN(double loss, stages_[last]->ForwardLoss(mb, x, y, 1.0 / microbatches));
    stats.loss += loss / microbatches;
    at::Tensor grad;
    for (int64_t s = last; s >= 0; --s) {
      RESBM_ASSIGN_OR_RETURN(auto g, stages_[s]->Backward(mb, grad));  // (b, T, k)
      if (s > 0) {
        RESBM_ASSIGN_OR_RETURN(grad, Cross(g, s - 1, /*forward=*/false, /*count=*/true));
      }
    }
  }
  // The global norm needs every stage's squared norm: what the coordinator aggregates in the
  // distributed run.
  double squared = 0.0;
  for (auto& stage : stages_) {
    RESBM_ASSIGN_OR_RETURN(double stage_squared, stage->GradSquaredNorm());
    squared += stage_squared;
  }
  stats.grad_norm = std::sqrt(squared);
  stats.clip_factor = GradClipFactor(stats.grad_norm, options_.optimizer.grad_clip);
  for (auto& stage : stages_) {
    RESBM_RETURN_IF_ERROR(stage->ApplyStep(step, stats.clip_factor));
  }
  return stats;
}

absl::StatusOr<double> LocalPipeline::Evaluate(const at::Tensor& inputs,
                                               const at::Tensor& targets) {
  at::Tensor x = inputs;
  for (int64_t s = 0; s + 1 < num_stages(); ++s) {
    RESBM_ASSIGN_OR_RETURN(auto z, stages_[s]->Evaluate(x));
    RESBM_ASSIGN_OR_RETURN(x, Cross(z, s, /*forward=*/true, /*count=*/false));
  }
  return stages_.back()->EvaluateLoss(x, targets);
}

}  // namespace resbm
