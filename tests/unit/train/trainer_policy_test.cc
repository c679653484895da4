// The training loop's NonFinitePolicy, over a scripted backend: NaN in the loss (found by the
// loop) or reported by a stage (a NonFiniteError) fails the job by default and is recovered
// from the last checkpoint with NON_FINITE_POLICY_RETRY_FROM_CHECKPOINT.
#include <cmath>
#include <map>
#include <memory>
#include <set>
#include <utility>

#include "common/config/job_config.h"
#include "common/status/non_finite.h"
#include "common/train/trainer.h"
#include "gtest/gtest.h"

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
    checkpoint_ = steps_done;
    return std::vector<std::string>(2, "/nonexistent/" + std::to_string(steps_done));
  }
  absl::StatusOr<int64_t> Recover(const absl::Status&) override {
    ++recovered_;
    return checkpoint_;
  }
  std::vector<BoundaryTraffic> Traffic() const override { return {BoundaryTraffic{}}; }
  int64_t num_stages() const override { return 2; }

  int recovered_ = 0;

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

}  // namespace
}  // namespace resbm
