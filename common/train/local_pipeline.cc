#include "common/train/local_pipeline.h"

#include <torch/torch.h>

#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/model/grad_clip.h"
#include "common/model/token_id_bytes.h"
#include "common/status/status_macros.h"
#include "common/wire/wire_codec.h"

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

absl::StatusOr<double> LocalPipeline::ComputeGradients(const at::Tensor& inputs,
                                                       const at::Tensor& targets,
                                                       int64_t microbatches) {
  if (microbatches < 1 || inputs.dim() != 2 || inputs.size(0) % microbatches != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "microbatches: ", microbatches, " for a batch of ", inputs.dim() > 0 ? inputs.size(0) : 0,
        " sequences; expected a divisor of the batch size"));
  }
  RESBM_ASSIGN_OR_RETURN(const PipelineSchedule schedule,
                         MakePipelineSchedule(options_.schedule, num_stages(), microbatches));
  return RunSchedule(schedule, inputs, targets, inputs.size(0) / microbatches);
}

absl::StatusOr<double> LocalPipeline::RunSchedule(const PipelineSchedule& schedule,
                                                  const at::Tensor& inputs,
                                                  const at::Tensor& targets, int64_t rows) {
  const int64_t stages = num_stages(), last = stages - 1, m = schedule.num_microbatches;
  // What crossed each boundary and waits to be consumed: [stage][microbatch], the decoded
  // activation a stage takes in and the decoded gradient of its output.
  std::vector<std::vector<at::Tensor>> arrived(stages, std::vector<at::Tensor>(m));
  std::vector<std::vector<at::Tensor>> returned(stages, std::vector<at::Tensor>(m));
  std::vector<size_t> next(stages, 0);
  double mean_loss = 0.0;
  // Runs every stage as far as its list allows until all lists are done: the order of ops
  // within a stage is the schedule's, whatever the interleaving across stages.
  for (bool progressed = true; progressed;) {
    progressed = false;
    for (int64_t s = 0; s < stages; ++s) {
      while (next[s] < schedule.stage_ops[s].size()) {
        const PipelineOp& op = schedule.stage_ops[s][next[s]];
        const int64_t mb = op.microbatch;
        if (op.kind == OpKind::kForward) {
          if (s > 0 && !arrived[s][mb].defined()) break;
          const at::Tensor ids = inputs.narrow(0, mb * rows, rows);  // (b, T)
          at::Tensor x = s == 0 ? ids : arrived[s][mb];              // (b, T) or (b, T, k)
          arrived[s][mb] = at::Tensor();
          const at::Tensor tokens = TokensFor(s, ids);
          if (tokens.defined()) {
            traffic_[s - 1].token_id_bytes +=
                TokenIdBytes::InRequest(tokens.contiguous().data_ptr<int64_t>(), tokens.numel());
          }
          if (s == last) {
            const at::Tensor y = targets.narrow(0, mb * rows, rows);  // (b, T)
            RESBM_ASSIGN_OR_RETURN(double loss, stages_[s]->ForwardLoss(mb, x, y, 1.0 / m, tokens));
            mean_loss += loss / m;
          } else {
            RESBM_ASSIGN_OR_RETURN(auto z, stages_[s]->Forward(mb, x, tokens));  // (b, T, k)
            RESBM_ASSIGN_OR_RETURN(arrived[s + 1][mb],
                                   Cross(z, s, /*forward=*/true, /*count=*/true));
          }
        } else {
          if (s < last && !returned[s][mb].defined()) break;
          RESBM_ASSIGN_OR_RETURN(auto g, stages_[s]->Backward(mb, returned[s][mb]));  // (b, T, k)
          returned[s][mb] = at::Tensor();
          if (s > 0) {
            RESBM_ASSIGN_OR_RETURN(returned[s - 1][mb],
                                   Cross(g, s - 1, /*forward=*/false, /*count=*/true));
          }
        }
        ++next[s];
        progressed = true;
      }
    }
  }
  for (int64_t s = 0; s < stages; ++s) {
    if (next[s] != schedule.stage_ops[s].size()) {
      return absl::InternalError(absl::StrCat("schedule: stage ", s, " stuck at op ", next[s]));
    }
  }
  return mean_loss;
}

absl::StatusOr<StepStats> LocalPipeline::TrainStep(int64_t step, const at::Tensor& inputs,
                                                   const at::Tensor& targets,
                                                   int64_t microbatches) {
  StepStats stats;
  RESBM_ASSIGN_OR_RETURN(stats.loss, ComputeGradients(inputs, targets, microbatches));
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

absl::StatusOr<at::Tensor> LocalPipeline::LastStageInput(const at::Tensor& inputs) {
  at::Tensor x = inputs;
  for (int64_t s = 0; s + 1 < num_stages(); ++s) {
    RESBM_ASSIGN_OR_RETURN(auto z, stages_[s]->Evaluate(x, TokensFor(s, inputs)));
    RESBM_ASSIGN_OR_RETURN(x, Cross(z, s, /*forward=*/true, /*count=*/false));
  }
  return x;
}

absl::StatusOr<double> LocalPipeline::Evaluate(const at::Tensor& inputs,
                                               const at::Tensor& targets) {
  RESBM_ASSIGN_OR_RETURN(at::Tensor x, LastStageInput(inputs));
  return stages_.back()->EvaluateLoss(x, targets, TokensFor(num_stages() - 1, inputs));
}

absl::StatusOr<at::Tensor> LocalPipeline::Logits(const at::Tensor& inputs) {
  RESBM_ASSIGN_OR_RETURN(at::Tensor x, LastStageInput(inputs));
  return stages_.back()->EvaluateLogits(x, TokensFor(num_stages() - 1, inputs));
}

at::Tensor LocalPipeline::TokensFor(int64_t stage, const at::Tensor& ids) const {
  return stages_[stage]->uses_token_ids() ? ids : at::Tensor();
}

}  // namespace resbm
