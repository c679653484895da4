#include "common/data/token_dataset.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/data/token_shard.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/scoped_temp_dir.h"

namespace resbm {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::vector<uint16_t> Tokens(const TokenStream& stream) {
  std::vector<uint16_t> tokens(stream.size());
  EXPECT_TRUE(stream.Read(0, stream.size(), tokens.data()).ok());
  return tokens;
}

TEST(TokenDatasetTest, FromByteCorpusKeepsLastFractionForValidation) {
  ScopedTempDir dir;
  std::string text;
  for (int i = 0; i < 100; ++i) text.push_back(static_cast<char>('A' + i % 26));
  const std::string path = dir.WriteFile("corpus", text);
  absl::StatusOr<TokenDataset> data = TokenDataset::FromByteCorpus({path}, 0.1);
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(data->vocab_size(), 256);
  ASSERT_EQ(data->train().size(), 90);
  ASSERT_EQ(data->val().size(), 10);
  EXPECT_EQ(Tokens(data->train()).front(), 'A');
  EXPECT_EQ(Tokens(data->val()).front(), static_cast<uint16_t>(text[90]));
  EXPECT_EQ(Tokens(data->val()).back(), static_cast<uint16_t>(text[99]));
}

TEST(TokenDatasetTest, FromByteCorpusRejectsValFractionOutsideRange) {
  ScopedTempDir dir;
  const std::string path = dir.WriteFile("corpus", std::string(100, 'x'));
  for (double bad : {0.0, -0.1, 0.51, 1.0, std::numeric_limits<double>::quiet_NaN()}) {
    absl::StatusOr<TokenDataset> data = TokenDataset::FromByteCorpus({path}, bad);
    EXPECT_EQ(data.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(data.status().message(), HasSubstr("val_fraction")) << bad;
    EXPECT_THAT(data.status().message(), HasSubstr("(0, 0.5]")) << bad;
  }
  EXPECT_TRUE(TokenDataset::FromByteCorpus({path}, 0.5).ok());
}

TEST(TokenDatasetTest, FromByteCorpusRejectsCorpusTooSmallForValidation) {
  ScopedTempDir dir;
  const std::string path = dir.WriteFile("corpus", "abc");
  absl::StatusOr<TokenDataset> data = TokenDataset::FromByteCorpus({path}, 0.1);
  EXPECT_EQ(data.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(data.status().message(), HasSubstr("3 bytes"));
}

TEST(TokenDatasetTest, FromTokenShardsConcatenatesShardsInOrder) {
  ScopedTempDir dir;
  ASSERT_TRUE(WriteTokenShard(dir.File("train0"), {1, 2}).ok());
  ASSERT_TRUE(WriteTokenShard(dir.File("train1"), {3}).ok());
  ASSERT_TRUE(WriteTokenShard(dir.File("val0"), {4, 5}).ok());
  absl::StatusOr<TokenDataset> data = TokenDataset::FromTokenShards(
      {dir.File("train1"), dir.File("train0")}, {dir.File("val0")}, 6);
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_THAT(Tokens(data->train()), ElementsAre(3, 1, 2));
  EXPECT_THAT(Tokens(data->val()), ElementsAre(4, 5));
  EXPECT_EQ(data->vocab_size(), 6);
}

TEST(TokenDatasetTest, FromTokenShardsRejectsTokenOutsideVocabulary) {
  ScopedTempDir dir;
  ASSERT_TRUE(WriteTokenShard(dir.File("train0"), {1, 2}).ok());
  ASSERT_TRUE(WriteTokenShard(dir.File("val0"), {4, 5, 50257, 1}).ok());
  absl::StatusOr<TokenDataset> data =
      TokenDataset::FromTokenShards({dir.File("train0")}, {dir.File("val0")}, 50257);
  EXPECT_EQ(data.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(data.status().message(), HasSubstr(dir.File("val0")));
  EXPECT_THAT(data.status().message(), HasSubstr("token 2 has value 50257"));
  EXPECT_THAT(data.status().message(), HasSubstr("vocab_size 50257"));
}

TEST(TokenDatasetTest, FromTokenShardsRejectsBadArguments) {
  ScopedTempDir dir;
  ASSERT_TRUE(WriteTokenShard(dir.File("s"), {1}).ok());
  const std::string s = dir.File("s");
  EXPECT_EQ(TokenDataset::FromTokenShards({s}, {s}, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(TokenDataset::FromTokenShards({s}, {s}, 65537).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(TokenDataset::FromTokenShards({}, {s}, 10).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(TokenDataset::FromTokenShards({s}, {}, 10).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(TokenDataset::FromTokenShards({s}, {dir.File("missing")}, 10).status().code(),
            absl::StatusCode::kNotFound);
}

TEST(TokenDatasetTest, CheckFitsNeedsSeqLenPlusTwoTokensInEachSplit) {
  TokenDataset data =
      TokenDataset::FromTokens(std::vector<uint16_t>(10, 1), std::vector<uint16_t>(6, 1), 2);
  EXPECT_TRUE(data.CheckFits(4).ok());

  absl::Status val_short = data.CheckFits(5);
  EXPECT_EQ(val_short.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(val_short.message(), HasSubstr("val split has 6 tokens"));
  EXPECT_THAT(val_short.message(), HasSubstr("at least seq_len + 2 = 7"));

  absl::Status train_short = data.CheckFits(9);
  EXPECT_EQ(train_short.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(train_short.message(), HasSubstr("train split has 10 tokens"));
  EXPECT_THAT(train_short.message(), HasSubstr("= 11"));
}

TEST(TokenDatasetTest, CheckFitsRejectsNonPositiveSeqLen) {
  TokenDataset data = TokenDataset::FromTokens({1, 2, 3}, {1, 2, 3}, 4);
  EXPECT_EQ(data.CheckFits(0).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(data.CheckFits(-3).message(), HasSubstr("seq_len is -3"));
}

TEST(TokenDatasetTest, UnigramEntropyMatchesClosedForm) {
  constexpr double kTolerance = 1e-12;
  TokenDataset uniform = TokenDataset::FromTokens({0, 1, 2, 3, 3, 2, 1, 0}, {0}, 4);
  EXPECT_NEAR(*uniform.UnigramEntropyNats(), std::log(4.0), kTolerance);

  TokenDataset constant = TokenDataset::FromTokens({7, 7, 7}, {7}, 8);
  EXPECT_NEAR(*constant.UnigramEntropyNats(), 0.0, kTolerance);

  // p = (3/4, 1/4); the val split does not count.
  TokenDataset skewed = TokenDataset::FromTokens({5, 5, 5, 9}, {9, 9, 9, 9}, 10);
  const double expected = -(0.75 * std::log(0.75) + 0.25 * std::log(0.25));
  EXPECT_NEAR(*skewed.UnigramEntropyNats(), expected, kTolerance);

  EXPECT_EQ(*TokenDataset::FromTokens({}, {}, 4).UnigramEntropyNats(), 0.0);
}

}  // namespace
}  // namespace resbm
