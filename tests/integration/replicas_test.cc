// Replicas with real processes: a 2 x 2 job (two pipelines of two stages, their gradients
// all-reduced between the replicas of each stage over gRPC) submitted through the job API.
// One replica is killed with SIGKILL mid-step and no worker is idle: the broken pipeline goes
// out of the job and the other redoes the failed step with every microbatch, going on alone;
// when a new worker starts, the pipeline comes back at a step boundary, each of its stages
// taking its state from the live replica (no checkpoint is read), before a job queued
// meanwhile can take that worker: the job ends with exactly the losses resbm-train computes
// in one process for the same global batch.
#include <csignal>
#include <fstream>
#include <random>
#include <string>

#include "absl/strings/match.h"
#include "common/config/job_config.h"
#include "gtest/gtest.h"
#include "tests/testing/job_files.h"
#include "tests/testing/process_cluster.h"

namespace resbm::testing {
namespace {

TEST(ReplicasTest, AKilledReplicaIsReplacedFromItsPeerWithoutACheckpoint) {
  ProcessCluster cluster(::testing::TempDir() + "/resbm_replicas_" + std::to_string(::getpid()));
  const std::string config = cluster.dir() + "/job.json";
  std::ofstream(config) << TwoStageJobJson("grid", 100, 20, 13, /*checkpoint_every=*/10,
                                           /*replicas=*/2);
  const auto expected = ReferenceLosses(config, cluster.dir());
  ASSERT_EQ(expected.size(), 100u);

  ASSERT_TRUE(cluster.StartCoordinator().ok()) << cluster.Logs();
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(cluster.StartWorker().ok());  // No spare.
  auto submitted = cluster.client().Submit(*LoadJobConfigFile(config));
  ASSERT_TRUE(submitted.ok()) << submitted.status();
  EXPECT_EQ(submitted->config().stages().replicas(), 2u);

  // At a random step away from the checkpoints: kill the worker of stage 1 in pipeline 1.
  std::mt19937 rng(21);
  const uint64_t at = 12 + rng() % 6;
  v1::Job running;
  ASSERT_TRUE(cluster.WaitForJob(
      submitted->job_id(),
      [&](const v1::Job& job) {
        running = job;
        return job.progress().step() >= at && job.stage_addresses_size() == 4;
      },
      absl::Seconds(180)))
      << cluster.Logs();
  const int victim = cluster.WorkerAt(running.stage_addresses(3));  // Slot 1 * P + 1.
  ASSERT_GE(victim, 0) << running.stage_addresses(3);
  cluster.worker(victim).Signal(SIGKILL);
  // No idle worker: pipeline 1 goes out of the job (its slots empty) and pipeline 0 takes
  // every microbatch, without waiting; steps go on.
  uint64_t out_at = 0;
  ASSERT_TRUE(cluster.WaitForJob(
      submitted->job_id(),
      [&](const v1::Job& job) {
        if (job.stage_addresses_size() != 4 || !job.stage_addresses(3).empty()) return false;
        if (out_at == 0) out_at = job.progress().step();
        return job.progress().step() >= out_at + 3;
      },
      absl::Seconds(60)))
      << cluster.Logs();
  const v1::Job one_pipeline = *cluster.client().Get(submitted->job_id());
  EXPECT_TRUE(one_pipeline.stage_addresses(2).empty()) << "pipeline 1 is out as a whole";
  EXPECT_FALSE(one_pipeline.stage_addresses(0).empty());
  // A one-worker job queued meanwhile, then a new worker: pipeline 1 comes back at a step
  // boundary, from pipeline 0's state; the queued job does not take the worker first.
  const std::string solo_config = cluster.dir() + "/solo.json";
  std::ofstream(solo_config) << TwoStageJobJson("solo", 20, 0, 5, 10, /*replicas=*/1,
                                                /*stages=*/1);
  auto solo = cluster.client().Submit(*LoadJobConfigFile(solo_config));
  ASSERT_TRUE(solo.ok()) << solo.status();
  ASSERT_TRUE(cluster.StartWorker().ok());
  ASSERT_TRUE(cluster.WaitForJob(
      submitted->job_id(),
      [](const v1::Job& job) {
        return job.stage_addresses_size() == 4 && !job.stage_addresses(2).empty() &&
               !job.stage_addresses(3).empty();
      },
      absl::Seconds(60)))
      << cluster.Logs();
  const v1::Job solo_waiting = *cluster.client().Get(solo->job_id());
  EXPECT_EQ(solo_waiting.state(), v1::JOB_STATE_QUEUED) << solo_waiting.message();
  EXPECT_TRUE(absl::StrContains(solo_waiting.message(), "needs 1 workers"))
      << solo_waiting.message();

  auto ended = cluster.client().WaitForEnd(submitted->job_id(), absl::Seconds(300));
  ASSERT_TRUE(ended.ok()) << ended.status() << "\n" << cluster.Logs();
  EXPECT_EQ(ended->state(), v1::JOB_STATE_SUCCEEDED) << ended->message() << cluster.Logs();
  ExpectSameLosses(TrainLosses(ended->output_dir() + "/losses.csv"), expected);
  // The failed step was redone where it failed, not replayed from a checkpoint.
  ASSERT_GE(ended->progress().recent_recoveries_size(), 1) << cluster.Logs();
  const v1::RecoveryRecord& recovery = ended->progress().recent_recoveries(0);
  EXPECT_EQ(recovery.resumed_after() + 1, recovery.step()) << cluster.Logs();
  EXPECT_EQ(ended->progress().recoveries(), 1u) << cluster.Logs();
  EXPECT_EQ(ended->summary().boundaries_size(), 1);
  // The grid's workers free again: the queued job runs.
  auto solo_ended = cluster.client().WaitForEnd(solo->job_id(), absl::Seconds(120));
  ASSERT_TRUE(solo_ended.ok()) << solo_ended.status() << "\n" << cluster.Logs();
  EXPECT_EQ(solo_ended->state(), v1::JOB_STATE_SUCCEEDED) << solo_ended->message();
}

// The outer optimizer (DiLoCo, a synchronisation every 10 steps): a replica killed mid-period
// is rebuilt from its peer (whose local state it takes for the rest of the period) and the
// step redone in place; the replicas then agree again at the next synchronisation (the
// coordinator compares their checksums there) and the job ends. Not the uninterrupted losses:
// the lost replica's local steps since the last synchronisation are gone by design.
TEST(ReplicasTest, AnOuterOptimizerJobSurvivesAKilledReplica) {
  ProcessCluster cluster(::testing::TempDir() + "/resbm_outer_" + std::to_string(::getpid()));
  const std::string path = cluster.dir() + "/job.json";
  std::ofstream(path) << TwoStageJobJson("outer", 40, 20, 13, /*checkpoint_every=*/20,
                                         /*replicas=*/2);
  auto config = LoadJobConfigFile(path);
  ASSERT_TRUE(config.ok()) << config.status();
  config->mutable_optimizer()->mutable_outer()->set_steps(10);
  config->mutable_optimizer()->mutable_outer()->set_dtype(v1::WIRE_DTYPE_INT8);
  ASSERT_TRUE(cluster.StartCoordinator().ok()) << cluster.Logs();
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(cluster.StartWorker().ok());
  auto submitted = cluster.client().Submit(*config);
  ASSERT_TRUE(submitted.ok()) << submitted.status();
  v1::Job running;
  ASSERT_TRUE(cluster.WaitForJob(
      submitted->job_id(),
      [&](const v1::Job& job) {
        running = job;
        return job.progress().step() >= 25 && job.stage_addresses_size() == 4;
      },
      absl::Seconds(180)))
      << cluster.Logs();
  const int victim = cluster.WorkerAt(running.stage_addresses(2));  // Pipeline 1, stage 0.
  ASSERT_GE(victim, 0) << running.stage_addresses(2);
  cluster.worker(victim).Signal(SIGKILL);
  ASSERT_TRUE(cluster.StartWorker().ok());
  auto ended = cluster.client().WaitForEnd(submitted->job_id(), absl::Seconds(300));
  ASSERT_TRUE(ended.ok()) << ended.status() << "\n" << cluster.Logs();
  EXPECT_EQ(ended->state(), v1::JOB_STATE_SUCCEEDED) << ended->message() << cluster.Logs();
  EXPECT_EQ(ended->progress().step(), 40u);
  ASSERT_GE(ended->progress().recent_recoveries_size(), 1) << cluster.Logs();
  const v1::RecoveryRecord& recovery = ended->progress().recent_recoveries(0);
  EXPECT_EQ(recovery.resumed_after() + 1, recovery.step()) << cluster.Logs();
  uint64_t replica_bytes = 0;
  for (const v1::StageSummary& stage : ended->summary().stages()) {
    replica_bytes += stage.replica_bytes_sent();
  }
  EXPECT_GT(replica_bytes, 0u);
}

// Churn on replicas: 20 SIGKILLs of a random worker of a 2 x 2 job (each restarted, as an
// orchestrator would), each a few steps after the job last went on. A lost replica is
// replaced from its peer and its step redone, so the kills cost no checkpoint (there is one
// every 100 steps) and never run into training.max_recoveries_without_progress; the job
// ends with the uninterrupted losses.
TEST(ReplicasTest, TwentyKillsOfRandomReplicasGiveTheUninterruptedLosses) {
  ProcessCluster cluster(::testing::TempDir() + "/resbm_replica_chaos_" +
                         std::to_string(::getpid()));
  const std::string config = cluster.dir() + "/job.json";
  // The job goes on with one pipeline while a replacement starts: room for twenty kills.
  constexpr int kSteps = 700;
  std::ofstream(config) << TwoStageJobJson("churn", kSteps, 100, 17, /*checkpoint_every=*/100,
                                           /*replicas=*/2);
  const auto expected = ReferenceLosses(config, cluster.dir());
  ASSERT_EQ(expected.size(), static_cast<size_t>(kSteps));
  ASSERT_TRUE(cluster.StartCoordinator({"--step-timeout-seconds=30"}).ok()) << cluster.Logs();
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(cluster.StartWorker().ok());
  auto submitted = cluster.client().Submit(*LoadJobConfigFile(config));
  ASSERT_TRUE(submitted.ok()) << submitted.status();
  const std::string job_id = submitted->job_id();

  std::mt19937 rng(99);  // Fixed: the same victims and moments every run.
  uint64_t last_step = 0;
  for (int kill = 0; kill < 20; ++kill) {
    const uint64_t after = 2 + rng() % 4;  // Steps since the last kill, not milliseconds.
    v1::Job job;
    ASSERT_TRUE(cluster.WaitForJob(
        job_id,
        [&](const v1::Job& current) {
          job = current;
          const v1::JobState state = current.state();
          if (state == v1::JOB_STATE_SUCCEEDED || state == v1::JOB_STATE_FAILED ||
              state == v1::JOB_STATE_CANCELLED) {
            return true;
          }
          if (state != v1::JOB_STATE_RUNNING) return false;
          bool all_alive = current.stage_addresses_size() == 4;
          for (const auto& address : current.stage_addresses()) {
            all_alive = all_alive && cluster.WorkerAt(address) >= 0;
          }
          return all_alive && current.progress().step() >= last_step + after;
        },
        absl::Seconds(120)))
        << "kill " << kill << "\n"
        << cluster.Logs();
    ASSERT_EQ(job.state(), v1::JOB_STATE_RUNNING)
        << "ended after " << kill << " kills: " << job.message();
    const int victim = cluster.WorkerAt(job.stage_addresses(static_cast<int>(rng() % 4)));
    ASSERT_GE(victim, 0);
    cluster.worker(victim).Signal(SIGKILL);
    const absl::Status replaced = cluster.ReplaceWorker(victim);
    ASSERT_TRUE(replaced.ok()) << replaced;
    last_step = job.progress().step();
  }
  auto ended = cluster.client().WaitForEnd(job_id, absl::Seconds(300));
  ASSERT_TRUE(ended.ok()) << ended.status() << "\n" << cluster.Logs();
  EXPECT_EQ(ended->state(), v1::JOB_STATE_SUCCEEDED) << ended->message() << cluster.Logs();
  EXPECT_GE(ended->progress().recoveries(), 15u) << cluster.Logs();
  std::printf("replica churn: 20 kills, %u recoveries\n", ended->progress().recoveries());
  ExpectSameLosses(TrainLosses(ended->output_dir() + "/losses.csv"), expected);
}

}  // namespace
}  // namespace resbm::testing
