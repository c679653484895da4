#include "common/schedule/microbatch_deal.h"

#include <set>

#include "gtest/gtest.h"

namespace resbm {
namespace {

TEST(MicrobatchDealTest, EveryMicrobatchGoesToExactlyOnePipelineInContiguousRuns) {
  for (int64_t m = 1; m <= 12; ++m) {
    for (int64_t n = 1; n <= m; ++n) {
      std::vector<int64_t> live;
      for (int64_t r = n - 1; r >= 0; --r) live.push_back(2 * r);  // Any order, with gaps.
      auto shares = DealMicrobatches(m, live);
      ASSERT_TRUE(shares.ok()) << shares.status();
      ASSERT_EQ(static_cast<int64_t>(shares->size()), n);
      int64_t next = 0;
      for (int64_t i = 0; i < n; ++i) {
        const MicrobatchShare& share = (*shares)[i];
        EXPECT_EQ(share.replica, 2 * i);  // Ascending replica order.
        const int64_t size = static_cast<int64_t>(share.microbatches.size());
        EXPECT_TRUE(size == m / n || size == m / n + 1) << "m=" << m << " n=" << n;
        for (int64_t mb : share.microbatches) EXPECT_EQ(mb, next++);
      }
      EXPECT_EQ(next, m);
    }
  }
}

TEST(MicrobatchDealTest, ALostPipelinesMicrobatchesGoToTheOthers) {
  auto all = DealMicrobatches(6, std::vector<int64_t>{0, 1, 2});
  auto without_one = DealMicrobatches(6, std::vector<int64_t>{0, 2});
  ASSERT_TRUE(all.ok() && without_one.ok());
  EXPECT_EQ((*all)[1].microbatches, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ((*without_one)[0].microbatches, (std::vector<int64_t>{0, 1, 2}));
  EXPECT_EQ((*without_one)[1].replica, 2);
  EXPECT_EQ((*without_one)[1].microbatches, (std::vector<int64_t>{3, 4, 5}));
}

TEST(MicrobatchDealTest, BadInputIsAClearError) {
  EXPECT_NE(DealMicrobatches(4, {}).status().message().find("expected distinct"),
            std::string::npos);
  EXPECT_NE(DealMicrobatches(4, std::vector<int64_t>{1, 1}).status().message().find("[1, 1]"),
            std::string::npos);
  EXPECT_NE(DealMicrobatches(4, std::vector<int64_t>{-1}).status().message().find("[-1]"),
            std::string::npos);
  EXPECT_NE(DealMicrobatches(2, std::vector<int64_t>{0, 1, 2})
                .status()
                .message()
                .find("microbatches: 2 for 3 pipelines"),
            std::string::npos);
}

}  // namespace
}  // namespace resbm
