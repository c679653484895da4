#include "services/coordinator/job_start_plan.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace resbm {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

PendingJob Job(const std::string& id, int64_t workers, int32_t priority = 0,
               const std::string& owner = "alice") {
  PendingJob job;
  job.job_id = id;
  job.workers = workers;
  job.priority = priority;
  job.owner = owner;
  return job;
}

JobPool Pool(int64_t idle, int64_t healthy = -1) {
  JobPool pool;
  pool.idle_workers = idle;
  pool.healthy_workers = healthy < 0 ? idle : healthy;
  return pool;
}

TEST(PlanJobStartsTest, JobsThatFitTogetherStartTogether) {
  const JobStartPlan plan =
      PlanJobStarts({Job("job-1", 3), Job("job-2", 2), Job("job-3", 2)}, Pool(5), JobStartLimits{});
  EXPECT_THAT(plan.start, ElementsAre("job-1", "job-2"));
  EXPECT_EQ(plan.waiting.at("job-3"), "needs 2 workers, 0 idle");
}

TEST(PlanJobStartsTest, HigherPriorityFirstThenSubmissionOrder) {
  const JobStartPlan plan = PlanJobStarts(
      {Job("job-1", 2), Job("job-2", 2, /*priority=*/5), Job("job-3", 2, 5), Job("job-4", 2)},
      Pool(4), JobStartLimits{});
  EXPECT_THAT(plan.start, ElementsAre("job-2", "job-3"));
  EXPECT_EQ(plan.waiting.size(), 2u);
}

TEST(PlanJobStartsTest, AResumedJobGoesFirstWhateverItsPriority) {
  PendingJob resumed = Job("job-1", 2, /*priority=*/-3);
  resumed.resumed = true;
  const JobStartPlan plan = PlanJobStarts({Job("job-2", 2, 9), resumed}, Pool(2), JobStartLimits{});
  EXPECT_THAT(plan.start, ElementsAre("job-1"));
}

TEST(PlanJobStartsTest, ASmallJobBackfillsAndCountsAgainstTheOneItOvertakes) {
  // 3 idle of 5 healthy: job-1 (4) waits, job-2 (2) starts ahead of it.
  const JobStartPlan plan =
      PlanJobStarts({Job("job-1", 4), Job("job-2", 2)}, Pool(3, 5), JobStartLimits{});
  EXPECT_THAT(plan.start, ElementsAre("job-2"));
  EXPECT_EQ(plan.waiting.at("job-1"), "needs 4 workers, 3 idle");
  EXPECT_THAT(plan.overtakes.at("job-2"), ElementsAre("job-1"));
}

TEST(PlanJobStartsTest, AJobOvertakenTooOftenHoldsItsPlace) {
  PendingJob big = Job("job-1", 4);
  big.overtaken = 2;
  JobStartLimits limits;
  limits.max_overtakes = 2;
  const JobStartPlan plan = PlanJobStarts({big, Job("job-2", 1)}, Pool(3, 5), limits);
  EXPECT_THAT(plan.start, IsEmpty());
  EXPECT_THAT(plan.waiting.at("job-2"), HasSubstr("behind job-1"));
  EXPECT_THAT(plan.waiting.at("job-2"), HasSubstr("--max-overtakes 2"));
}

TEST(PlanJobStartsTest, NoBackfillMeansStrictOrder) {
  JobStartLimits limits;
  limits.max_overtakes = 0;
  const JobStartPlan plan = PlanJobStarts({Job("job-1", 4), Job("job-2", 1)}, Pool(3, 5), limits);
  EXPECT_THAT(plan.start, IsEmpty());
}

// A job larger than every healthy worker together could wait forever: it blocks nobody.
TEST(PlanJobStartsTest, AJobLargerThanThePoolHoldsNoPlace) {
  PendingJob huge = Job("job-1", 8);
  huge.overtaken = 100;
  const JobStartPlan plan = PlanJobStarts({huge, Job("job-2", 2)}, Pool(3, 5), JobStartLimits{});
  EXPECT_THAT(plan.start, ElementsAre("job-2"));
  EXPECT_EQ(plan.waiting.at("job-1"), "needs 8 workers, 3 idle (5 healthy)");
  EXPECT_EQ(plan.overtakes.count("job-2"), 0u);
}

TEST(PlanJobStartsTest, WorkersKeptForARunningJobStartNothing) {
  JobPool pool = Pool(3);
  pool.kept_workers = 2;
  const JobStartPlan plan = PlanJobStarts({Job("job-1", 2), Job("job-2", 1)}, pool, {});
  EXPECT_THAT(plan.start, ElementsAre("job-2"));
  EXPECT_EQ(plan.waiting.at("job-1"),
            "needs 2 workers, 3 idle, 2 kept for a running job's pipelines out");
}

TEST(PlanJobStartsTest, RunningJobLimitsHoldTheRest) {
  JobStartLimits limits;
  limits.max_running_jobs = 2;
  JobPool pool = Pool(10);
  pool.running_jobs = 1;
  const JobStartPlan plan = PlanJobStarts({Job("job-2", 1), Job("job-3", 1)}, pool, limits);
  EXPECT_THAT(plan.start, ElementsAre("job-2"));
  EXPECT_THAT(plan.waiting.at("job-3"), HasSubstr("--max-running-jobs 2"));
}

TEST(PlanJobStartsTest, APerUserLimitHoldsOnlyThatUsersJobs) {
  JobStartLimits limits;
  limits.max_running_jobs_per_user = 1;
  JobPool pool = Pool(10);
  pool.running_jobs = 1;
  pool.running_by_owner["alice"] = 1;
  const JobStartPlan plan = PlanJobStarts(
      {Job("job-2", 1, 0, "alice"), Job("job-3", 1, 0, "bob"), Job("job-4", 1, 0, "bob")}, pool,
      limits);
  EXPECT_THAT(plan.start, ElementsAre("job-3"));
  EXPECT_THAT(plan.waiting.at("job-2"), HasSubstr("user 'alice' runs 1 jobs"));
  EXPECT_THAT(plan.waiting.at("job-4"), HasSubstr("user 'bob' runs 1 jobs"));
  // A job held by its owner's limit is not overtaken: it waits for its own job, not workers.
  EXPECT_EQ(plan.overtakes.count("job-3"), 0u);
}

// Overtakes within one plan: the second small start counts again, and once the limit is
// reached mid-plan the rest waits.
TEST(PlanJobStartsTest, OvertakesAddUpWithinAPlan) {
  JobStartLimits limits;
  limits.max_overtakes = 2;
  const JobStartPlan plan = PlanJobStarts(
      {Job("job-1", 4), Job("job-2", 1), Job("job-3", 1), Job("job-4", 1)}, Pool(3, 5), limits);
  EXPECT_THAT(plan.start, ElementsAre("job-2", "job-3"));
  EXPECT_THAT(plan.overtakes.at("job-3"), ElementsAre("job-1"));
  EXPECT_THAT(plan.waiting.at("job-4"), HasSubstr("overtaken 2 times"));
}

// A job that needs no worker (cancelled, then the coordinator restarted) ends at once, even
// behind a job that holds its place.
TEST(PlanJobStartsTest, AJobWithoutWorkersIsNeverHeldBack) {
  PendingJob big = Job("job-1", 4);
  big.overtaken = 9;
  const JobStartPlan plan = PlanJobStarts({big, Job("job-2", 0)}, Pool(3, 5), JobStartLimits{});
  EXPECT_THAT(plan.start, ElementsAre("job-2"));
  EXPECT_EQ(plan.overtakes.count("job-2"), 0u);
}

TEST(PlanJobStartsTest, NegativeLimitsAreRefusedNamingTheFlag) {
  EXPECT_TRUE(ValidateJobStartLimits(JobStartLimits{}).ok());
  JobStartLimits limits;
  limits.max_overtakes = -1;
  const absl::Status refused = ValidateJobStartLimits(limits);
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(refused.message(), "--max-overtakes: -1; expected 0 or more");
}

}  // namespace
}  // namespace resbm
