// The cancellation token: the first reason wins, a wake-up runs once on the cancelling
// thread, and a gone subscription is never run.
#include "common/runtime/cancellation.h"

#include "gtest/gtest.h"

namespace resbm {
namespace {

TEST(CancellationTest, TheFirstReasonWinsAndWakesEverySubscriberOnce) {
  Cancellation token;
  EXPECT_FALSE(token.cancelled());
  EXPECT_TRUE(token.reason().ok());
  int woken_a = 0, woken_b = 0;
  auto a = Cancellation::Subscribe(&token, [&] { ++woken_a; });
  auto b = Cancellation::Subscribe(&token, [&] { ++woken_b; });
  EXPECT_TRUE(token.Cancel(absl::UnavailableError("stage 2 lost")));
  EXPECT_FALSE(token.Cancel(absl::CancelledError("too late")));
  EXPECT_TRUE(token.cancelled());
  EXPECT_EQ(token.reason(), absl::UnavailableError("stage 2 lost"));
  EXPECT_EQ(woken_a, 1);
  EXPECT_EQ(woken_b, 1);
}

TEST(CancellationTest, AGoneOrLateSubscriptionIsNeverRun) {
  Cancellation token;
  int woken = 0;
  {
    auto gone = Cancellation::Subscribe(&token, [&] { ++woken; });
  }
  auto moved = Cancellation::Subscribe(&token, [&] { woken += 10; });
  Cancellation::Subscription kept = std::move(moved);
  token.Cancel(absl::CancelledError("stop"));
  EXPECT_EQ(woken, 10) << "only the live subscription, once, after its move";
  auto late = Cancellation::Subscribe(&token, [&] { woken += 100; });
  EXPECT_EQ(woken, 10) << "a tripped token runs nothing new: the waiter checks cancelled()";
  {
    auto none = Cancellation::Subscribe(nullptr, [&] { ++woken; });
  }  // No token: nothing.
  EXPECT_EQ(woken, 10);
}

TEST(CancellationTest, AnOkReasonStillCancels) {
  Cancellation token;
  token.Cancel(absl::OkStatus());
  EXPECT_TRUE(token.cancelled());
  EXPECT_EQ(token.reason().code(), absl::StatusCode::kCancelled);
}

}  // namespace
}  // namespace resbm
