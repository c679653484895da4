#include "common/train/local_backend.h"

#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "common/config/job_config.h"
#include "common/model/stage_plan.h"
#include "common/status/status_macros.h"

namespace resbm {
namespace {

// Token ids (rows x seq_len, row-major) as a (B, T) int64 tensor.
absl::StatusOr<at::Tensor> Batch(const std::vector<int64_t>& ids, int64_t seq_len) {
  if (ids.empty() || ids.size() % seq_len != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "batch: ", ids.size(), " token ids; expected a positive multiple of seq_len ", seq_len));
  }
  const int64_t rows = static_cast<int64_t>(ids.size()) / seq_len;
  return torch::from_blob(const_cast<int64_t*>(ids.data()), {rows, seq_len}, torch::kInt64)
      .clone();  // (B, T)
}

}  // namespace

absl::StatusOr<std::unique_ptr<LocalBackend>> LocalBackend::Create(const v1::JobConfig& config,
                                                                   const std::string& device) {
  LocalPipelineOptions options;
  options.model = ToModelOptions(config);
  options.compression = ToCompressionOptions(config);
  options.optimizer = ToOptimizerOptions(config);
  options.seed = config.training().seed();
  options.device = device;
  RESBM_ASSIGN_OR_RETURN(options.plan, PlanJobStages(config));
  RESBM_ASSIGN_OR_RETURN(auto pipeline, LocalPipeline::Create(options));
  return std::unique_ptr<LocalBackend>(new LocalBackend(config, std::move(pipeline)));
}

LocalBackend::LocalBackend(const v1::JobConfig& config, std::unique_ptr<LocalPipeline> pipeline)
    : seq_len_(config.model().seq_len()),
      microbatches_(config.training().microbatches()),
      pipeline_(std::move(pipeline)) {}

absl::StatusOr<StepStats> LocalBackend::TrainStep(int64_t step, const std::vector<int64_t>& inputs,
                                                  const std::vector<int64_t>& targets) {
  RESBM_ASSIGN_OR_RETURN(at::Tensor x, Batch(inputs, seq_len_));
  RESBM_ASSIGN_OR_RETURN(at::Tensor y, Batch(targets, seq_len_));
  return pipeline_->TrainStep(step, x, y, microbatches_);
}

absl::StatusOr<double> LocalBackend::Evaluate(int64_t round, const std::vector<int64_t>& inputs,
                                              const std::vector<int64_t>& targets) {
  RESBM_ASSIGN_OR_RETURN(at::Tensor x, Batch(inputs, seq_len_));
  RESBM_ASSIGN_OR_RETURN(at::Tensor y, Batch(targets, seq_len_));
  return pipeline_->Evaluate(x, y);
}

}  // namespace resbm
