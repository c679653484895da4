// The training loop's NonFinitePolicy, over a scripted backend: NaN in the loss (found by the
// loop) or reported by a stage (a NonFiniteError) fails the job by default and is recovered
// from the last checkpoint with NON_FINITE_POLICY_RETRY_FROM_CHECKPOINT.
#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <set>
#include <utility>

#include "common/base/file_io.h"
#include "common/config/job_config.h"
#include "common/data/token_shard.h"
#include "common/modelio/checkpoint_manifest_file.h"
#include "common/status/failure_cause.h"
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
    if (auto it = script_.find(step); it != script_.end() && !it->second.empty()) {
      absl::Status failure = it->second.front();
      it->second.erase(it->second.begin());
      return failure;
    }
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
  // Step (0-based) -> the failures it returns, in order, before it succeeds.
  std::map<int64_t, std::vector<absl::Status>> script_;
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
  options.config.mutable_training()->set_max_recoveries_without_progress(max_recoveries);
  options.progress = nullptr;
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

// Runs Config(FAIL) with `steps` steps over `backend`, writing the loss curve and summary into
// `dir`; `recovered` gets the backend's recoveries (the trainer owns it and ends here).
absl::StatusOr<RunSummary> RunScripted(int64_t steps, std::unique_ptr<ScriptedBackend> backend,
                                       const ScopedTempDir& dir, RunSummary* reported,
                                       int* recovered) {
  const ScriptedBackend* raw = backend.get();
  TrainerOptions options;
  options.config = Config(v1::NON_FINITE_POLICY_FAIL);
  options.config.mutable_training()->set_steps(static_cast<uint32_t>(steps));
  options.progress = nullptr;
  options.loss_csv_path = dir.File("losses.csv");
  options.summary_json_path = dir.File("summary.json");
  options.hooks.on_end = [reported](const RunSummary& summary) { *reported = summary; };
  auto trainer = Trainer::Create(options, std::move(backend));
  EXPECT_TRUE(trainer.ok()) << trainer.status();
  auto summary = (*trainer)->Run();
  *recovered = raw->recovered_;
  return summary;
}

TEST(TrainerPolicyTest, ALongRunOutrunsManyMoreFaultsThanTheLimit) {
  ScopedTempDir dir;
  auto backend = std::make_unique<ScriptedBackend>(std::set<int64_t>{}, 0, false);
  ScriptedBackend* raw = backend.get();
  // A worker lost at every odd step (a restarted worker's refusal among them): 20 faults,
  // against a limit of 5 recoveries without a new checkpoint (every 2 steps).
  for (int64_t step = 1; step < 40; step += 2) {
    raw->script_[step] = {
        step % 4 == 1 ? absl::UnavailableError("stage 1: connection refused")
                      : WithCause(absl::FailedPreconditionError("no stage assigned to this worker"),
                                  FailureCause::kWorkerLost)};
  }
  RunSummary reported;
  int recovered = 0;
  auto summary = RunScripted(40, std::move(backend), dir, &reported, &recovered);
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_EQ(summary->recoveries, 20);
  EXPECT_EQ(recovered, 20);
  EXPECT_EQ(summary->steps, 40);
  EXPECT_EQ(reported.outcome, "succeeded");
}

TEST(TrainerPolicyTest, ADeterministicErrorFailsAtOnceAndKeepsTheRecord) {
  ScopedTempDir dir;
  auto backend = std::make_unique<ScriptedBackend>(std::set<int64_t>{}, 0, false);
  ScriptedBackend* raw = backend.get();
  raw->script_[5] = {absl::InvalidArgumentError("stage 1 (w2): targets: 63 ids; expected 64")};
  RunSummary reported;
  int recovered = 0;
  auto summary = RunScripted(8, std::move(backend), dir, &reported, &recovered);
  ASSERT_FALSE(summary.ok());
  EXPECT_EQ(summary.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(summary.status().message(),
            "step 6: not recovered (INVALID_ARGUMENT is deterministic: a retry fails the same "
            "way): stage 1 (w2): targets: 63 ids; expected 64");
  EXPECT_EQ(recovered, 0);
  // The five steps done are on record, as a succeeded run's would be.
  EXPECT_EQ(reported.outcome, "failed");
  EXPECT_EQ(reported.steps, 5);
  EXPECT_EQ(reported.final_checkpoint_step, -1);
  EXPECT_NE(reported.error.find("INVALID_ARGUMENT: step 6"), std::string::npos) << reported.error;
  auto csv = ReadFileToString(dir.File("losses.csv"), 1 << 20);
  ASSERT_TRUE(csv.ok()) << csv.status();
  EXPECT_EQ(std::count(csv->begin(), csv->end(), '\n'), 6) << *csv;  // Header + 5 steps.
  auto written = ReadFileToString(dir.File("summary.json"), 1 << 20);
  ASSERT_TRUE(written.ok()) << written.status();
  auto parsed = RunSummary::FromJson(*written);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->outcome, "failed");
  EXPECT_EQ(parsed->steps, 5);
}

TEST(TrainerPolicyTest, TheSameStepFailingTwiceWithAModelErrorFails) {
  ScopedTempDir dir;
  auto backend = std::make_unique<ScriptedBackend>(std::set<int64_t>{}, 0, false);
  ScriptedBackend* raw = backend.get();
  const absl::Status raised =
      WithCause(absl::InternalError("stage 0 forward: bad alloc"), FailureCause::kModelError);
  raw->script_[3] = {raised, raised};
  RunSummary reported;
  int recovered = 0;
  auto summary = RunScripted(8, std::move(backend), dir, &reported, &recovered);
  ASSERT_FALSE(summary.ok());
  EXPECT_EQ(summary.status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(recovered, 1);
  EXPECT_EQ(reported.outcome, "failed");
}

TEST(TrainerPolicyTest, NoProgressBetweenFaultsHitsTheLimitAndSaysSo) {
  ScopedTempDir dir;
  auto backend = std::make_unique<ScriptedBackend>(std::set<int64_t>{}, 0, false);
  ScriptedBackend* raw = backend.get();
  raw->script_[3] = std::vector<absl::Status>(10, absl::DeadlineExceededError("step timeout"));
  RunSummary reported;
  int recovered = 0;
  auto summary = RunScripted(8, std::move(backend), dir, &reported, &recovered);
  ASSERT_FALSE(summary.ok());
  EXPECT_EQ(recovered, 5);  // The default limit.
  EXPECT_NE(summary.status().message().find(
                "gave up after 5 recoveries since the last new checkpoint (after step 2), the "
                "limit training.max_recoveries_without_progress = 5"),
            std::string::npos)
      << summary.status();
  EXPECT_EQ(reported.recoveries, 5);
}

// A job over token shards records what it reads; a shard changed under it fails the next step
// at once (not recovered: a retry would read the same changed data), and a later run of the
// job refuses shards that differ from the record.
TEST(TrainerPolicyTest, AShardChangedUnderTheJobFailsItAndIsRefusedLater) {
  ScopedTempDir dir;
  std::vector<uint16_t> tokens(3000);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<uint16_t>(i * 7 % 256);
  ASSERT_TRUE(WriteTokenShard(dir.File("train.bin"), tokens).ok());
  ASSERT_TRUE(WriteTokenShard(dir.File("val.bin"), tokens).ok());
  TrainerOptions options;
  options.config = Config(v1::NON_FINITE_POLICY_FAIL);
  auto* shards = options.config.mutable_data()->mutable_token_shards();
  shards->add_train_paths(dir.File("train.bin"));
  shards->add_val_paths(dir.File("val.bin"));
  options.progress = nullptr;
  DatasetFingerprint recorded;
  options.hooks.on_data = [&](const DatasetFingerprint& data) { recorded = data; };
  const struct timespec times[2] = {{1000000000, 0}, {1000000000, 0}};
  options.hooks.on_step = [&](const StepRecord& record) {
    if (record.step == 3) {
      ASSERT_EQ(::utimensat(AT_FDCWD, dir.File("val.bin").c_str(), times, 0), 0);
    }
  };
  auto backend = std::make_unique<ScriptedBackend>(std::set<int64_t>{}, 0, false);
  ScriptedBackend* raw = backend.get();
  auto trainer = Trainer::Create(options, std::move(backend));
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  auto summary = (*trainer)->Run();
  ASSERT_FALSE(summary.ok());
  EXPECT_EQ(summary.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(summary.status().message().find("step 4: not recovered"), std::string::npos)
      << summary.status();
  EXPECT_NE(summary.status().message().find(dir.File("val.bin") + " was modified"),
            std::string::npos)
      << summary.status();
  EXPECT_EQ(raw->recovered_, 0);
  ASSERT_EQ(recorded.train.size(), 1u);
  ASSERT_EQ(recorded.val.size(), 1u);
  EXPECT_EQ(recorded.train[0].tokens, 3000);

  // The next run of the job (a coordinator restart) is refused before it starts.
  options.recorded_data = recorded;
  auto refused =
      Trainer::Create(options, std::make_unique<ScriptedBackend>(std::set<int64_t>{}, 0, false));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("val shard changed since the job first read it"),
            std::string::npos)
      << refused.status();
  // With the record of what is there now, it starts.
  options.recorded_data.val[0].mtime_unix_ns = int64_t{1000000000} * 1000000000;
  EXPECT_TRUE(
      Trainer::Create(options, std::make_unique<ScriptedBackend>(std::set<int64_t>{}, 0, false))
          .ok());
}

}  // namespace
}  // namespace resbm
