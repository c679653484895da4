// The training loop's NonFinitePolicy, over a scripted backend: NaN in the loss (found by the
// loop) or reported by a stage (a NonFiniteError) fails the job by default and is recovered
// from the last checkpoint with NON_FINITE_POLICY_RETRY_FROM_CHECKPOINT.
#include <cmath>
#include <map>
#include <memory>
#include <set>
#include <utility>

#include "common/config/job_config.h"
#include "common/modelio/checkpoint_manifest_file.h"
#include "common/status/non_finite.h"
#include "common/train/trainer.h"
#include "gtest/gtest.h"
#include "tests/testing/scoped_temp_dir.h"

namespace resbm {
namespace {

// Trains "perfectly" (loss 1) except at the steps in `bad`, which fail `times` times each.
class ScriptedBackend : public TrainingBackend {
 public:
  ScriptedBackend(std::set<int64_t> bad, int times, bool as_stage_error)
      : bad_(std::move(bad)), times_(times), as_stage_error_(as_stage_error) {}

  absl::StatusOr<StepStats> TrainStep(int64_t step, const std::vector<int64_t>&,
                                      const std::vector<int64_t>&) override {
    if (bad_.count(step) && failures_[step]++ < times_) {
      if (as_stage_error_) {
        return NonFiniteError("2 of 64 in the activation of microbatch 0 received from stage 0");
      }
      return StepStats{std::nan(""), 1.0, 1.0};
    }
    return StepStats{1.0, 1.0, 1.0};
  }
  absl::StatusOr<double> Evaluate(int64_t, const std::vector<int64_t>&,
                                  const std::vector<int64_t>&) override {
    return 1.0;
  }
  bool supports_recovery() const override { return true; }
  absl::StatusOr<std::vector<std::string>> Checkpoint(int64_t steps_done) override {
    checkpoints_.push_back(steps_done);
    if (fail_checkpoint_once_at_ == steps_done) {
      fail_checkpoint_once_at_ = -1;
      return absl::UnavailableError("stage 1 went away while checkpointing");
    }
    checkpoint_ = steps_done;
    return std::vector<std::string>{dir_ + "/stage-0-" + std::to_string(steps_done),
                                    dir_ + "/stage-1-" + std::to_string(steps_done)};
  }
  absl::StatusOr<int64_t> Recover(const absl::Status&) override {
    ++recovered_;
    return checkpoint_;
  }
  std::vector<BoundaryTraffic> Traffic() const override { return {BoundaryTraffic{}}; }
  int64_t num_stages() const override { return 2; }

  int recovered_ = 0;
  std::vector<int64_t> checkpoints_;  // Every Checkpoint call, failed ones too.
  int64_t fail_checkpoint_once_at_ = -1;
  std::string dir_ = "/nonexistent";

 private:
  std::set<int64_t> bad_;
  int times_;
  bool as_stage_error_;
  std::map<int64_t, int> failures_;
  int64_t checkpoint_ = 0;
};

v1::JobConfig Config(v1::NonFinitePolicy policy) {
  auto config = ParseJobConfigJson(R"({"model": {"d_model": 64, "n_layers": 2, "n_heads": 2,
      "mlp_hidden": 128, "seq_len": 16}, "stages": {"num_stages": 2},
      "compression": {"ratio": 8},
      "training": {"steps": 8, "batch_size": 4, "microbatches": 2, "eval_every": 0,
                   "eval_batches": 1, "checkpoint_every": 2}})");
  EXPECT_TRUE(config.ok()) << config.status();
  config->mutable_training()->set_on_non_finite(policy);
  return *config;
}

struct Outcome {
  absl::StatusOr<RunSummary> summary;
  int recovered;
};

Outcome Train(v1::NonFinitePolicy policy, std::set<int64_t> bad, int times, bool stage_error,
            int64_t max_recoveries = 10) {
  TrainerOptions options;
  options.config = Config(policy);
  options.progress = nullptr;
  options.max_recoveries = max_recoveries;
  auto backend = std::make_unique<ScriptedBackend>(std::move(bad), times, stage_error);
  ScriptedBackend* raw = backend.get();
  auto trainer = Trainer::Create(options, std::move(backend));
  EXPECT_TRUE(trainer.ok()) << trainer.status();
  auto summary = (*trainer)->Run();
  return Outcome{std::move(summary), raw->recovered_};
}

TEST(TrainerPolicyTest, NanLossFailsTheJobByDefault) {
  Outcome outcome = Train(v1::NON_FINITE_POLICY_FAIL, {4}, 1, /*stage_error=*/false);
  ASSERT_FALSE(outcome.summary.ok());
  EXPECT_EQ(outcome.summary.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(outcome.summary.status().message(), "non-finite values: the loss of step 5 is nan");
  EXPECT_EQ(outcome.recovered, 0);
}

TEST(TrainerPolicyTest, AStageReportFailsTheJobByDefault) {
  Outcome outcome = Train(v1::NON_FINITE_POLICY_FAIL, {1}, 1, /*stage_error=*/true);
  ASSERT_FALSE(outcome.summary.ok());
  EXPECT_TRUE(IsNonFiniteError(outcome.summary.status())) << outcome.summary.status();
  EXPECT_EQ(outcome.recovered, 0);
}

TEST(TrainerPolicyTest, RetryRecoversFromTheLastCheckpoint) {
  Outcome outcome =
      Train(v1::NON_FINITE_POLICY_RETRY_FROM_CHECKPOINT, {4, 6}, 1, /*stage_error=*/true);
  ASSERT_TRUE(outcome.summary.ok()) << outcome.summary.status();
  EXPECT_EQ(outcome.summary->steps, 8);
  EXPECT_EQ(outcome.summary->recoveries, 2);
  EXPECT_EQ(outcome.recovered, 2);
}

TEST(TrainerPolicyTest, RetryGivesUpAtTheRecoveryLimit) {
  Outcome outcome = Train(v1::NON_FINITE_POLICY_RETRY_FROM_CHECKPOINT, {3}, 100,
                        /*stage_error=*/false, /*max_recoveries=*/3);
  ASSERT_FALSE(outcome.summary.ok());
  EXPECT_TRUE(IsNonFiniteError(outcome.summary.status())) << outcome.summary.status();
  EXPECT_EQ(outcome.recovered, 3);
}

TEST(TrainerPolicyTest, EveryRunEndsWithAFinalCheckpointAndItsManifest) {
  ScopedTempDir dir;
  TrainerOptions options;
  options.config = Config(v1::NON_FINITE_POLICY_FAIL);
  options.progress = nullptr;
  options.final_manifest_path = dir.File("final.json");
  options.job_id = "job-5";
  std::vector<int64_t> final_steps;
  options.hooks.on_final_checkpoint = [&](int64_t step, const std::string& manifest) {
    final_steps.push_back(step);
    EXPECT_EQ(manifest, dir.File("final.json"));
  };
  auto backend = std::make_unique<ScriptedBackend>(std::set<int64_t>{}, 0, false);
  ScriptedBackend* raw = backend.get();
  raw->dir_ = dir.path();
  raw->fail_checkpoint_once_at_ = 8;  // The final one fails once: recovered like a step.
  auto trainer = Trainer::Create(options, std::move(backend));
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  auto summary = (*trainer)->Run();
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_EQ(raw->checkpoints_, (std::vector<int64_t>{0, 2, 4, 6, 8, 8}));
  EXPECT_EQ(raw->recovered_, 1);
  EXPECT_EQ(final_steps, (std::vector<int64_t>{8}));
  EXPECT_EQ(summary->final_checkpoint_step, 8);
  auto manifest = CheckpointManifestFile::Read(dir.File("final.json"));
  ASSERT_TRUE(manifest.ok()) << manifest.status();
  EXPECT_EQ(manifest->job_id(), "job-5");
  EXPECT_EQ(manifest->step(), 8u);
  // Files beside the manifest are named relative to it, resolved again on reading.
  EXPECT_EQ(manifest->stage_files(1), dir.File("stage-1-8"));
}

}  // namespace
}  // namespace resbm
