// Stage workers (and the coordinator) killed with SIGKILL in the middle of a job: the
// coordinator notices, takes a spare (or restarted) worker, restores the last complete
// checkpoint on every stage, replays the same batches, and the job ends with exactly the
// losses of an uninterrupted run.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <random>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/config/job_config.h"
#include "common/data/token_shard.h"
#include "gtest/gtest.h"
#include "tests/testing/job_files.h"
#include "tests/testing/process_cluster.h"
#include "tests/testing/wait_for.h"

namespace resbm::testing {
namespace {

// The job as the coordinator has it now (an empty job if it cannot say).
v1::Job Current(ProcessCluster& cluster, const std::string& job_id) {
  return cluster.client().Get(job_id).value_or(v1::Job());
}

TEST(RecoveryTest, KilledWorkerIsReplacedBySpareAndTheLossesAreThoseOfAnUninterruptedRun) {
  ProcessCluster cluster(::testing::TempDir() + "/resbm_recovery_" + std::to_string(::getpid()));
  const std::string config = cluster.dir() + "/job.json";
  std::ofstream(config) << TwoStageJobJson("resbm-job", 300, 0, 21);
  const auto expected = ReferenceLosses(config, cluster.dir());
  ASSERT_EQ(expected.size(), 300u);

  // A hung step fails after 30 s and counts as a recovery: a hang cannot pass as success.
  ASSERT_TRUE(cluster.StartCoordinator({"--step-timeout-seconds=30"}).ok()) << cluster.Logs();
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(cluster.StartWorker().ok());  // One spare.
  auto submitted = cluster.client().Submit(*LoadJobConfigFile(config));
  ASSERT_TRUE(submitted.ok()) << submitted.status();
  const std::string job_id = submitted->job_id();

  // Kill the worker holding stage 1 once a few checkpoints are complete.
  v1::Job job;
  ASSERT_TRUE(WaitFor(
      [&] {
        job = Current(cluster, job_id);
        return job.progress().checkpoint_step() >= 50 && job.stage_addresses_size() == 2;
      },
      absl::Seconds(120)))
      << cluster.Logs();
  const int victim = cluster.WorkerAt(job.stage_addresses(1));
  ASSERT_GE(victim, 0) << job.stage_addresses(1);
  cluster.worker(victim).Signal(SIGKILL);

  auto ended = cluster.client().WaitForEnd(job_id, absl::Seconds(180));
  ASSERT_TRUE(ended.ok()) << ended.status() << "\n" << cluster.Logs();
  EXPECT_EQ(ended->state(), v1::JOB_STATE_SUCCEEDED) << ended->message();
  EXPECT_EQ(ended->progress().recoveries(), 1u) << cluster.Logs();
  ExpectSameLosses(TrainLosses(ended->output_dir() + "/losses.csv"), expected);
  // Retention: a succeeded job keeps only its final checkpoint (and its manifest).
  std::set<std::string> kept;
  for (const auto& entry :
       std::filesystem::directory_iterator(cluster.data_dir() + "/checkpoints")) {
    kept.insert(entry.path().filename().string());
  }
  EXPECT_EQ(kept, (std::set<std::string>{"job-1-final.json", "job-1-step-300-stage-0.ckpt",
                                         "job-1-step-300-stage-1.ckpt"}));
}

// Chaos, as a long run over the internet meets it: 30 SIGKILLs of the worker holding a random
// stage (restarted, as an orchestrator would) and 3 of the coordinator (started again on the
// same data), each at a random moment once the job has made progress since the last fault
// (a new checkpoint: faults faster than checkpoints fail a job by design, see
// training.max_recoveries_without_progress). More faults than the old life-long limit of 10,
// and still every planned step with the uninterrupted run's losses.
TEST(RecoveryTest, ThirtyWorkerKillsAndThreeCoordinatorKillsGiveTheUninterruptedLosses) {
  ProcessCluster cluster(::testing::TempDir() + "/resbm_chaos_" + std::to_string(::getpid()));
  const std::string config = cluster.dir() + "/job.json";
  constexpr int kSteps = 600;
  std::ofstream(config) << TwoStageJobJson("resbm-job", kSteps, 200, 5, /*checkpoint_every=*/5);
  const auto expected = ReferenceLosses(config, cluster.dir());
  ASSERT_EQ(expected.size(), static_cast<size_t>(kSteps));

  ASSERT_TRUE(cluster.StartCoordinator({"--step-timeout-seconds=30"}).ok()) << cluster.Logs();
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(cluster.StartWorker().ok());
  auto submitted = cluster.client().Submit(*LoadJobConfigFile(config));
  ASSERT_TRUE(submitted.ok()) << submitted.status();
  const std::string job_id = submitted->job_id();

  std::mt19937 rng(1234);  // Fixed: the same fault moments every run.
  const std::set<int> coordinator_faults = {8, 19, 27};
  int worker_kills = 0, coordinator_kills = 0;
  uint64_t last_checkpoint = 0;
  for (int fault = 0; fault < 33; ++fault) {
    // A random moment of the step stream: 0-4 steps after the newest checkpoint (counted in
    // steps, not milliseconds, so a slow machine meets the same moments).
    const uint64_t steps_after = rng() % 5;
    v1::Job job;
    ASSERT_TRUE(WaitFor(
        [&] {
          job = Current(cluster, job_id);
          // Progress since the last fault, on workers that are all alive now (a snapshot
          // from before a recovery still names the killed one).
          const auto& progress = job.progress();
          return JobEnded(job) || (progress.checkpoint_step() > last_checkpoint &&
                                   progress.step() >= progress.checkpoint_step() + steps_after &&
                                   job.stage_addresses_size() == 2 &&
                                   cluster.WorkerAt(job.stage_addresses(0)) >= 0 &&
                                   cluster.WorkerAt(job.stage_addresses(1)) >= 0);
        },
        absl::Seconds(120)))
        << "fault " << fault << "\n"
        << cluster.Logs();
    ASSERT_FALSE(JobEnded(job)) << "the job ended after " << fault << " faults: " << job.message();
    if (coordinator_faults.count(fault) != 0) {
      cluster.coordinator().Signal(SIGKILL);
      cluster.coordinator().Wait(absl::Seconds(10));
      ASSERT_TRUE(cluster.StartCoordinator({"--step-timeout-seconds=30"}).ok()) << cluster.Logs();
      ++coordinator_kills;
    } else {
      const int victim = cluster.WorkerAt(job.stage_addresses(static_cast<int>(rng() % 2)));
      ASSERT_GE(victim, 0);
      cluster.worker(victim).Signal(SIGKILL);
      ASSERT_TRUE(cluster.ReplaceWorker(victim).ok());
      ++worker_kills;
    }
    // Read after the fault: a checkpoint completed just before it is not progress after it.
    last_checkpoint = Current(cluster, job_id).progress().checkpoint_step();
  }
  auto ended = cluster.client().WaitForEnd(job_id, absl::Seconds(300));
  ASSERT_TRUE(ended.ok()) << ended.status() << "\n" << cluster.Logs();
  EXPECT_EQ(ended->state(), v1::JOB_STATE_SUCCEEDED) << ended->message();
  EXPECT_EQ(worker_kills, 30);
  EXPECT_EQ(coordinator_kills, 3);
  EXPECT_EQ(ended->progress().step(), static_cast<uint64_t>(kSteps));
  EXPECT_EQ(ended->progress().resumes(), 3u);
  // A worker kill costs one recovery, except one that lands while a restarted coordinator
  // restores the stages (the resume takes another worker itself); the count survives the
  // coordinator's restarts.
  EXPECT_LE(ended->progress().recoveries(), 30u);
  EXPECT_GE(ended->progress().recoveries(), 20u) << cluster.Logs();
  std::printf("chaos: %d worker kills, %d coordinator kills, %u recoveries, %u resumes\n",
              worker_kills, coordinator_kills, ended->progress().recoveries(),
              ended->progress().resumes());
  ExpectSameLosses(TrainLosses(ended->output_dir() + "/losses.csv"), expected);
}

// A deterministic failure with real processes: a token shard modified under the running job
// fails it at once with its cause (FAILED_PRECONDITION, the shard named), without a recovery,
// and the job's record holds the shards it read.
TEST(RecoveryTest, AShardModifiedUnderTheJobFailsItAtOnceWithTheCause) {
  ProcessCluster cluster(::testing::TempDir() + "/resbm_shard_" + std::to_string(::getpid()));
  std::vector<uint16_t> tokens(20000);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<uint16_t>(i * 31 % 256);
  const std::string train = cluster.dir() + "/train.bin", val = cluster.dir() + "/val.bin";
  ASSERT_TRUE(WriteTokenShard(train, tokens).ok());
  ASSERT_TRUE(WriteTokenShard(val, tokens).ok());
  auto config = ParseJobConfigJson(absl::StrCat(R"({"name": "shards",
    "model": {"d_model": 64, "n_layers": 2, "n_heads": 2, "mlp_hidden": 128, "seq_len": 32},
    "stages": {"num_stages": 2},
    "compression": {"ratio": 8, "wire_dtype": "WIRE_DTYPE_FP32"},
    "data": {"token_shards": {"train_paths": [")",
                                                train, R"("], "val_paths": [")", val, R"("]}},
    "training": {"steps": 2000, "batch_size": 8, "microbatches": 2, "eval_every": 0,
                 "eval_batches": 1, "checkpoint_every": 10}})"));
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_TRUE(cluster.StartCoordinator().ok()) << cluster.Logs();
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(cluster.StartWorker().ok());
  auto submitted = cluster.client().Submit(*config);
  ASSERT_TRUE(submitted.ok()) << submitted.status();
  const std::string job_id = submitted->job_id();
  ASSERT_TRUE(cluster.WaitForJob(
      job_id, [&](const v1::Job& job) { return job.progress().step() >= 5; }, absl::Seconds(120)))
      << cluster.Logs();
  const struct timespec times[2] = {{1000000000, 0}, {1000000000, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, train.c_str(), times, 0), 0);

  auto ended = cluster.client().WaitForEnd(job_id, absl::Seconds(60));
  ASSERT_TRUE(ended.ok()) << ended.status() << "\n" << cluster.Logs();
  EXPECT_EQ(ended->state(), v1::JOB_STATE_FAILED) << cluster.Logs();
  EXPECT_NE(ended->message().find("FAILED_PRECONDITION: step "), std::string::npos)
      << ended->message();
  EXPECT_NE(ended->message().find("not recovered"), std::string::npos) << ended->message();
  EXPECT_NE(ended->message().find("token shard " + train + " was modified"), std::string::npos)
      << ended->message();
  EXPECT_EQ(ended->progress().recoveries(), 0u);
  EXPECT_LT(ended->progress().step(), 2000u);
  ASSERT_EQ(ended->data().train_size(), 1);
  EXPECT_EQ(ended->data().train(0).path(), train);
  EXPECT_EQ(ended->data().train(0).tokens(), 20000u);
}

}  // namespace
}  // namespace resbm::testing
