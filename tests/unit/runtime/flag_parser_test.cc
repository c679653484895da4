#include "common/runtime/flag_parser.h"

#include <vector>

#include "gtest/gtest.h"

namespace resbm {
namespace {

absl::Status ParseArgs(FlagParser& parser, std::vector<std::string> args) {
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  return parser.Parse(static_cast<int>(argv.size()), argv.data());
}

TEST(FlagParserTest, ParsesBothSpellingsAndRecordsWhatWasSet) {
  std::string config;
  int64_t steps = 7;
  bool verbose = false;
  FlagParser parser("prog", "test");
  parser.AddString("config", &config, "c");
  parser.AddInt("steps", &steps, "s");
  parser.AddBool("verbose", &verbose, "v");
  ASSERT_TRUE(ParseArgs(parser, {"prog", "--config=a.json", "--verbose"}).ok());
  EXPECT_EQ(config, "a.json");
  EXPECT_TRUE(verbose);
  EXPECT_EQ(steps, 7);
  EXPECT_FALSE(parser.WasSet("steps"));
  ASSERT_TRUE(ParseArgs(parser, {"prog", "--steps", "12"}).ok());
  EXPECT_EQ(steps, 12);
  EXPECT_TRUE(parser.WasSet("steps"));
}

TEST(FlagParserTest, RejectsBadInputNamingTheFlag) {
  int64_t steps = 0;
  FlagParser parser("prog", "test");
  parser.AddInt("steps", &steps, "s");
  auto status = ParseArgs(parser, {"prog", "--steps=ten"});
  EXPECT_NE(status.message().find("--steps: 'ten'; expected an integer"), std::string::npos);
  EXPECT_NE(ParseArgs(parser, {"prog", "--nope"}).message().find("--nope: unknown flag"),
            std::string::npos);
  EXPECT_NE(ParseArgs(parser, {"prog", "--steps"}).message().find("missing value"),
            std::string::npos);
  EXPECT_NE(ParseArgs(parser, {"prog", "stray"}).message().find("expected a flag"),
            std::string::npos);
  ASSERT_TRUE(ParseArgs(parser, {"prog", "--help"}).ok());
  EXPECT_TRUE(parser.help_requested());
  EXPECT_NE(parser.Usage().find("--steps VALUE"), std::string::npos);
}

TEST(FlagParserTest, ACommandLineGivesTheExitCodeAMainReturns) {
  int64_t steps = 0;
  FlagParser parser("prog", "test");
  parser.AddInt("steps", &steps, "s");
  const auto run = [&](std::vector<std::string> args) {
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    return parser.ParseCommandLine(static_cast<int>(argv.size()), argv.data());
  };
  EXPECT_EQ(run({"prog", "--steps=3"}), std::nullopt);
  EXPECT_EQ(steps, 3);
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(run({"prog", "--steps=ten"}), std::optional<int>(2));
  EXPECT_NE(::testing::internal::GetCapturedStderr().find("prog: INVALID_ARGUMENT: --steps"),
            std::string::npos);
  ::testing::internal::CaptureStdout();
  EXPECT_EQ(run({"prog", "--help"}), std::optional<int>(0));
  EXPECT_NE(::testing::internal::GetCapturedStdout().find("--steps VALUE"), std::string::npos);
}

}  // namespace
}  // namespace resbm
