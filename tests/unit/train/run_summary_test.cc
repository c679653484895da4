#include "common/train/run_summary.h"

#include <nlohmann/json.hpp>

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
  summary.stages.push_back(StageSummary{1, 11, 0.035, 0.071, 0.125, 858368});

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
  EXPECT_EQ(back->stages[1].replica_bytes_sent, 858368);
}

TEST(RunSummaryTest, TheApiFormKeepsEveryFieldAndTheDerivedRatios) {
  RunSummary summary;
  summary.job_name = "net";
  summary.outcome = "cancelled";
  summary.error = "cancelled by request";
  summary.steps = 7;
  summary.tokens = int64_t{1} << 40;  // Past 32 bits.
  summary.initial_val_loss = 2.5;
  summary.final_checkpoint_step = 0;  // Present, though zero.
  summary.boundaries.push_back(
      BoundarySummary{1, BoundaryTraffic{1000, 500, 20, 10, 64, 40}, 3000});
  summary.stages.push_back(StageSummary{1, 6, 0.5, 1.0, 0.25});

  const v1::RunSummary proto = summary.ToProto();
  EXPECT_EQ(proto.tokens(), uint64_t{1} << 40);
  EXPECT_TRUE(proto.has_final_checkpoint_step());
  EXPECT_DOUBLE_EQ(proto.effective_compression_vs_bf16(), 6000.0 / 1500.0);
  EXPECT_DOUBLE_EQ(proto.effective_compression_with_token_ids_vs_bf16(), 6000.0 / 1540.0);
  const RunSummary back = RunSummary::FromProto(proto);
  EXPECT_EQ(back.ToJson(), summary.ToJson());
  EXPECT_EQ(back.boundaries[0].traffic.token_id_bytes, 40);
  EXPECT_EQ(back.final_checkpoint_step, 0);

  // Absent where there is none, and read back as none.
  RunSummary bare;
  EXPECT_FALSE(bare.ToProto().has_final_checkpoint_step());
  EXPECT_FALSE(bare.ToProto().has_initial_val_loss());
  EXPECT_EQ(RunSummary::FromProto(bare.ToProto()).final_checkpoint_step, -1);
  EXPECT_FALSE(RunSummary::FromProto(bare.ToProto()).initial_val_loss.has_value());
}

TEST(RunSummaryTest, TheFileHasEveryProtoFieldWithNumbersAsNumbers) {
  RunSummary summary;
  summary.tokens = int64_t{1} << 40;
  summary.initial_val_loss = 2.5;
  summary.final_checkpoint_step = 3;
  summary.boundaries.push_back(BoundarySummary{0, BoundaryTraffic{1, 2, 3, 4, 5, 6}, 7});
  summary.stages.push_back(StageSummary{0, 1, 0.1, 0.2, 0.3});
  const nlohmann::json j = nlohmann::json::parse(summary.ToJson());
  const auto expect_fields = [](const nlohmann::json& object,
                                const google::protobuf::Descriptor* descriptor) {
    for (int i = 0; i < descriptor->field_count(); ++i) {
      const std::string name = descriptor->field(i)->name();
      ASSERT_TRUE(object.contains(name)) << descriptor->name() << "." << name;
      EXPECT_FALSE(object[name].is_null()) << descriptor->name() << "." << name;
    }
  };
  expect_fields(j, v1::RunSummary::descriptor());
  expect_fields(j["boundaries"][0], v1::BoundarySummary::descriptor());
  expect_fields(j["stages"][0], v1::StageSummary::descriptor());
  ASSERT_TRUE(j["tokens"].is_number_unsigned());
  EXPECT_EQ(j["tokens"].get<uint64_t>(), uint64_t{1} << 40);
  EXPECT_TRUE(j["boundaries"][0]["forward_bytes"].is_number());
}

TEST(RunSummaryTest, NotAnObjectIsAClearError) {
  auto parsed = RunSummary::FromJson("[1, 2]");
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(parsed.status().message().find("expected JSON of resbm.v1.RunSummary"),
            std::string::npos)
      << parsed.status();
}

}  // namespace
}  // namespace resbm
