// Wire dtypes round-trip within their stated bounds; malformed payloads are refused.
#include "common/wire/wire_codec.h"

#include <torch/torch.h>

#include "gtest/gtest.h"

namespace resbm {
namespace {

// Bound on |decode(encode(x)) - x| per element, relative to |x| (float formats, round to
// nearest: half an ulp) or to the token's max |x| (int8: half a quantisation step).
struct Row {
  WireDtype dtype;
  double relative_bound;
  int64_t bytes_per_value;
};

TEST(WireCodecTest, EveryDtypeRoundTripsWithinItsBound) {
  torch::manual_seed(5);
  auto x = torch::randn({4, 16, 8}) * torch::rand({4, 16, 1}) * 10;  // (B, T, k)
  for (const Row& row :
       {Row{WireDtype::kFp32, 0.0, 4}, Row{WireDtype::kBf16, 1.0 / 256, 2},
        Row{WireDtype::kFp16, 1.0 / 2048, 2}, Row{WireDtype::kInt8, 0.5 / 127, 1}}) {
    WireTensor wire = *WireCodec::Encode(x, row.dtype);
    const int64_t scales = row.dtype == WireDtype::kInt8 ? 4 * 16 * 4 : 0;
    EXPECT_EQ(static_cast<int64_t>(wire.payload.size()), x.numel() * row.bytes_per_value + scales);
    auto decoded = WireCodec::Decode(wire);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    auto error = (*decoded - x).abs();
    auto reference = row.dtype == WireDtype::kInt8 ? x.abs().amax(-1, true).expand_as(x) : x.abs();
    const double worst = (error - row.relative_bound * reference).max().item<double>();
    EXPECT_LE(worst, 1e-12) << WireDtypeName(row.dtype) << ": max error "
                            << error.max().item<double>();
  }
}

TEST(WireCodecTest, Fp32IsExact) {
  auto x = torch::randn({3, 5});
  auto decoded = WireCodec::Decode(*WireCodec::Encode(x, WireDtype::kFp32));
  ASSERT_TRUE(decoded.ok());
  EXPECT_TRUE(torch::equal(*decoded, x));
}

TEST(WireCodecTest, Int8KeepsAllZeroTokensZero) {
  auto x = torch::zeros({2, 4});
  auto decoded = WireCodec::Decode(*WireCodec::Encode(x, WireDtype::kInt8));
  ASSERT_TRUE(decoded.ok());
  EXPECT_TRUE(torch::equal(*decoded, x));
}

TEST(WireCodecTest, RefusesAPayloadOfTheWrongSize) {
  WireTensor wire = *WireCodec::Encode(torch::randn({2, 3, 4}), WireDtype::kBf16);
  wire.payload.pop_back();
  auto decoded = WireCodec::Decode(wire);
  ASSERT_FALSE(decoded.ok());
  EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(decoded.status().message().find("47 bytes"), std::string::npos) << decoded.status();
  EXPECT_NE(decoded.status().message().find("expected 48"), std::string::npos);
}

TEST(WireCodecTest, RefusesHostileShapesBeforeAllocating) {
  WireTensor wire;
  wire.dtype = WireDtype::kFp32;
  wire.shape = {int64_t{1} << 40, int64_t{1} << 40};
  EXPECT_EQ(WireCodec::Decode(wire).status().code(), absl::StatusCode::kInvalidArgument);
  wire.shape = {4, -1};
  EXPECT_EQ(WireCodec::Decode(wire).status().code(), absl::StatusCode::kInvalidArgument);
  wire.shape = {};
  EXPECT_EQ(WireCodec::Decode(wire).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace resbm
