#include "common/train/local_backend.h"

#include <torch/torch.h>

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/config/job_config.h"
#include "common/model/stage_plan.h"
#include "common/modelio/model_init_check.h"
#include "common/status/status_macros.h"
#include "common/train/stage_initializer.h"

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

absl::StatusOr<std::unique_ptr<LocalBackend>> LocalBackend::Create(
    const v1::JobConfig& config, const std::string& device, const std::string& checkpoint_dir) {
  RESBM_RETURN_IF_ERROR(ModelInitCheck::Check(config));
  LocalPipelineOptions options;
  options.model = ToModelOptions(config);
  options.compression = ToCompressionOptions(config);
  options.optimizer = ToOptimizerOptions(config);
  options.seed = config.training().seed();
  options.device = device;
  options.schedule = ToScheduleKind(config);
  RESBM_ASSIGN_OR_RETURN(options.plan, PlanJobStages(config));
  RESBM_ASSIGN_OR_RETURN(auto pipeline, LocalPipeline::Create(options));
  for (int64_t s = 0; s < pipeline->num_stages(); ++s) {
    RESBM_RETURN_IF_ERROR(StageInitializer::Apply(config.init(), &pipeline->stage(s)));
  }
  return std::unique_ptr<LocalBackend>(
      new LocalBackend(config, std::move(pipeline), checkpoint_dir));
}

LocalBackend::LocalBackend(const v1::JobConfig& config, std::unique_ptr<LocalPipeline> pipeline,
                           std::string checkpoint_dir)
    : seq_len_(config.model().seq_len()),
      microbatches_(config.training().microbatches()),
      checkpoint_dir_(std::move(checkpoint_dir)),
      pipeline_(std::move(pipeline)) {}

absl::StatusOr<std::vector<std::string>> LocalBackend::Checkpoint(int64_t steps_done) {
  if (checkpoint_dir_.empty()) {
    return absl::FailedPreconditionError("checkpoint_dir: empty; checkpoints need a directory");
  }
  std::error_code error;
  std::filesystem::create_directories(checkpoint_dir_, error);
  if (error) {
    return absl::UnavailableError(
        absl::StrCat("checkpoint_dir: '", checkpoint_dir_, "': ", error.message()));
  }
  std::vector<std::string> files;
  for (int64_t s = 0; s < pipeline_->num_stages(); ++s) {
    files.push_back(absl::StrCat(checkpoint_dir_, "/step-", steps_done, "-stage-", s, ".ckpt"));
    RESBM_RETURN_IF_ERROR(pipeline_->stage(s).SaveCheckpoint(files.back(), steps_done));
  }
  return files;
}

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
