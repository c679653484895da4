// Stage workers killed with SIGKILL in the middle of a job: the coordinator notices, takes a
// spare (or restarted) worker, restores the last complete checkpoint on every stage, replays
// the same batches, and the job ends with exactly the losses of an uninterrupted run.
#include <signal.h>
#include <unistd.h>

#include <random>
#include <string>

#include "common/config/job_config.h"
#include "gtest/gtest.h"
#include "tests/testing/job_files.h"
#include "tests/testing/process_cluster.h"
#include "tests/testing/wait_for.h"

namespace resbm {
namespace {

using ::resbm::testing::ExpectSameLosses;
using ::resbm::testing::ProcessCluster;
using ::resbm::testing::ReferenceLosses;
using ::resbm::testing::TrainLosses;
using ::resbm::testing::WaitFor;

constexpr char kJob[] = R"({"model": {"d_model": 64, "n_layers": 4, "n_heads": 2,
    "mlp_hidden": 128, "seq_len": 32},
  "stages": {"num_stages": 2},
  "compression": {"ratio": 8, "wire_dtype": "WIRE_DTYPE_FP32"},
  "training": {"steps": %d, "batch_size": 8, "microbatches": 2, "eval_every": %d,
               "eval_batches": 1, "seed": %d, "checkpoint_every": 10}})";

std::string JobJson(int steps, int eval_every, int seed) {
  char json[1024];
  std::snprintf(json, sizeof(json), kJob, steps, eval_every, seed);
  return json;
}

// The job as the coordinator has it now (an empty job if it cannot say).
v1::Job Current(ProcessCluster& cluster, const std::string& job_id) {
  return cluster.client().Get(job_id).value_or(v1::Job());
}

TEST(RecoveryTest, KilledWorkerIsReplacedBySpareAndTheLossesAreThoseOfAnUninterruptedRun) {
  ProcessCluster cluster(::testing::TempDir() + "/resbm_recovery_" + std::to_string(::getpid()));
  const std::string config = cluster.dir() + "/job.json";
  std::ofstream(config) << JobJson(300, 0, 21);
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
}

// Five SIGKILLs of a random worker at random moments (each killed worker is restarted, as
// an orchestrator would): the job still completes every step with the uninterrupted losses.
TEST(RecoveryTest, FiveRandomKillsStillGiveTheUninterruptedLosses) {
  ProcessCluster cluster(::testing::TempDir() + "/resbm_recovery5_" + std::to_string(::getpid()));
  const std::string config = cluster.dir() + "/job.json";
  std::ofstream(config) << JobJson(400, 100, 5);
  const auto expected = ReferenceLosses(config, cluster.dir());
  ASSERT_EQ(expected.size(), 400u);

  ASSERT_TRUE(cluster.StartCoordinator({"--step-timeout-seconds=30"}).ok()) << cluster.Logs();
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(cluster.StartWorker().ok());
  auto submitted = cluster.client().Submit(*LoadJobConfigFile(config));
  ASSERT_TRUE(submitted.ok()) << submitted.status();
  const std::string job_id = submitted->job_id();
  ASSERT_TRUE(
      WaitFor([&] { return Current(cluster, job_id).progress().step() > 0; }, absl::Seconds(60)))
      << cluster.Logs();

  std::mt19937 rng(1234);  // Fixed: the same kill moments every run.
  int kills = 0;
  for (; kills < 5; ++kills) {
    // After the previous recovery, let it train for a random moment, then kill.
    ASSERT_TRUE(WaitFor(
        [&] {
          const v1::Job job = Current(cluster, job_id);
          return static_cast<int>(job.progress().recoveries()) >= kills || JobEnded(job);
        },
        absl::Seconds(120)))
        << "kill " << kills << "\n"
        << cluster.Logs();
    absl::SleepFor(absl::Milliseconds(300 + rng() % 1500));
    if (JobEnded(Current(cluster, job_id))) break;
    const size_t victim = rng() % cluster.num_workers();
    cluster.worker(victim).Signal(SIGKILL);
    ASSERT_TRUE(cluster.ReplaceWorker(victim).ok());
  }
  auto ended = cluster.client().WaitForEnd(job_id, absl::Seconds(300));
  ASSERT_TRUE(ended.ok()) << ended.status() << "\n" << cluster.Logs();
  EXPECT_EQ(ended->state(), v1::JOB_STATE_SUCCEEDED) << ended->message();
  EXPECT_EQ(kills, 5) << "the job ended before five kills";
  EXPECT_EQ(ended->progress().recoveries(), 5u) << cluster.Logs();
  ExpectSameLosses(TrainLosses(ended->output_dir() + "/losses.csv"), expected);
}

}  // namespace
}  // namespace resbm
