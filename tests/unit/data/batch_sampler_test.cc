#include "common/data/batch_sampler.h"

#include <algorithm>
#include <cstdint>
#include <set>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace resbm {
namespace {

// Tokens whose value is their index, so a window's contents reveal its offset.
TokenStream IotaTokens(int n) {
  std::vector<uint16_t> tokens(n);
  for (int i = 0; i < n; ++i) tokens[i] = static_cast<uint16_t>(i);
  return TokenStream::InMemory(std::move(tokens));
}

constexpr int64_t kSeqLen = 16;
constexpr int64_t kRows = 8;

TEST(BatchSamplerTest, SameSeedAndStepGiveSameBatch) {
  const TokenStream tokens = IotaTokens(5000);
  BatchSampler a(&tokens, kSeqLen, 1234);
  BatchSampler b(&tokens, kSeqLen, 1234);
  std::vector<int64_t> a_in, a_tgt, b_in, b_tgt;
  ASSERT_TRUE(a.Sample(42, 0, kRows, &a_in, &a_tgt).ok());
  ASSERT_TRUE(b.Sample(42, 0, kRows, &b_in, &b_tgt).ok());
  EXPECT_EQ(a_in, b_in);
  EXPECT_EQ(a_tgt, b_tgt);
}

TEST(BatchSamplerTest, DifferentStepsAndSeedsGiveDifferentBatches) {
  const TokenStream tokens = IotaTokens(5000);
  BatchSampler sampler(&tokens, kSeqLen, 1234);
  BatchSampler other_seed(&tokens, kSeqLen, 1235);
  std::vector<int64_t> step0, step1, seed1, targets;
  ASSERT_TRUE(sampler.Sample(0, 0, kRows, &step0, &targets).ok());
  ASSERT_TRUE(sampler.Sample(1, 0, kRows, &step1, &targets).ok());
  ASSERT_TRUE(other_seed.Sample(0, 0, kRows, &seed1, &targets).ok());
  EXPECT_NE(step0, step1);
  EXPECT_NE(step0, seed1);
}

TEST(BatchSamplerTest, RowsWithinABatchDiffer) {
  const TokenStream tokens = IotaTokens(5000);
  BatchSampler sampler(&tokens, kSeqLen, 7);
  std::set<int64_t> offsets;
  for (int64_t r = 0; r < kRows; ++r) offsets.insert(sampler.RowOffset(3, r));
  EXPECT_EQ(offsets.size(), static_cast<size_t>(kRows));
}

TEST(BatchSamplerTest, MicrobatchSlicesEqualFullBatchRows) {
  const TokenStream tokens = IotaTokens(5000);
  BatchSampler sampler(&tokens, kSeqLen, 99);
  std::vector<int64_t> full_in, full_tgt;
  ASSERT_TRUE(sampler.Sample(17, 0, kRows, &full_in, &full_tgt).ok());
  ASSERT_EQ(full_in.size(), static_cast<size_t>(kRows * kSeqLen));
  for (int64_t micro = 2; micro <= kRows; micro *= 2) {
    std::vector<int64_t> in, tgt;
    for (int64_t begin = 0; begin < kRows; begin += micro) {
      ASSERT_TRUE(sampler.Sample(17, begin, micro, &in, &tgt).ok());
      ASSERT_EQ(in.size(), static_cast<size_t>(micro * kSeqLen));
      const auto first = full_in.begin() + begin * kSeqLen;
      EXPECT_TRUE(std::equal(in.begin(), in.end(), first))
          << "micro " << micro << " begin " << begin;
      const auto first_tgt = full_tgt.begin() + begin * kSeqLen;
      EXPECT_TRUE(std::equal(tgt.begin(), tgt.end(), first_tgt));
    }
  }
}

TEST(BatchSamplerTest, TargetsAreInputsShiftedByOneToken) {
  const TokenStream tokens = IotaTokens(5000);
  BatchSampler sampler(&tokens, kSeqLen, 5);
  std::vector<int64_t> in, tgt;
  ASSERT_TRUE(sampler.Sample(8, 0, kRows, &in, &tgt).ok());
  for (int64_t r = 0; r < kRows; ++r) {
    const int64_t offset = sampler.RowOffset(8, r);
    for (int64_t t = 0; t < kSeqLen; ++t) {
      ASSERT_EQ(in[r * kSeqLen + t], offset + t) << "row " << r << " t " << t;
      ASSERT_EQ(tgt[r * kSeqLen + t], offset + t + 1) << "row " << r << " t " << t;
    }
  }
}

TEST(BatchSamplerTest, OffsetsStayInRangeAndCoverIt) {
  // 20 tokens, seq_len 16: offsets in [0, 20 - 16 - 1) = {0, 1, 2}.
  const TokenStream tokens = IotaTokens(20);
  BatchSampler sampler(&tokens, kSeqLen, 0);
  std::set<int64_t> seen;
  std::vector<int64_t> in, tgt;
  for (int64_t step = 0; step < 200; ++step) {
    ASSERT_TRUE(sampler.Sample(step, 0, 4, &in, &tgt).ok());
    for (int64_t value : tgt) ASSERT_LT(value, 20);
    for (int64_t r = 0; r < 4; ++r) {
      const int64_t offset = sampler.RowOffset(step, r);
      ASSERT_GE(offset, 0);
      ASSERT_LT(offset, 3);
      seen.insert(offset);
    }
  }
  EXPECT_EQ(seen, (std::set<int64_t>{0, 1, 2}));
}

TEST(BatchSamplerTest, SmallestFittingStreamAlwaysSamplesOffsetZero) {
  const TokenStream tokens = IotaTokens(kSeqLen + 2);
  BatchSampler sampler(&tokens, kSeqLen, 77);
  for (int64_t step = 0; step < 10; ++step) EXPECT_EQ(sampler.RowOffset(step, 3), 0);
}

TEST(BatchSamplerTest, RowHashDependsOnArgumentOrder) {
  EXPECT_NE(BatchSampler::RowHash(1, 2, 3), BatchSampler::RowHash(1, 3, 2));
  EXPECT_NE(BatchSampler::RowHash(1, 2, 3), BatchSampler::RowHash(2, 1, 3));
  EXPECT_NE(BatchSampler::RowHash(0, 0, 0), BatchSampler::RowHash(0, 0, 1));
}

TEST(BatchSamplerTest, ZeroRowsGiveEmptyOutputs) {
  const TokenStream tokens = IotaTokens(100);
  BatchSampler sampler(&tokens, kSeqLen, 1);
  std::vector<int64_t> in = {1, 2}, tgt = {3};
  ASSERT_TRUE(sampler.Sample(0, 5, 0, &in, &tgt).ok());
  EXPECT_TRUE(in.empty());
  EXPECT_TRUE(tgt.empty());
}

TEST(BatchSamplerDeathTest, AbortsWhenTokensDoNotFit) {
  const TokenStream tokens = IotaTokens(kSeqLen + 1);
  EXPECT_DEATH(BatchSampler(&tokens, kSeqLen, 0), "precondition failed");
}

}  // namespace
}  // namespace resbm
