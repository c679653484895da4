#include "common/schedule/replica_cost.h"

#include "gtest/gtest.h"

namespace resbm {
namespace {

TEST(ReplicaCostTest, TheRingSendsTwoRMinusOneChunksOfOneRth) {
  EXPECT_DOUBLE_EQ(*RingAllReduceSeconds(1, 1e9, 1e6, 0.1), 0.0);
  // R = 4: 6 rounds of 0.25 MB at 1 MB/s plus 10 ms each.
  EXPECT_DOUBLE_EQ(*RingAllReduceSeconds(4, 1e6, 1e6, 0.01), 6 * (0.01 + 0.25));
  EXPECT_DOUBLE_EQ(*RingAllReduceSeconds(2, 1e6, 0, 0.05), 2 * 0.05);  // Unlimited rate.
  EXPECT_EQ(RingAllReduceSeconds(0, 1, 1, 0).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(RingAllReduceSeconds(2, -1, 1, 0).status().message().find("bytes: -1"),
            std::string::npos);
}

TEST(ReplicaCostTest, EachStageReducesOnceItsLastOpEnds) {
  // Two stages, one microbatch, 1 s forward and 2 s backward: stage 1 ends at 4 s (F0 1-2,
  // B0 2-4), stage 0 at 6 s (B0 4-6).
  auto schedule = MakePipelineSchedule(ScheduleKind::kGpipe, 2, 1);
  ASSERT_TRUE(schedule.ok());
  auto timeline = SimulateSchedule(*schedule, {1, 1}, {2, 2}, 0.0);
  ASSERT_TRUE(timeline.ok());
  EXPECT_EQ(timeline->end_seconds, (std::vector<double>{6, 4}));
  // Stage 1's 1.5 s all-reduce hides behind stage 0's backward; 3 s does not.
  EXPECT_DOUBLE_EQ(*StepWithAllReduceSeconds(*timeline, {0.5, 1.5}), 6.5);
  EXPECT_DOUBLE_EQ(*StepWithAllReduceSeconds(*timeline, {0.0, 3.0}), 7.0);
  EXPECT_EQ(StepWithAllReduceSeconds(*timeline, {1.0}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace resbm
