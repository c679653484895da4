#include "services/coordinator/submission_limiter.h"

#include "gtest/gtest.h"

namespace resbm {
namespace {

TEST(SubmissionLimiterTest, AtMostNPerUserInAnySlidingMinute) {
  absl::Time now = absl::FromUnixSeconds(1000);
  SubmissionLimiter limiter(3, [&] { return now; });
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(limiter.Admit("alice").ok());
    now += absl::Seconds(10);
  }
  absl::Status refused = limiter.Admit("alice");
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(refused.message(),
            "submissions: 3 in the last minute by 'alice'; expected at most 3 "
            "(resbm-coordinator --max-submits-per-minute); retry in 30s");
  EXPECT_TRUE(limiter.Admit("bob").ok());  // Per user.
  now += absl::Seconds(30);                // The first submission leaves the window.
  EXPECT_TRUE(limiter.Admit("alice").ok());
  EXPECT_FALSE(limiter.Admit("alice").ok());
}

TEST(SubmissionLimiterTest, ZeroMeansNoLimit) {
  SubmissionLimiter limiter(0);
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(limiter.Admit("").ok());
}

}  // namespace
}  // namespace resbm
