#include "common/train/run_summary.h"

#include "gtest/gtest.h"

namespace resbm {
namespace {

TEST(RunSummaryTest, JsonKeepsBoundariesAndStageTimes) {
  RunSummary summary;
  summary.job_name = "net";
  summary.compression = "resbm";
  summary.ratio = 128;
  summary.num_stages = 2;
  summary.steps = 12;
  summary.tokens_per_second = 3712.5;
  summary.boundaries.push_back(
      BoundarySummary{0, BoundaryTraffic{4096, 4096, 2048, 2048, 300, 0}, 524288});
  summary.stages.push_back(StageSummary{0, 11, 0.031, 0.062, 0.25});
  summary.stages.push_back(StageSummary{1, 11, 0.035, 0.071, 0.125});

  auto back = RunSummary::FromJson(summary.ToJson());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->job_name, "net");
  EXPECT_EQ(back->ratio, 128);
  EXPECT_DOUBLE_EQ(back->tokens_per_second, 3712.5);
  ASSERT_EQ(back->boundaries.size(), 1u);
  EXPECT_EQ(back->boundaries[0].bf16_reference_bytes, 524288);
  ASSERT_EQ(back->stages.size(), 2u);
  EXPECT_EQ(back->stages[1].stage, 1);
  EXPECT_EQ(back->stages[1].steps, 11);
  EXPECT_DOUBLE_EQ(back->stages[1].forward_seconds, 0.035);
  EXPECT_DOUBLE_EQ(back->stages[1].backward_seconds, 0.071);
  EXPECT_DOUBLE_EQ(back->stages[0].wait_seconds_per_step, 0.25);
}

TEST(RunSummaryTest, NotAnObjectIsAClearError) {
  auto parsed = RunSummary::FromJson("[1, 2]");
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(parsed.status().message().find("not a JSON object"), std::string::npos);
}

}  // namespace
}  // namespace resbm
