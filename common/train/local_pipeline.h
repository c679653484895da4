// LocalPipeline: every stage of a split model in one process, chained through exactly the
// boundary code the distributed system uses: each stage's output is encoded to wire bytes and
// decoded by the next stage, gradients likewise, and every stage runs its ops in the order
// the job's pipeline schedule gives the workers (so gradients accumulate in the same order
// and the weights match a distributed run's bit for bit). Its losses are the reference the
// distributed run must match. Counts the bytes that cross each boundary per direction.
// Owns its StageRunners. Not thread-safe.
#ifndef RESBM_COMMON_TRAIN_LOCAL_PIPELINE_H_
#define RESBM_COMMON_TRAIN_LOCAL_PIPELINE_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model/model_options.h"
#include "common/model/stage_plan.h"
#include "common/model/stage_runner.h"
#include "common/schedule/pipeline_schedule.h"
#include "common/train/training_backend.h"

namespace resbm {

struct LocalPipelineOptions {
  ModelOptions model;
  CompressionOptions compression;
  OptimizerOptions optimizer;
  std::vector<StageSpec> plan;
  uint64_t seed = 1337;
  std::string device = "cpu";
  ScheduleKind schedule = ScheduleKind::kGpipe;
};

class LocalPipeline {
 public:
  static absl::StatusOr<std::unique_ptr<LocalPipeline>> Create(const LocalPipelineOptions& options);
  LocalPipeline(const LocalPipeline&) = delete;
  LocalPipeline& operator=(const LocalPipeline&) = delete;

  // One optimizer step (0-based index `step`) on a batch of token ids: inputs and targets
  // (B, T) int64, split into `microbatches` equal slices along B.
  absl::StatusOr<StepStats> TrainStep(int64_t step, const at::Tensor& inputs,
                                      const at::Tensor& targets, int64_t microbatches);

  // The first half of TrainStep: forward and backward of every microbatch, leaving the
  // gradients accumulated on the stages (nothing applied). Returns the batch's mean loss.
  absl::StatusOr<double> ComputeGradients(const at::Tensor& inputs, const at::Tensor& targets,
                                          int64_t microbatches);

  // Mean loss on a batch without updating anything (no bytes counted).
  absl::StatusOr<double> Evaluate(const at::Tensor& inputs, const at::Tensor& targets);
  // Logits (B, T, V) of a batch, through the boundaries, without updating anything.
  absl::StatusOr<at::Tensor> Logits(const at::Tensor& inputs);

  const std::vector<BoundaryTraffic>& traffic() const { return traffic_; }
  int64_t num_stages() const { return static_cast<int64_t>(stages_.size()); }
  StageRunner& stage(int64_t index) { return *stages_[index]; }

 private:
  LocalPipeline(const LocalPipelineOptions& options,
                std::vector<std::unique_ptr<StageRunner>> stages);
  // Runs `schedule`'s ops of one training step; `rows` sequences per microbatch.
  absl::StatusOr<double> RunSchedule(const PipelineSchedule& schedule, const at::Tensor& inputs,
                                     const at::Tensor& targets, int64_t rows);
  // Encodes `x` for boundary `boundary`, counts its bytes, decodes it.
  absl::StatusOr<at::Tensor> Cross(const at::Tensor& x, int64_t boundary, bool forward, bool count);
  // Evaluation forward of every stage but the last: what the last stage takes in.
  absl::StatusOr<at::Tensor> LastStageInput(const at::Tensor& inputs);
  // The token ids `stage` takes besides its input: `ids`, or none without a token channel.
  at::Tensor TokensFor(int64_t stage, const at::Tensor& ids) const;

  LocalPipelineOptions options_;
  std::vector<std::unique_ptr<StageRunner>> stages_;
  std::vector<BoundaryTraffic> traffic_;  // One per boundary (num_stages - 1).
};

}  // namespace resbm

#endif  // RESBM_COMMON_TRAIN_LOCAL_PIPELINE_H_
