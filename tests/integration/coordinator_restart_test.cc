// The coordinator stopped mid-job, first with SIGTERM (a step in flight: it finishes that step,
// exits 0 and leaves the job RUNNING) and then with SIGKILL, and started again on the same
// data directory each time: the job is still there, resumes from its last complete checkpoint
// on the same workers (they re-register), and ends with exactly the losses of an
// uninterrupted run.
#include <signal.h>
#include <unistd.h>

#include <optional>
#include <random>
#include <string>

#include "common/config/job_config.h"
#include "gtest/gtest.h"
#include "tests/testing/job_files.h"
#include "tests/testing/process_cluster.h"
#include "tests/testing/wait_for.h"

namespace resbm::testing {
namespace {

TEST(CoordinatorRestartTest, StoppedAndKilledCoordinatorResumesTheJobWithTheUninterruptedLosses) {
  ProcessCluster cluster(::testing::TempDir() + "/resbm_restart_" + std::to_string(::getpid()));
  const std::string config = cluster.dir() + "/job.json";
  std::ofstream(config) << TwoStageJobJson("survivor", 300, 100, 9);
  const auto expected = ReferenceLosses(config, cluster.dir());
  ASSERT_EQ(expected.size(), 300u);

  ASSERT_TRUE(cluster.StartCoordinator().ok()) << cluster.Logs();
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(cluster.StartWorker().ok());
  auto submitted = cluster.client().Submit(*LoadJobConfigFile(config));
  ASSERT_TRUE(submitted.ok()) << submitted.status();
  const std::string job_id = submitted->job_id();

  std::mt19937 rng(77);
  for (int kill = 0; kill < 2; ++kill) {
    // Let it get past a checkpoint beyond where it (re)started, then kill at a random step
    // (steps, not milliseconds: a slow machine meets the same moments).
    const uint64_t past = 40 + 100 * kill;
    const uint64_t at = past + rng() % 10;
    ASSERT_TRUE(cluster.WaitForJob(
        job_id,
        [&](const v1::Job& job) {
          return job.progress().checkpoint_step() >= past && job.progress().step() >= at;
        },
        absl::Seconds(120)))
        << "kill " << kill << "\n"
        << cluster.Logs();
    const int signal = kill == 0 ? SIGTERM : SIGKILL;
    cluster.coordinator().Signal(signal);
    const std::optional<int> exit_code = cluster.coordinator().Wait(absl::Seconds(30));
    if (signal == SIGTERM) {
      EXPECT_EQ(exit_code, std::optional<int>(0)) << cluster.Logs();
    }
    ASSERT_TRUE(cluster.StartCoordinator().ok()) << cluster.Logs();
  }
  auto ended = cluster.client().WaitForEnd(job_id, absl::Seconds(240));
  ASSERT_TRUE(ended.ok()) << ended.status() << "\n" << cluster.Logs();
  EXPECT_EQ(ended->state(), v1::JOB_STATE_SUCCEEDED) << ended->message() << cluster.Logs();
  EXPECT_EQ(ended->config().name(), "survivor");
  EXPECT_EQ(ended->progress().resumes(), 2u);
  EXPECT_EQ(ended->progress().recoveries(), 0u);
  ExpectSameLosses(TrainLosses(ended->output_dir() + "/losses.csv"), expected);
  auto jobs = cluster.client().List();
  ASSERT_TRUE(jobs.ok());
  EXPECT_EQ(jobs->size(), 1u);
}

}  // namespace
}  // namespace resbm::testing
