// Several jobs share one pool, with real processes: five workers; a 3-stage job (alice's) and
// a 2-stage job (bob's) submitted together run at once on disjoint workers, and a third job
// (alice's) queues, saying why. A worker of the 3-stage job is killed with SIGKILL mid-job:
// that job restores its own last checkpoint while the other keeps running and writing its
// own, and its recovery takes the first workers that free up before the queued job starts.
// Every job ends with exactly the losses resbm-train computes for it alone; bob cannot cancel
// alice's job. And a coordinator killed under two running jobs resumes both.
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include "absl/strings/match.h"
#include "common/config/job_config.h"
#include "gtest/gtest.h"
#include "tests/testing/job_files.h"
#include "tests/testing/process_cluster.h"
#include "tools/resbmctl/job_views.h"

namespace resbm::testing {
namespace {

constexpr char kAlice[] = "a11ce0a11ce0a11ce0a11ce0";
constexpr char kBob[] = "b0b0b0b0b0b0b0b0b0b0b0b0";

struct TestJob {
  std::string name;
  std::string config;  // Path.
  std::vector<double> expected;
  std::string job_id;
};

// Writes the job's config and computes its single-process losses in a directory of its own.
TestJob MakeJob(const std::string& dir, const std::string& name, int steps, int seed, int stages) {
  TestJob job;
  job.name = name;
  const std::string job_dir = dir + "/" + name;
  std::filesystem::create_directories(job_dir);
  job.config = job_dir + "/job.json";
  std::ofstream(job.config) << TwoStageJobJson(name, steps, 20, seed, /*checkpoint_every=*/10,
                                               /*replicas=*/1, stages);
  job.expected = ReferenceLosses(job.config, job_dir);
  EXPECT_EQ(job.expected.size(), static_cast<size_t>(steps));
  return job;
}

TEST(ConcurrentJobsTest, ThreeJobsOnFiveWorkersEachEqualTheirSingleProcessRun) {
  ProcessCluster cluster(::testing::TempDir() + "/resbm_concurrent_" + std::to_string(::getpid()));
  TestJob big = MakeJob(cluster.dir(), "big", 60, 5, /*stages=*/3);
  TestJob small = MakeJob(cluster.dir(), "small", 150, 6, /*stages=*/2);
  TestJob third = MakeJob(cluster.dir(), "third", 30, 7, /*stages=*/2);

  const std::string tokens = cluster.dir() + "/tokens";
  std::ofstream(tokens) << "alice " << kAlice << "\nbob " << kBob << "\n";
  cluster.set_security({"--plaintext", "--auth-tokens-file=" + tokens}, {"--plaintext"},
                       JobClientAuth{nullptr, kAlice});
  ASSERT_TRUE(cluster.StartCoordinator().ok()) << cluster.Logs();
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(cluster.StartWorker().ok());
  ASSERT_TRUE(cluster.WaitForCluster(
      [](const v1::ClusterStatus& status) { return status.idle_workers() == 5; },
      absl::Seconds(30)))
      << cluster.Logs();
  JobClient bob(cluster.address(), absl::Seconds(15), JobClientAuth{nullptr, kBob});
  auto submitted_big = cluster.client().Submit(*LoadJobConfigFile(big.config));
  auto submitted_small = bob.Submit(*LoadJobConfigFile(small.config));
  auto submitted_third = cluster.client().Submit(*LoadJobConfigFile(third.config));
  ASSERT_TRUE(submitted_big.ok() && submitted_small.ok() && submitted_third.ok())
      << submitted_big.status() << submitted_small.status() << submitted_third.status();
  big.job_id = submitted_big->job_id();
  small.job_id = submitted_small->job_id();
  third.job_id = submitted_third->job_id();
  EXPECT_EQ(submitted_small->owner(), "bob");

  // Both run at once, on disjoint workers; the third waits and says why.
  v1::Job big_running, small_running;
  ASSERT_TRUE(WaitFor(
      [&] {
        auto b = cluster.client().Get(big.job_id);
        auto s = cluster.client().Get(small.job_id);
        if (!b.ok() || !s.ok()) return false;
        big_running = *b;
        small_running = *s;
        return b->progress().step() >= 12 && s->progress().step() >= 1;
      },
      absl::Seconds(120)))
      << cluster.Logs();
  ASSERT_EQ(small_running.state(), v1::JOB_STATE_RUNNING) << "the small job ended too soon";
  std::set<std::string> addresses(big_running.stage_addresses().begin(),
                                  big_running.stage_addresses().end());
  addresses.insert(small_running.stage_addresses().begin(), small_running.stage_addresses().end());
  EXPECT_EQ(addresses.size(), 5u);
  auto waiting = cluster.client().Get(third.job_id);
  ASSERT_TRUE(waiting.ok());
  EXPECT_EQ(waiting->state(), v1::JOB_STATE_QUEUED);
  EXPECT_EQ(waiting->message(), "needs 2 workers, 0 idle");
  auto status = cluster.client().ClusterStatus();
  auto jobs = cluster.client().List();
  ASSERT_TRUE(status.ok() && jobs.ok());
  const std::string tables = ClusterTable(*status) + "\n" + JobsTable(*jobs);
  std::printf("resbmctl cluster, then list, with two jobs running:\n%s", tables.c_str());
  std::ofstream(cluster.dir() + "/cluster.txt") << tables;

  // Only the owner (or an admin) cancels.
  auto refused = bob.Cancel(big.job_id);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kPermissionDenied) << refused.status();

  // Kill the big job's middle stage: it restores its checkpoint once a worker frees up.
  const int victim = cluster.WorkerAt(big_running.stage_addresses(1));
  ASSERT_GE(victim, 0) << big_running.stage_addresses(1);
  cluster.worker(victim).Signal(SIGKILL);

  for (TestJob* job : {&big, &small, &third}) {
    auto ended = cluster.client().WaitForEnd(job->job_id, absl::Seconds(400));
    ASSERT_TRUE(ended.ok()) << ended.status() << "\n" << cluster.Logs();
    ASSERT_EQ(ended->state(), v1::JOB_STATE_SUCCEEDED) << job->name << ": " << ended->message();
    SCOPED_TRACE(job->name);
    ExpectSameLosses(TrainLosses(ended->output_dir() + "/losses.csv"), job->expected);
    EXPECT_TRUE(absl::StrContains(ended->final_checkpoint_manifest(), job->job_id + "-final"));
  }
  auto big_ended = cluster.client().Get(big.job_id);
  auto small_ended = cluster.client().Get(small.job_id);
  auto third_ended = cluster.client().Get(third.job_id);
  ASSERT_TRUE(big_ended.ok() && small_ended.ok() && third_ended.ok());
  ASSERT_GE(big_ended->progress().recoveries(), 1u);
  EXPECT_EQ(small_ended->progress().recoveries(), 0u);
  // The small job's two workers freed first: the big job's recovery took one, so the third
  // job (which needs two) started only when the big one ended.
  EXPECT_GE(third_ended->started_unix_ms(), small_ended->finished_unix_ms());
  EXPECT_GE(third_ended->started_unix_ms(), big_ended->finished_unix_ms());
  EXPECT_LT(big_ended->progress().recent_recoveries(0).unix_ms(), third_ended->started_unix_ms());
  // Each job's checkpoints carry its id; none wrote another's.
  for (const auto& entry :
       std::filesystem::directory_iterator(cluster.data_dir() + "/checkpoints")) {
    const std::string name = entry.path().filename().string();
    EXPECT_TRUE(absl::StartsWith(name, big.job_id + "-") ||
                absl::StartsWith(name, small.job_id + "-") ||
                absl::StartsWith(name, third.job_id + "-"))
        << name;
  }
}

// Two jobs running at once when the coordinator is killed with SIGKILL: the next coordinator
// resumes both from their own checkpoints, on workers of their own again, and each ends with
// exactly its single-process losses.
TEST(ConcurrentJobsTest, ACoordinatorKilledUnderTwoJobsResumesBoth) {
  ProcessCluster cluster(::testing::TempDir() + "/resbm_concurrent_restart_" +
                         std::to_string(::getpid()));
  TestJob one = MakeJob(cluster.dir(), "one", 60, 8, /*stages=*/2);
  TestJob two = MakeJob(cluster.dir(), "two", 60, 9, /*stages=*/2);
  ASSERT_TRUE(cluster.StartCoordinator().ok()) << cluster.Logs();
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(cluster.StartWorker().ok());
  for (TestJob* job : {&one, &two}) {
    auto submitted = cluster.client().Submit(*LoadJobConfigFile(job->config));
    ASSERT_TRUE(submitted.ok()) << submitted.status();
    job->job_id = submitted->job_id();
  }
  // Both past a checkpoint (every 10 steps) and running.
  for (TestJob* job : {&one, &two}) {
    ASSERT_TRUE(cluster.WaitForJob(
        job->job_id,
        [](const v1::Job& j) {
          return j.progress().has_checkpoint_step() && j.progress().checkpoint_step() >= 10;
        },
        absl::Seconds(120)))
        << cluster.Logs();
  }
  auto one_running = cluster.client().Get(one.job_id);
  auto two_running = cluster.client().Get(two.job_id);
  ASSERT_TRUE(one_running.ok() && two_running.ok());
  ASSERT_EQ(one_running->state(), v1::JOB_STATE_RUNNING);
  ASSERT_EQ(two_running->state(), v1::JOB_STATE_RUNNING);
  cluster.coordinator().Signal(SIGKILL);
  ASSERT_TRUE(cluster.coordinator().Wait(absl::Seconds(30)).has_value());
  ASSERT_TRUE(cluster.StartCoordinator().ok()) << cluster.Logs();

  for (TestJob* job : {&one, &two}) {
    auto ended = cluster.client().WaitForEnd(job->job_id, absl::Seconds(300));
    ASSERT_TRUE(ended.ok()) << ended.status() << "\n" << cluster.Logs();
    ASSERT_EQ(ended->state(), v1::JOB_STATE_SUCCEEDED) << job->name << ": " << ended->message();
    SCOPED_TRACE(job->name);
    EXPECT_EQ(ended->progress().resumes(), 1u);
    ExpectSameLosses(TrainLosses(ended->output_dir() + "/losses.csv"), job->expected);
  }
}

}  // namespace
}  // namespace resbm::testing
