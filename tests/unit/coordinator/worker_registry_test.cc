#include "services/coordinator/worker_registry.h"

#include <atomic>
#include <thread>

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
  auto workers = registry_.Acquire(3, absl::Now() + absl::Milliseconds(100));
  ASSERT_FALSE(workers.ok());
  EXPECT_EQ(workers.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_NE(workers.status().message().find("1 healthy; the job needs 3"), std::string::npos)
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
  auto workers = registry_.Acquire(2, absl::Now() + absl::Seconds(60), {}, [&](int64_t healthy) {
    EXPECT_EQ(healthy, 1);
    waiting.Notify();
  });
  late.join();
  ASSERT_TRUE(workers.ok()) << workers.status();
  EXPECT_EQ(workers->size(), 2u);
}

TEST_F(WorkerRegistryTest, AcquireStopsWhenCancelled) {
  std::atomic<bool> stop{true};
  auto workers = registry_.Acquire(1, absl::Now() + absl::Seconds(60), [&] { return stop.load(); });
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
      1, absl::Now() + absl::Seconds(60), [&] { return stop.load(); },
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

}  // namespace
}  // namespace resbm
