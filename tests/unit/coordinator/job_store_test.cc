// JobStore: jobs and step records survive closing and reopening the database; ids are
// sequential; replayed steps replace their records; truncation drops the later ones.
#include "services/coordinator/job_store.h"

#include <sqlite3.h>

#include "gtest/gtest.h"
#include "tests/testing/scoped_temp_dir.h"

namespace resbm {
namespace {

StepRecord Record(int64_t step, double loss, std::optional<double> val = std::nullopt) {
  StepRecord r;
  r.step = step;
  r.tokens = step * 256;
  r.stats = StepStats{loss, /*grad_norm=*/0.5, /*clip_factor=*/0.25};
  r.val_loss = val;
  r.seconds = step * 0.1;
  return r;
}

TEST(JobStoreTest, JobsAndStepsSurviveReopening) {
  ScopedTempDir dir;
  const std::string path = dir.File("jobs.db");
  {
    auto store = JobStore::Open(path);
    ASSERT_TRUE(store.ok()) << store.status();
    v1::Job job;
    job.set_state(v1::JOB_STATE_QUEUED);
    job.mutable_config()->set_name("first");
    auto first = (*store)->Create(job);
    ASSERT_TRUE(first.ok()) << first.status();
    EXPECT_EQ(first->job_id(), "job-1");
    job.mutable_config()->set_name("second");
    EXPECT_EQ((*store)->Create(job)->job_id(), "job-2");
    first->set_state(v1::JOB_STATE_RUNNING);
    first->mutable_progress()->set_checkpoint_step(10);
    ASSERT_TRUE((*store)->Put(*first).ok());
    for (int64_t s = 1; s <= 12; ++s) {
      ASSERT_TRUE((*store)->PutStep("job-1", Record(s, 5.0 - s * 0.1)).ok());
    }
    ASSERT_TRUE((*store)->PutStep("job-1", Record(10, 4.0, 3.5)).ok());  // Replayed.
  }
  auto store = JobStore::Open(path);
  ASSERT_TRUE(store.ok()) << store.status();
  auto jobs = (*store)->List();
  ASSERT_TRUE(jobs.ok());
  ASSERT_EQ(jobs->size(), 2u);
  EXPECT_EQ((*jobs)[0].config().name(), "first");
  EXPECT_EQ((*jobs)[0].state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ((*jobs)[0].progress().checkpoint_step(), 10u);
  EXPECT_EQ((*jobs)[1].job_id(), "job-2");
  auto steps = (*store)->Steps("job-1");
  ASSERT_TRUE(steps.ok());
  ASSERT_EQ(steps->size(), 12u);
  EXPECT_EQ((*steps)[9].stats.loss, 4.0);
  EXPECT_EQ((*steps)[9].val_loss, std::optional<double>(3.5));
  EXPECT_FALSE((*steps)[8].val_loss.has_value());
  EXPECT_EQ((*steps)[0].stats.loss, 4.9);  // Doubles round-trip exactly.
  EXPECT_EQ((*steps)[0].stats.grad_norm, 0.5);
  EXPECT_EQ((*steps)[0].stats.clip_factor, 0.25);

  ASSERT_TRUE((*store)->TruncateSteps("job-1", 10).ok());
  EXPECT_EQ((*store)->Steps("job-1")->size(), 10u);
  EXPECT_TRUE((*store)->Steps("job-2")->empty());
  // Ids continue after the highest stored one.
  EXPECT_EQ((*store)->Create(v1::Job())->job_id(), "job-3");
}

TEST(JobStoreTest, AStoreFromBeforeTheClipFactorKeepsItsSteps) {
  ScopedTempDir dir;
  const std::string path = dir.File("jobs.db");
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    const char* kOldSchema =
        "CREATE TABLE steps (job_id TEXT NOT NULL, step INTEGER NOT NULL, tokens INTEGER NOT "
        "NULL, train_loss REAL NOT NULL, val_loss REAL, grad_norm REAL NOT NULL, seconds REAL "
        "NOT NULL, PRIMARY KEY (job_id, step));"
        "INSERT INTO steps VALUES ('job-1', 1, 256, 4.5, NULL, 0.75, 0.1);";
    ASSERT_EQ(sqlite3_exec(db, kOldSchema, nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
  }
  auto store = JobStore::Open(path);
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_TRUE((*store)->PutStep("job-1", Record(2, 4.25)).ok());
  auto steps = (*store)->Steps("job-1");
  ASSERT_TRUE(steps.ok()) << steps.status();
  ASSERT_EQ(steps->size(), 2u);
  EXPECT_EQ((*steps)[0].stats.loss, 4.5);
  EXPECT_EQ((*steps)[0].stats.grad_norm, 0.75);
  EXPECT_EQ((*steps)[0].stats.clip_factor, 1.0);
  EXPECT_EQ((*steps)[1].stats.clip_factor, 0.25);
  // Reopening an upgraded store changes nothing.
  store->reset();
  EXPECT_EQ((*JobStore::Open(path))->Steps("job-1")->size(), 2u);
}

TEST(JobStoreTest, UnknownJobsAreNotFound) {
  ScopedTempDir dir;
  auto store = JobStore::Open(dir.File("jobs.db"));
  ASSERT_TRUE(store.ok());
  EXPECT_EQ((*store)->Get("job-7").status().code(), absl::StatusCode::kNotFound);
  v1::Job job;
  job.set_job_id("job-7");
  EXPECT_EQ((*store)->Put(job).code(), absl::StatusCode::kNotFound);
}

TEST(JobStoreTest, AnUnopenablePathIsAClearError) {
  auto store = JobStore::Open("/proc/no/such/dir/jobs.db");
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.status().message().find("/proc/no/such/dir/jobs.db"), std::string::npos)
      << store.status();
}

}  // namespace
}  // namespace resbm
