#include "services/coordinator/worker_registry.h"

#include <atomic>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"

namespace resbm {
namespace {

class WorkerRegistryTest : public ::testing::Test {
 protected:
  absl::Time now_ = absl::FromUnixSeconds(1000);
  WorkerRegistry registry_{absl::Seconds(5), [this] { return now_; }};
};

TEST_F(WorkerRegistryTest, WorkersStayHealthyWhileTheyHeartbeat) {
  const std::string a = registry_.Register("10.0.0.1:7100", "cpu");
  const std::string b = registry_.Register("10.0.0.2:7100", "cuda:0");
  EXPECT_NE(a, b);
  ASSERT_EQ(registry_.Healthy().size(), 2u);
  EXPECT_EQ(registry_.Healthy()[0].address, "10.0.0.1:7100");  // Registration order.
  now_ += absl::Seconds(4);
  EXPECT_TRUE(registry_.Heartbeat(a).ok());
  now_ += absl::Seconds(2);  // b silent for 6 s, a for 2 s.
  auto healthy = registry_.Healthy();
  ASSERT_EQ(healthy.size(), 1u);
  EXPECT_EQ(healthy[0].id, a);
}

TEST_F(WorkerRegistryTest, ReRegisteringKeepsTheIdAndRevivesTheWorker) {
  const std::string a = registry_.Register("10.0.0.1:7100", "cpu");
  now_ += absl::Seconds(10);
  EXPECT_TRUE(registry_.Healthy().empty());
  EXPECT_EQ(registry_.Register("10.0.0.1:7100", "cpu"), a);
  EXPECT_EQ(registry_.Healthy().size(), 1u);
}

TEST_F(WorkerRegistryTest, TheExchangeAddressDefaultsToTheAddress) {
  registry_.Register("10.0.0.1:7100", "cpu");
  registry_.Register("10.0.0.2:7100", "cpu", "relay.example:7200");
  auto workers = registry_.Healthy();
  ASSERT_EQ(workers.size(), 2u);
  EXPECT_EQ(workers[0].exchange_address, "10.0.0.1:7100");
  EXPECT_EQ(workers[1].exchange_address, "relay.example:7200");
  // Re-registering updates it.
  registry_.Register("10.0.0.2:7100", "cpu");
  EXPECT_EQ(registry_.Healthy()[1].exchange_address, "10.0.0.2:7100");
}

TEST_F(WorkerRegistryTest, UnknownHeartbeatsAskForRegistration) {
  auto status = registry_.Heartbeat("worker-99");
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(status.message().find("worker-99"), std::string::npos);
}

// After a coordinator restart ids start again: a worker heartbeating with an id that now
// belongs to another address must register again.
TEST_F(WorkerRegistryTest, AnIdOfAnotherAddressAsksForRegistration) {
  const std::string id = registry_.Register("10.0.0.2:7100", "cpu");
  EXPECT_TRUE(registry_.Heartbeat(id, "10.0.0.2:7100").ok());
  auto status = registry_.Heartbeat(id, "10.0.0.1:7100");
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound) << status;
}

TEST_F(WorkerRegistryTest, WaitingForMoreWorkersThanThereAreTimesOutWithACount) {
  registry_.Register("10.0.0.1:7100", "cpu");
  auto workers = registry_.Acquire("job-1", 3, absl::Now() + absl::Milliseconds(100));
  ASSERT_FALSE(workers.ok());
  EXPECT_EQ(workers.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_NE(workers.status().message().find("1 healthy and free for this job; it needs 3"),
            std::string::npos)
      << workers.status();
}

TEST_F(WorkerRegistryTest, AcquireIsWokenByARegistration) {
  registry_.Register("10.0.0.1:7100", "cpu");
  absl::Notification waiting;
  std::thread late([&] {
    waiting.WaitForNotification();
    registry_.Register("10.0.0.2:7100", "cpu");
  });
  // Generous deadline: the registration, not the clock, ends the wait.
  auto workers =
      registry_.Acquire("job-1", 2, absl::Now() + absl::Seconds(60), {}, [&](int64_t healthy) {
        EXPECT_EQ(healthy, 1);
        waiting.Notify();
      });
  late.join();
  ASSERT_TRUE(workers.ok()) << workers.status();
  EXPECT_EQ(workers->size(), 2u);
}

TEST_F(WorkerRegistryTest, AcquireStopsWhenCancelled) {
  std::atomic<bool> stop{true};
  auto workers =
      registry_.Acquire("job-1", 1, absl::Now() + absl::Seconds(60), [&] { return stop.load(); });
  EXPECT_EQ(workers.status().code(), absl::StatusCode::kCancelled) << workers.status();
}

TEST_F(WorkerRegistryTest, WakeWaitersEndsACancelledWait) {
  std::atomic<bool> stop{false};
  absl::Notification waiting;
  std::thread canceller([&] {
    waiting.WaitForNotification();
    stop = true;
    registry_.WakeWaiters();
  });
  // Generous deadline: the wake, not the clock, ends the wait.
  auto workers = registry_.Acquire(
      "job-1", 1, absl::Now() + absl::Seconds(60), [&] { return stop.load(); },
      [&](int64_t) { waiting.Notify(); });
  canceller.join();
  EXPECT_EQ(workers.status().code(), absl::StatusCode::kCancelled) << workers.status();
}

TEST_F(WorkerRegistryTest, ASuspectIsUnhealthyUntilItIsHeardFromAgain) {
  const std::string id = registry_.Register("10.0.0.1:7100", "cpu");
  registry_.Suspect("10.0.0.1:7100");
  EXPECT_TRUE(registry_.Healthy().empty());
  EXPECT_FALSE(registry_.IsHealthy(registry_.All()[0]));
  ASSERT_TRUE(registry_.Heartbeat(id, "10.0.0.1:7100").ok());
  EXPECT_EQ(registry_.Healthy().size(), 1u);
}

// Jobs never share a worker: what one holds, another neither reserves nor acquires.
TEST_F(WorkerRegistryTest, JobsLeaseDisjointWorkers) {
  for (int i = 1; i <= 5; ++i) registry_.Register(absl::StrCat("10.0.0.", i, ":7100"), "cpu");
  ASSERT_TRUE(registry_.Reserve("job-1", 3));
  EXPECT_EQ(registry_.IdleHealthy(), 2);
  EXPECT_FALSE(registry_.Reserve("job-2", 3));  // Nothing leased by a refusal.
  EXPECT_EQ(registry_.IdleHealthy(), 2);
  ASSERT_TRUE(registry_.Reserve("job-2", 2));
  auto one = registry_.Acquire("job-1", 3, absl::Now());
  auto two = registry_.Acquire("job-2", 2, absl::Now());
  ASSERT_TRUE(one.ok() && two.ok()) << one.status() << two.status();
  std::set<std::string> addresses;
  for (const auto& w : *one) addresses.insert(w.address);
  for (const auto& w : *two) addresses.insert(w.address);
  EXPECT_EQ(addresses.size(), 5u);
  EXPECT_EQ((*one)[0].address, "10.0.0.1:7100");  // Registration order.
  EXPECT_EQ((*two)[0].address, "10.0.0.4:7100");
  auto three = registry_.Acquire("job-3", 1, absl::Now());
  EXPECT_EQ(three.status().code(), absl::StatusCode::kDeadlineExceeded) << three.status();
  registry_.ReleaseJob("job-2");
  EXPECT_EQ(registry_.IdleHealthy(), 2);
  EXPECT_TRUE(registry_.Acquire("job-3", 1, absl::Now()).ok());
}

// A rebuild keeps the live workers the job holds and replaces a lost one with an idle one;
// the lost one stays the job's (heard from again, it is no other job's to take).
TEST_F(WorkerRegistryTest, ARebuildKeepsItsLiveWorkersAndTakesAnIdleOne) {
  for (int i = 1; i <= 4; ++i) registry_.Register(absl::StrCat("10.0.0.", i, ":7100"), "cpu");
  ASSERT_TRUE(registry_.Reserve("job-1", 1));  // 10.0.0.1.
  ASSERT_TRUE(registry_.Reserve("job-2", 2));  // 10.0.0.2 and .3.
  registry_.Suspect("10.0.0.2:7100");
  auto rebuilt = registry_.Acquire("job-2", 2, absl::Now());
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.status();
  ASSERT_EQ(rebuilt->size(), 2u);
  EXPECT_EQ((*rebuilt)[0].address, "10.0.0.3:7100");
  EXPECT_EQ((*rebuilt)[1].address, "10.0.0.4:7100");
  const std::string lost = registry_.All()[1].id;
  ASSERT_TRUE(registry_.Heartbeat(lost, "10.0.0.2:7100").ok());
  EXPECT_EQ(registry_.All()[1].job_id, "job-2");
  EXPECT_EQ(registry_.IdleHealthy(), 0);
  EXPECT_FALSE(registry_.Reserve("job-3", 1));
  registry_.ReleaseJob("job-2");
  EXPECT_EQ(registry_.IdleHealthy(), 3);
}

// While a running job waits for a replacement, the scheduler gives no idle worker to a job
// that has not started: the recovery goes first.
TEST_F(WorkerRegistryTest, AWaitingRecoveryGoesBeforeAReservation) {
  registry_.Register("10.0.0.1:7100", "cpu");
  ASSERT_TRUE(registry_.Reserve("job-1", 1));
  registry_.Suspect("10.0.0.1:7100");
  int64_t available_calls = 0;
  registry_.set_on_available([&] { ++available_calls; });
  absl::Notification waiting;
  std::thread late([&] {
    waiting.WaitForNotification();
    EXPECT_EQ(registry_.waiting_jobs(), 1);
    registry_.Register("10.0.0.2:7100", "cpu");
  });
  auto recovered = registry_.Acquire("job-1", 1, absl::Now() + absl::Seconds(60), {}, [&](int64_t) {
    // The Acquire counts as waiting: no reservation.
    EXPECT_FALSE(registry_.Reserve("job-2", 0));
    waiting.Notify();
  });
  late.join();
  ASSERT_TRUE(recovered.ok()) << recovered.status();
  EXPECT_EQ((*recovered)[0].address, "10.0.0.2:7100");
  EXPECT_EQ(registry_.waiting_jobs(), 0);
  EXPECT_GE(available_calls, 2);  // The registration, and the wait's end.
}

// A job going on with a pipeline out of it (it would hold 3, holds 2 healthy) keeps the next
// idle worker for itself: the scheduler starts no queued job on it, the job's own look takes
// it, and once the job wants nothing more the other idle workers are free again.
TEST_F(WorkerRegistryTest, IdleWorkersAreKeptForAJobWithPipelinesOut) {
  for (int i = 1; i <= 3; ++i) registry_.Register(absl::StrCat("10.0.0.", i, ":7100"), "cpu");
  ASSERT_TRUE(registry_.Reserve("job-1", 3));
  registry_.Suspect("10.0.0.3:7100");  // Lost: its pipeline goes out.
  registry_.Want("job-1", 3);
  int64_t available_calls = 0;
  registry_.set_on_available([&] { ++available_calls; });
  registry_.Register("10.0.0.4:7100", "cpu");
  registry_.Register("10.0.0.5:7100", "cpu");
  EXPECT_EQ(registry_.IdleHealthy(), 2);
  EXPECT_EQ(registry_.KeptIdle(), 1);
  EXPECT_FALSE(registry_.Reserve("job-2", 2)) << "one of the two idle is job-1's";
  ASSERT_TRUE(registry_.Reserve("job-2", 1));
  EXPECT_EQ(registry_.All()[3].job_id, "job-2");
  EXPECT_EQ(registry_.KeptIdle(), 1) << "job-1 still lacks one; the last idle is kept";
  EXPECT_FALSE(registry_.Reserve("job-3", 1));
  auto whole = registry_.Acquire("job-1", 3, absl::Now());
  ASSERT_TRUE(whole.ok()) << whole.status();
  EXPECT_EQ((*whole)[2].address, "10.0.0.5:7100");
  registry_.Want("job-1", 0);
  EXPECT_EQ(registry_.KeptIdle(), 0);
  registry_.Register("10.0.0.6:7100", "cpu");
  EXPECT_TRUE(registry_.Reserve("job-3", 1));
  EXPECT_GE(available_calls, 3);  // The registrations and the end of the want.
}

TEST_F(WorkerRegistryTest, ReleasingAJobEndsItsWant) {
  registry_.Register("10.0.0.1:7100", "cpu");
  registry_.Want("job-1", 2);
  EXPECT_EQ(registry_.KeptIdle(), 1);
  registry_.ReleaseJob("job-1");
  EXPECT_EQ(registry_.KeptIdle(), 0);
  EXPECT_TRUE(registry_.Reserve("job-2", 1));
}

}  // namespace
}  // namespace resbm
