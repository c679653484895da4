// Replicas with real processes: a 2 x 2 job (two pipelines of two stages, their gradients
// all-reduced between the replicas of each stage over gRPC) submitted through the job API
// ends with exactly the losses resbm-train computes in one process for the same global batch;
// and one replica killed with SIGKILL mid-job is replaced and the job still ends with those
// losses.
#include <csignal>
#include <fstream>
#include <random>
#include <string>

#include "common/config/job_config.h"
#include "gtest/gtest.h"
#include "tests/testing/job_files.h"
#include "tests/testing/process_cluster.h"

namespace resbm {
namespace {

using ::resbm::testing::ExpectSameLosses;
using ::resbm::testing::ProcessCluster;
using ::resbm::testing::ReferenceLosses;
using ::resbm::testing::TrainLosses;
using ::resbm::testing::TwoStageJobJson;

TEST(ReplicasTest, TwoPipelinesOfTwoStagesEqualOneProcessAndSurviveAKilledReplica) {
  ProcessCluster cluster(::testing::TempDir() + "/resbm_replicas_" + std::to_string(::getpid()));
  const std::string config = cluster.dir() + "/job.json";
  std::ofstream(config) << TwoStageJobJson("grid", 60, 20, 13, /*checkpoint_every=*/10,
                                           /*replicas=*/2);
  const auto expected = ReferenceLosses(config, cluster.dir());
  ASSERT_EQ(expected.size(), 60u);

  ASSERT_TRUE(cluster.StartCoordinator().ok()) << cluster.Logs();
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(cluster.StartWorker().ok());  // 4 + a spare.
  auto submitted = cluster.client().Submit(*LoadJobConfigFile(config));
  ASSERT_TRUE(submitted.ok()) << submitted.status();
  EXPECT_EQ(submitted->config().stages().replicas(), 2u);

  // Past a checkpoint, at a random step: kill the worker of stage 1 in pipeline 1 (slot 3).
  std::mt19937 rng(21);
  const uint64_t at = 15 + rng() % 10;
  v1::Job running;
  ASSERT_TRUE(cluster.WaitForJob(
      submitted->job_id(),
      [&](const v1::Job& job) {
        running = job;
        return job.progress().checkpoint_step() >= 10 && job.progress().step() >= at &&
               job.stage_addresses_size() == 4;
      },
      absl::Seconds(180)))
      << cluster.Logs();
  const int victim = cluster.WorkerAt(running.stage_addresses(3));
  ASSERT_GE(victim, 0) << running.stage_addresses(3);
  cluster.worker(victim).Signal(SIGKILL);

  auto ended = cluster.client().WaitForEnd(submitted->job_id(), absl::Seconds(300));
  ASSERT_TRUE(ended.ok()) << ended.status() << "\n" << cluster.Logs();
  EXPECT_EQ(ended->state(), v1::JOB_STATE_SUCCEEDED) << ended->message() << cluster.Logs();
  EXPECT_GE(ended->progress().recoveries(), 1u);
  ExpectSameLosses(TrainLosses(ended->output_dir() + "/losses.csv"), expected);
  EXPECT_EQ(ended->summary().boundaries_size(), 1);
}

}  // namespace
}  // namespace resbm
