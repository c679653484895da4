#include "common/schedule/pipeline_schedule.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace resbm {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr double kTolerance = 1e-9;

// "F0 F1 B1 B0" for one stage's op list; readable in failure messages.
std::string OpsString(const std::vector<PipelineOp>& ops) {
  return absl::StrJoin(ops, " ", [](std::string* out, const PipelineOp& op) {
    absl::StrAppend(out, op.kind == OpKind::kForward ? "F" : "B", op.microbatch);
  });
}

// Parses "F0 B0 F1" into ops. Test inputs are literals, so a bad token fails the test.
std::vector<PipelineOp> ParseOps(const std::string& text) {
  std::vector<PipelineOp> ops;
  for (absl::string_view token : absl::StrSplit(text, ' ', absl::SkipEmpty())) {
    int64_t microbatch = 0;
    EXPECT_TRUE(absl::SimpleAtoi(token.substr(1), &microbatch)) << token;
    ops.push_back(PipelineOp{token[0] == 'F' ? OpKind::kForward : OpKind::kBackward, microbatch});
  }
  return ops;
}

// A hand-made schedule with one op string per stage.
PipelineSchedule HandMade(int64_t num_microbatches, const std::vector<std::string>& stages) {
  PipelineSchedule s;
  s.kind = ScheduleKind::k1F1B;
  s.num_stages = static_cast<int64_t>(stages.size());
  s.num_microbatches = num_microbatches;
  for (const std::string& stage : stages) s.stage_ops.push_back(ParseOps(stage));
  return s;
}

struct ExpectedSchedule {
  ScheduleKind kind;
  int64_t num_stages;
  int64_t num_microbatches;
  std::vector<std::string> stage_ops;  // [stage]: ops as "F0 F1 B0 B1".
};

TEST(PipelineScheduleTest, SmallCasesMatchExpectedOpLists) {
  const std::vector<ExpectedSchedule> cases = {
      {ScheduleKind::kGpipe, 2, 3, {"F0 F1 F2 B2 B1 B0", "F0 F1 F2 B2 B1 B0"}},
      {ScheduleKind::kGpipe, 1, 3, {"F0 F1 F2 B2 B1 B0"}},
      {ScheduleKind::k1F1B, 2, 3, {"F0 F1 B0 F2 B1 B2", "F0 B0 F1 B1 F2 B2"}},
      {ScheduleKind::k1F1B,
       4,
       4,
       {"F0 F1 F2 F3 B0 B1 B2 B3", "F0 F1 F2 B0 F3 B1 B2 B3", "F0 F1 B0 F2 B1 F3 B2 B3",
        "F0 B0 F1 B1 F2 B2 F3 B3"}},
      // m < p: the first stages run all forwards as warmup and have no steady state.
      {ScheduleKind::k1F1B, 4, 2, {"F0 F1 B0 B1", "F0 F1 B0 B1", "F0 F1 B0 B1", "F0 B0 F1 B1"}},
      {ScheduleKind::k1F1B, 1, 3, {"F0 B0 F1 B1 F2 B2"}},
  };
  for (const ExpectedSchedule& c : cases) {
    SCOPED_TRACE(
        absl::StrCat(ScheduleKindName(c.kind), " p=", c.num_stages, " m=", c.num_microbatches));
    absl::StatusOr<PipelineSchedule> s =
        MakePipelineSchedule(c.kind, c.num_stages, c.num_microbatches);
    ASSERT_TRUE(s.ok()) << s.status();
    EXPECT_EQ(s->kind, c.kind);
    EXPECT_EQ(s->num_stages, c.num_stages);
    EXPECT_EQ(s->num_microbatches, c.num_microbatches);
    ASSERT_EQ(s->stage_ops.size(), c.stage_ops.size());
    for (size_t stage = 0; stage < c.stage_ops.size(); ++stage) {
      EXPECT_EQ(OpsString(s->stage_ops[stage]), c.stage_ops[stage]) << "stage " << stage;
    }
  }
}

TEST(PipelineScheduleTest, FormatScheduleWritesOneLinePerStage) {
  absl::StatusOr<PipelineSchedule> s = MakePipelineSchedule(ScheduleKind::k1F1B, 2, 2);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(FormatSchedule(*s), "stage 0: F0 F1 B0 B1\nstage 1: F0 B0 F1 B1\n");
}

// `check` on every schedule of both kinds with 1..6 stages and 1..10 microbatches.
void ForEverySchedule(
    const std::function<void(int64_t p, int64_t m, const PipelineSchedule& s)>& check) {
  for (ScheduleKind kind : {ScheduleKind::kGpipe, ScheduleKind::k1F1B}) {
    for (int64_t p = 1; p <= 6; ++p) {
      for (int64_t m = 1; m <= 10; ++m) {
        SCOPED_TRACE(absl::StrCat(ScheduleKindName(kind), " p=", p, " m=", m));
        absl::StatusOr<PipelineSchedule> s = MakePipelineSchedule(kind, p, m);
        ASSERT_TRUE(s.ok()) << s.status();
        check(p, m, *s);
      }
    }
  }
}

TEST(PipelineScheduleTest, EverySizeRunsEachOpOnceForwardFirstWithoutDeadlock) {
  ForEverySchedule([](int64_t p, int64_t m, const PipelineSchedule& s) {
    ASSERT_EQ(static_cast<int64_t>(s.stage_ops.size()), p);
    // Checked here independently of the validator: position of F(mb) and B(mb).
    for (int64_t stage = 0; stage < p; ++stage) {
      const std::vector<PipelineOp>& ops = s.stage_ops[stage];
      ASSERT_EQ(static_cast<int64_t>(ops.size()), 2 * m) << "stage " << stage;
      for (int64_t mb = 0; mb < m; ++mb) {
        const auto f = std::find(ops.begin(), ops.end(), PipelineOp{OpKind::kForward, mb});
        const auto b = std::find(ops.begin(), ops.end(), PipelineOp{OpKind::kBackward, mb});
        ASSERT_NE(f, ops.end()) << "stage " << stage << " lacks F" << mb;
        ASSERT_NE(b, ops.end()) << "stage " << stage << " lacks B" << mb;
        EXPECT_LT(f, b) << "stage " << stage << " runs B" << mb << " before F" << mb;
      }
    }
    EXPECT_TRUE(ValidatePipelineSchedule(s).ok()) << ValidatePipelineSchedule(s);
    const std::vector<double> ones(p, 1.0);
    EXPECT_TRUE(SimulateSchedule(s, ones, ones, 0.25).ok());
  });
}

TEST(PipelineScheduleTest, OneFOneBKeepsAtMostPInFlight) {
  for (int64_t p = 1; p <= 6; ++p) {
    for (int64_t m = 1; m <= 10; ++m) {
      absl::StatusOr<PipelineSchedule> s = MakePipelineSchedule(ScheduleKind::k1F1B, p, m);
      ASSERT_TRUE(s.ok()) << s.status();
      for (int64_t stage = 0; stage < p; ++stage) {
        SCOPED_TRACE(absl::StrCat("p=", p, " m=", m, " stage=", stage));
        EXPECT_EQ(MaxInFlight(*s, stage), std::min(p - stage, m));
        EXPECT_LE(MaxInFlight(*s, stage), p);
      }
    }
  }
}

TEST(PipelineScheduleTest, GpipeKeepsEveryMicrobatchInFlight) {
  for (int64_t p = 1; p <= 6; ++p) {
    for (int64_t m = 1; m <= 10; ++m) {
      absl::StatusOr<PipelineSchedule> s = MakePipelineSchedule(ScheduleKind::kGpipe, p, m);
      ASSERT_TRUE(s.ok()) << s.status();
      for (int64_t stage = 0; stage < p; ++stage) {
        EXPECT_EQ(MaxInFlight(*s, stage), m) << "p=" << p << " m=" << m << " stage=" << stage;
      }
    }
  }
}

TEST(PipelineScheduleTest, MaxInFlightOfMissingStageIsZero) {
  absl::StatusOr<PipelineSchedule> s = MakePipelineSchedule(ScheduleKind::kGpipe, 2, 3);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(MaxInFlight(*s, -1), 0);
  EXPECT_EQ(MaxInFlight(*s, 2), 0);
}

// Forward 1 s, backward 2 s, no link latency: both schedules take (m + p - 1) * 3 s and every
// stage idles for the textbook bubble fraction of it.
TEST(PipelineScheduleTest, UniformStagesMatchTextbookMakespanAndBubble) {
  ForEverySchedule([](int64_t p, int64_t m, const PipelineSchedule& s) {
    absl::StatusOr<ScheduleTimeline> t =
        SimulateSchedule(s, std::vector<double>(p, 1.0), std::vector<double>(p, 2.0), 0.0);
    ASSERT_TRUE(t.ok()) << t.status();
    EXPECT_NEAR(t->makespan_seconds, static_cast<double>((m + p - 1) * 3), kTolerance);
    ASSERT_EQ(static_cast<int64_t>(t->busy_seconds.size()), p);
    ASSERT_EQ(static_cast<int64_t>(t->idle_seconds.size()), p);
    for (int64_t stage = 0; stage < p; ++stage) {
      const double busy = t->busy_seconds[stage];
      const double idle = t->idle_seconds[stage];
      EXPECT_NEAR(busy, static_cast<double>(3 * m), kTolerance) << "stage " << stage;
      EXPECT_NEAR(idle / (busy + idle), TheoreticalBubbleFraction(p, m), kTolerance)
          << "stage " << stage;
    }
  });
}

// GPipe p=2 m=3, forward {1, 3} s, backward 1 s. Stage 0 forwards end at 1, 2, 3; stage 1's
// at 4, 7, 10; stage 1 backwards B2 B1 B0 end at 11, 12, 13; stage 0's at 12, 13, 14.
TEST(PipelineScheduleTest, UnevenStagesMatchHandComputedTimeline) {
  absl::StatusOr<PipelineSchedule> s = MakePipelineSchedule(ScheduleKind::kGpipe, 2, 3);
  ASSERT_TRUE(s.ok()) << s.status();
  absl::StatusOr<ScheduleTimeline> t = SimulateSchedule(*s, {1.0, 3.0}, {1.0, 1.0}, 0.0);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_NEAR(t->makespan_seconds, 14.0, kTolerance);
  EXPECT_NEAR(t->busy_seconds[0], 6.0, kTolerance);
  EXPECT_NEAR(t->busy_seconds[1], 12.0, kTolerance);
  EXPECT_NEAR(t->idle_seconds[0], 8.0, kTolerance);
  EXPECT_NEAR(t->idle_seconds[1], 2.0, kTolerance);
}

// The critical path crosses each of the p - 1 boundaries twice (forward, then backward).
TEST(PipelineScheduleTest, LinkLatencyAddsTwoHopsPerStageBoundary) {
  constexpr double kLink = 0.5;
  for (int64_t p = 1; p <= 6; ++p) {
    for (int64_t m = 1; m <= 10; ++m) {
      absl::StatusOr<PipelineSchedule> s = MakePipelineSchedule(ScheduleKind::kGpipe, p, m);
      ASSERT_TRUE(s.ok()) << s.status();
      absl::StatusOr<ScheduleTimeline> t =
          SimulateSchedule(*s, std::vector<double>(p, 1.0), std::vector<double>(p, 2.0), kLink);
      ASSERT_TRUE(t.ok()) << t.status();
      EXPECT_NEAR(t->makespan_seconds, (m + p - 1) * 3.0 + 2.0 * (p - 1) * kLink, kTolerance)
          << "p=" << p << " m=" << m;
    }
  }
}

TEST(PipelineScheduleTest, AnUnlimitedLinkModelIsJustLatency) {
  for (ScheduleKind kind : {ScheduleKind::kGpipe, ScheduleKind::k1F1B}) {
    for (int64_t p = 1; p <= 5; ++p) {
      for (int64_t m = 1; m <= 8; ++m) {
        auto s = MakePipelineSchedule(kind, p, m);
        ASSERT_TRUE(s.ok());
        const std::vector<double> f(p, 1.0), b(p, 2.0);
        LinkModel link;
        link.latency_seconds = 0.25;
        link.forward_bytes = 1e6;  // Ignored without a rate.
        auto with_model = SimulateSchedule(*s, f, b, link);
        auto with_latency = SimulateSchedule(*s, f, b, 0.25);
        ASSERT_TRUE(with_model.ok() && with_latency.ok());
        EXPECT_NEAR(with_model->makespan_seconds, with_latency->makespan_seconds, kTolerance);
      }
    }
  }
}

// With free compute, two stages and GPipe, frames only queue on the link: m activation
// frames one after another, then m gradient frames.
TEST(PipelineScheduleTest, ALinkBoundPipelineSerializesItsFrames) {
  for (int64_t m = 1; m <= 8; ++m) {
    auto s = MakePipelineSchedule(ScheduleKind::kGpipe, 2, m);
    ASSERT_TRUE(s.ok());
    LinkModel link;
    link.bytes_per_second = 1000;
    link.forward_bytes = 500;   // 0.5 s a frame.
    link.backward_bytes = 250;  // 0.25 s a frame.
    link.latency_seconds = 0.1;
    auto t = SimulateSchedule(*s, {0, 0}, {0, 0}, link);
    ASSERT_TRUE(t.ok()) << t.status();
    EXPECT_NEAR(t->makespan_seconds, m * 0.5 + 0.1 + m * 0.25 + 0.1, kTolerance) << "m=" << m;
  }
}

// A slower link can only make a step longer, never shorter.
TEST(PipelineScheduleTest, MakespanGrowsAsTheLinkSlowsDown) {
  for (ScheduleKind kind : {ScheduleKind::kGpipe, ScheduleKind::k1F1B}) {
    auto s = MakePipelineSchedule(kind, 4, 8);
    ASSERT_TRUE(s.ok());
    double previous = 0;
    for (double rate : {1e9, 1e7, 1e6, 1e5}) {
      LinkModel link;
      link.bytes_per_second = rate;
      link.forward_bytes = link.backward_bytes = 1e5;
      auto t = SimulateSchedule(*s, std::vector<double>(4, 0.1), std::vector<double>(4, 0.2), link);
      ASSERT_TRUE(t.ok());
      EXPECT_GE(t->makespan_seconds, previous - kTolerance) << "rate " << rate;
      previous = t->makespan_seconds;
    }
    EXPECT_GT(previous, 8 * 2 * 1.0);  // At 1e5 B/s each frame takes 1 s, 8 of them each way.
  }
}

TEST(PipelineScheduleTest, BadLinkModelsAreInvalidArgumentNamingTheField) {
  auto s = MakePipelineSchedule(ScheduleKind::kGpipe, 2, 2);
  ASSERT_TRUE(s.ok());
  LinkModel link;
  link.bytes_per_second = -1;
  auto t = SimulateSchedule(*s, {1, 1}, {1, 1}, link);
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(t.status().message().find("link.bytes_per_second: -1"), std::string::npos)
      << t.status();
}

TEST(PipelineScheduleTest, SingleStageHasNoBubble) {
  absl::StatusOr<PipelineSchedule> s = MakePipelineSchedule(ScheduleKind::k1F1B, 1, 5);
  ASSERT_TRUE(s.ok()) << s.status();
  absl::StatusOr<ScheduleTimeline> t = SimulateSchedule(*s, {0.25}, {0.5}, 3.0);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_NEAR(t->makespan_seconds, 3.75, kTolerance);
  EXPECT_NEAR(t->idle_seconds[0], 0.0, kTolerance);
  EXPECT_DOUBLE_EQ(TheoreticalBubbleFraction(1, 5), 0.0);
}

TEST(PipelineScheduleTest, TheoreticalBubbleFractionIsPMinusOneOverMPlusPMinusOne) {
  EXPECT_DOUBLE_EQ(TheoreticalBubbleFraction(4, 4), 3.0 / 7.0);
  EXPECT_DOUBLE_EQ(TheoreticalBubbleFraction(2, 1), 0.5);
  EXPECT_DOUBLE_EQ(TheoreticalBubbleFraction(8, 32), 7.0 / 39.0);
  EXPECT_DOUBLE_EQ(TheoreticalBubbleFraction(0, 4), 0.0);
  EXPECT_DOUBLE_EQ(TheoreticalBubbleFraction(4, 0), 0.0);
}

TEST(PipelineScheduleTest, KindNamesAreLowercase) {
  EXPECT_EQ(ScheduleKindName(ScheduleKind::kGpipe), "gpipe");
  EXPECT_EQ(ScheduleKindName(ScheduleKind::k1F1B), "1f1b");
  EXPECT_EQ(ScheduleKindName(static_cast<ScheduleKind>(7)), "unknown");
}

TEST(PipelineScheduleTest, BackwardBeforeOwnForwardDeadlocksNamingTheStage) {
  const PipelineSchedule s = HandMade(1, {"B0 F0", "F0 B0"});
  const absl::Status status = ValidatePipelineSchedule(s);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_THAT(status.message(),
              HasSubstr("stage 0 blocked at op 0 (B0) waiting for B0 on stage 1"));
  EXPECT_THAT(status.message(),
              HasSubstr("stage 1 blocked at op 0 (F0) waiting for F0 on stage 0"));
}

TEST(PipelineScheduleTest, LastStageBackwardBeforeForwardDeadlocks) {
  const absl::Status status = ValidatePipelineSchedule(HandMade(2, {"F0 B1 F1 B0"}));
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_THAT(status.message(),
              HasSubstr("stage 0 blocked at op 1 (B1) waiting for F1 on stage 0"));
}

// Stage 0 keeps one microbatch in flight and waits for B0 before sending F1; stage 1 wants F1
// before it runs B0: a cycle across the two list orders.
TEST(PipelineScheduleTest, CrossedOrdersDeadlockNamingBothStages) {
  const PipelineSchedule s = HandMade(2, {"F0 B0 F1 B1", "F0 F1 B0 B1"});
  absl::StatusOr<ScheduleTimeline> t = SimulateSchedule(s, {1.0, 1.0}, {1.0, 1.0}, 0.0);
  EXPECT_EQ(t.status().code(), absl::StatusCode::kFailedPrecondition) << t.status();
  EXPECT_THAT(t.status().message(), HasSubstr("2 of 2 stages stuck"));
  EXPECT_THAT(t.status().message(), HasSubstr("stage 0 blocked at op 1 (B0)"));
  EXPECT_THAT(t.status().message(), HasSubstr("stage 1 blocked at op 1 (F1)"));
  EXPECT_EQ(ValidatePipelineSchedule(s).code(), absl::StatusCode::kFailedPrecondition);
}

TEST(PipelineScheduleTest, DeadlockMessageListsAFewStagesAndCountsTheRest) {
  const PipelineSchedule s = HandMade(1, std::vector<std::string>(20, "B0 F0"));
  const absl::Status status = ValidatePipelineSchedule(s);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_THAT(status.message(), HasSubstr("20 of 20 stages stuck"));
  EXPECT_THAT(status.message(), HasSubstr("stage 7 blocked"));
  EXPECT_THAT(status.message(), Not(HasSubstr("stage 8 blocked")));
  EXPECT_THAT(status.message(), HasSubstr("and 12 more stages"));
}

TEST(PipelineScheduleTest, ValidAlternativeOrdersPass) {
  // Stage 0 in GPipe order, stage 1 in 1F1B order: unusual but executable.
  EXPECT_TRUE(ValidatePipelineSchedule(HandMade(2, {"F0 F1 B1 B0", "F0 B0 F1 B1"})).ok());
}

struct MalformedCase {
  std::string name;
  PipelineSchedule schedule;
  std::string expected_substring;
};

TEST(PipelineScheduleTest, MalformedSchedulesAreInvalidArgumentNamingStageAndOp) {
  PipelineSchedule too_few_lists = HandMade(1, {"F0 B0", "F0 B0"});
  too_few_lists.num_stages = 3;
  PipelineSchedule zero_microbatches = HandMade(1, {"F0 B0"});
  zero_microbatches.num_microbatches = 0;
  PipelineSchedule bad_kind = HandMade(1, {"F0 B0"});
  bad_kind.stage_ops[0][1].kind = static_cast<OpKind>(9);
  const std::vector<MalformedCase> cases = {
      {"missing", HandMade(2, {"F0 F1 B1 B0", "F0 F1 B1"}), "stage 1: missing B0"},
      {"duplicate", HandMade(2, {"F0 F1 F0 B1 B0", "F0 F1 B1 B0"}), "stage 0 op 2 (F0): duplicate"},
      {"out of range", HandMade(2, {"F0 F1 B1 B0", "F0 F2 B1 B0"}),
       "stage 1 op 1 (F2): microbatch 2; expected 0..1"},
      {"negative microbatch", HandMade(1, {"F-1 B0"}), "stage 0 op 0 (F-1): microbatch -1"},
      {"list count", too_few_lists, "stage_ops has 2 lists; expected one per stage (3)"},
      {"zero microbatches", zero_microbatches, "num_microbatches: 0"},
      {"bad op kind", bad_kind, "stage 0 op 1: kind 9"},
  };
  for (const MalformedCase& c : cases) {
    SCOPED_TRACE(c.name);
    const absl::Status status = ValidatePipelineSchedule(c.schedule);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
    EXPECT_THAT(status.message(), HasSubstr(c.expected_substring));
    const std::vector<double> ones(c.schedule.num_stages > 0 ? c.schedule.num_stages : 0, 1.0);
    EXPECT_EQ(SimulateSchedule(c.schedule, ones, ones, 0.0).status().code(),
              absl::StatusCode::kInvalidArgument);
  }
}

struct BadSizeCase {
  ScheduleKind kind;
  int64_t num_stages;
  int64_t num_microbatches;
  std::string expected_substring;
};

TEST(PipelineScheduleTest, BadSizesAreInvalidArgumentNamingTheValue) {
  const std::vector<BadSizeCase> cases = {
      {ScheduleKind::kGpipe, 0, 4, "num_stages: 0; expected 1..4096"},
      {ScheduleKind::k1F1B, -3, 4, "num_stages: -3; expected 1..4096"},
      {ScheduleKind::k1F1B, 4097, 4, "num_stages: 4097; expected 1..4096"},
      {ScheduleKind::kGpipe, 4, 0, "num_microbatches: 0; expected 1..1000000"},
      {ScheduleKind::k1F1B, 4, 1000001, "num_microbatches: 1000001; expected 1..1000000"},
      {ScheduleKind::kGpipe, 4096, 1000000,
       "num_stages x num_microbatches: 4096 x 1000000 = 4096000000; expected at most 10000000"},
      {static_cast<ScheduleKind>(5), 4, 4, "kind: 5; expected kGpipe or k1F1B"},
  };
  for (const BadSizeCase& c : cases) {
    absl::StatusOr<PipelineSchedule> s =
        MakePipelineSchedule(c.kind, c.num_stages, c.num_microbatches);
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument) << s.status();
    EXPECT_THAT(s.status().message(), HasSubstr(c.expected_substring));
  }
}

struct BadTimesCase {
  std::vector<double> forward_seconds;
  std::vector<double> backward_seconds;
  double link_seconds;
  std::string expected_substring;
};

TEST(PipelineScheduleTest, BadTimesAreInvalidArgumentNamingTheValue) {
  constexpr double kNan = std::numeric_limits<double>::quiet_NaN();
  constexpr double kInf = std::numeric_limits<double>::infinity();
  const std::vector<BadTimesCase> cases = {
      {{1.0}, {1.0, 1.0}, 0.0, "forward_seconds has 1 entries; expected one per stage (2)"},
      {{1.0, 1.0},
       {1.0, 1.0, 1.0},
       0.0,
       "backward_seconds has 3 entries; expected one per stage (2)"},
      {{1.0, -0.5}, {1.0, 1.0}, 0.0, "forward_seconds[1]: -0.5; expected a finite value >= 0"},
      {{1.0, 1.0}, {kNan, 1.0}, 0.0, "backward_seconds[0]: nan"},
      {{kInf, 1.0}, {1.0, 1.0}, 0.0, "forward_seconds[0]: inf"},
      {{1.0, 1.0}, {1.0, 1.0}, -1.0, "link_seconds: -1; expected a finite value >= 0"},
      {{1.0, 1.0}, {1.0, 1.0}, kNan, "link_seconds: nan"},
  };
  absl::StatusOr<PipelineSchedule> s = MakePipelineSchedule(ScheduleKind::k1F1B, 2, 4);
  ASSERT_TRUE(s.ok()) << s.status();
  for (const BadTimesCase& c : cases) {
    absl::StatusOr<ScheduleTimeline> t =
        SimulateSchedule(*s, c.forward_seconds, c.backward_seconds, c.link_seconds);
    EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument) << t.status();
    EXPECT_THAT(t.status().message(), HasSubstr(c.expected_substring));
  }
}

TEST(PipelineScheduleTest, ZeroDurationsAreAllowed) {
  absl::StatusOr<PipelineSchedule> s = MakePipelineSchedule(ScheduleKind::k1F1B, 3, 4);
  ASSERT_TRUE(s.ok()) << s.status();
  absl::StatusOr<ScheduleTimeline> t =
      SimulateSchedule(*s, std::vector<double>(3, 0.0), std::vector<double>(3, 0.0), 0.0);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->makespan_seconds, 0.0);
}

}  // namespace
}  // namespace resbm
