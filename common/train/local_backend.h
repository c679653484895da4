// LocalBackend: the TrainingBackend of resbm-train: a LocalPipeline (every stage in this
// process, through the real wire code) fed token ids, started from the job's init source if
// it names one, writing checkpoints (the final one) to a directory when given one. Owns the
// pipeline. Not thread-safe.
#ifndef RESBM_COMMON_TRAIN_LOCAL_BACKEND_H_
#define RESBM_COMMON_TRAIN_LOCAL_BACKEND_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/train/local_pipeline.h"
#include "common/train/training_backend.h"
#include "resbm/v1/config.pb.h"

namespace resbm {

class LocalBackend : public TrainingBackend {
 public:
  // `config` must be valid; its init source is checked (ModelInitCheck) and applied to every
  // stage. With a `checkpoint_dir` (created when needed), Checkpoint writes
  // step-N-stage-S.ckpt files there.
  static absl::StatusOr<std::unique_ptr<LocalBackend>> Create(
      const v1::JobConfig& config, const std::string& device,
      const std::string& checkpoint_dir = "");

  absl::StatusOr<StepStats> TrainStep(int64_t step, const std::vector<int64_t>& inputs,
                                      const std::vector<int64_t>& targets) override;
  absl::StatusOr<double> Evaluate(int64_t round, const std::vector<int64_t>& inputs,
                                  const std::vector<int64_t>& targets) override;
  bool supports_checkpoints() const override { return !checkpoint_dir_.empty(); }
  absl::StatusOr<std::vector<std::string>> Checkpoint(int64_t steps_done) override;
  std::vector<BoundaryTraffic> Traffic() const override { return pipeline_->traffic(); }
  int64_t num_stages() const override { return pipeline_->num_stages(); }

  LocalPipeline& pipeline() { return *pipeline_; }

 private:
  LocalBackend(const v1::JobConfig& config, std::unique_ptr<LocalPipeline> pipeline,
               std::string checkpoint_dir);

  int64_t seq_len_;
  int64_t microbatches_;
  std::string checkpoint_dir_;
  std::unique_ptr<LocalPipeline> pipeline_;
};

}  // namespace resbm

#endif  // RESBM_COMMON_TRAIN_LOCAL_BACKEND_H_
