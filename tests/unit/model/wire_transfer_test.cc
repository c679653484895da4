// Boundary tensors leave and enter a device with exactly the bytes WireCodec gives on the
// host, whatever device they were computed on, with their NaN/Inf counted on the way out;
// copies in flight finish on another thread while more start, and a dropped one harms none. GPU rows skip on CPU-only
// machines.
#include "common/model/wire_transfer.h"

#include <torch/torch.h>

#include <deque>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "common/model/wire_codec.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/devices.h"

namespace resbm {
namespace {

using ::testing::HasSubstr;

constexpr WireDtype kDtypes[] = {WireDtype::kFp32, WireDtype::kBf16, WireDtype::kFp16,
                                 WireDtype::kInt8};

class WireTransferTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    auto transfer = WireTransfer::Create(GetParam());
    ASSERT_TRUE(transfer.ok()) << transfer.status();
    transfer_ = std::move(*transfer);
  }
  torch::TensorOptions OnDevice() const { return torch::TensorOptions().device(GetParam()); }

  std::unique_ptr<WireTransfer> transfer_;
};

TEST_P(WireTransferTest, EncodesTheSameBytesAsTheHostCodec) {
  torch::manual_seed(11);
  auto x = torch::randn({3, 7, 8}) * torch::rand({3, 7, 1}) * 10;  // (B, T, k) on the host
  for (WireDtype dtype : kDtypes) {
    auto pending = transfer_->StartEncode(x.to(GetParam()), dtype);
    ASSERT_TRUE(pending.ok()) << pending.status();
    int64_t non_finite = -1;
    auto wire = pending->Finish(&non_finite);
    ASSERT_TRUE(wire.ok()) << wire.status();
    // Casts round to nearest even and int8 scales are IEEE divisions on every device: the
    // stated tolerance is none, bit for bit.
    const WireTensor host = *WireCodec::Encode(x, dtype);
    EXPECT_EQ(wire->payload, host.payload) << WireDtypeName(dtype);
    if (dtype == WireDtype::kFp32) {
      // And independently of the codec: fp32 on the wire is the tensor's own bytes.
      const auto contiguous = x.contiguous();
      EXPECT_EQ(wire->payload,
                std::string(static_cast<const char*>(contiguous.data_ptr()), x.numel() * 4));
    }
    EXPECT_EQ(wire->shape, host.shape);
    EXPECT_EQ(wire->dtype, dtype);
    EXPECT_EQ(non_finite, 0);
  }
}

TEST_P(WireTransferTest, CountsNaNAndInfOnTheWayOut) {
  auto x = torch::ones({2, 4, 8}, OnDevice());
  x.index_put_({0, 1, 2}, std::numeric_limits<float>::quiet_NaN());
  x.index_put_({1, 3, 7}, std::numeric_limits<float>::infinity());
  x.index_put_({1, 0, 0}, -std::numeric_limits<float>::infinity());
  auto pending = transfer_->StartEncode(x, WireDtype::kBf16);
  ASSERT_TRUE(pending.ok()) << pending.status();
  int64_t non_finite = 0;
  ASSERT_TRUE(pending->Finish(&non_finite).ok());
  EXPECT_EQ(non_finite, 3);
}

TEST_P(WireTransferTest, UploadsToTheDeviceWhatTheHostCodecDecodes) {
  torch::manual_seed(12);
  auto x = torch::randn({2, 5, 16});  // (B, T, k)
  for (WireDtype dtype : kDtypes) {
    const WireTensor wire = *WireCodec::Encode(x, dtype);
    auto uploaded = transfer_->Upload(wire);
    ASSERT_TRUE(uploaded.ok()) << uploaded.status();
    EXPECT_EQ(uploaded->device(), transfer_->device());
    EXPECT_EQ(uploaded->scalar_type(), torch::kFloat32);
    EXPECT_TRUE(torch::equal(uploaded->cpu(), *WireCodec::Decode(wire))) << WireDtypeName(dtype);
  }
}

TEST_P(WireTransferTest, RefusesAPayloadThatDoesNotMatchItsShape) {
  WireTensor wire = *WireCodec::Encode(torch::randn({2, 3, 4}), WireDtype::kBf16);
  wire.payload.pop_back();
  auto uploaded = transfer_->Upload(wire);
  ASSERT_FALSE(uploaded.ok());
  EXPECT_EQ(uploaded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(uploaded.status().message(), HasSubstr("47 bytes"));
  EXPECT_THAT(uploaded.status().message(), HasSubstr("expected 48"));
}

TEST_P(WireTransferTest, CopiesFinishOnAnotherThreadWhileMoreAreStarted) {
  torch::manual_seed(13);
  constexpr int kTensors = 12;
  std::vector<torch::Tensor> sources;
  absl::Mutex mu;
  std::deque<std::pair<int, WireTransfer::Pending>> started;  // Guarded by mu.
  std::vector<std::string> payloads(kTensors);
  // The FrameSender's pattern: one thread computes and starts copies, another finishes them.
  std::thread finisher([&] {
    for (int done = 0; done < kTensors; ++done) {
      absl::MutexLock lock(&mu);
      mu.Await(absl::Condition(
          +[](std::deque<std::pair<int, WireTransfer::Pending>>* q) { return !q->empty(); },
          &started));
      auto [index, pending] = std::move(started.front());
      started.pop_front();
      mu.Unlock();
      int64_t non_finite = 0;
      auto wire = pending.Finish(&non_finite);
      mu.Lock();
      payloads[index] = wire.ok() ? wire->payload : wire.status().ToString();
    }
  });
  auto work = torch::randn({256, 256}, OnDevice());
  for (int i = 0; i < kTensors; ++i) {
    // Each tensor comes out of compute queued behind the copies already started.
    work = torch::tanh(torch::matmul(work, work) / 16.0);  // (256, 256)
    sources.push_back(work.narrow(0, 0, 4).reshape({2, 2, 256}).clone());
    auto pending = transfer_->StartEncode(sources.back(), WireDtype::kBf16);
    ASSERT_TRUE(pending.ok()) << pending.status();
    absl::MutexLock lock(&mu);
    started.emplace_back(i, std::move(*pending));
  }
  finisher.join();
  for (int i = 0; i < kTensors; ++i) {
    EXPECT_EQ(payloads[i], WireCodec::Encode(sources[i].cpu(), WireDtype::kBf16)->payload) << i;
  }
}

TEST_P(WireTransferTest, APendingDroppedUnfinishedLeavesLaterCopiesIntact) {
  auto first = torch::full({2, 2, 8}, 1.5, OnDevice());
  { auto dropped = transfer_->StartEncode(first, WireDtype::kFp32); }  // An aborted step's.
  auto second = torch::full({2, 2, 8}, -2.25, OnDevice());
  auto pending = transfer_->StartEncode(second, WireDtype::kFp32);
  ASSERT_TRUE(pending.ok());
  int64_t non_finite = 0;
  auto wire = pending->Finish(&non_finite);
  ASSERT_TRUE(wire.ok()) << wire.status();
  EXPECT_EQ(wire->payload, WireCodec::Encode(second.cpu(), WireDtype::kFp32)->payload);
}

TEST_P(WireTransferTest, ATensorOnAnotherDeviceIsRefused) {
  RESBM_SKIP_WITHOUT_CUDA();
  const std::string other = GetParam() == "cpu" ? "cuda:0" : "cpu";
  auto pending = transfer_->StartEncode(torch::ones({2, 2}, torch::Device(other)),
                                        WireDtype::kBf16);
  ASSERT_FALSE(pending.ok());
  EXPECT_EQ(pending.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(pending.status().message(), HasSubstr("expected one on"));
}

INSTANTIATE_TEST_SUITE_P(Devices, WireTransferTest, ::testing::ValuesIn(testing::TestDevices()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param == "cpu" ? std::string("Cpu") : std::string("Cuda");
                         });

// The receiver's check reads the payload's bits on the host, before any upload.
TEST(CountNonFiniteValuesTest, FindsNaNAndInfInEveryDtype) {
  auto x = torch::randn({2, 3, 4});  // (B, T, k)
  x.index_put_({0, 0, 1}, std::numeric_limits<float>::quiet_NaN());
  x.index_put_({1, 2, 3}, -std::numeric_limits<float>::infinity());
  for (WireDtype dtype : {WireDtype::kFp32, WireDtype::kBf16, WireDtype::kFp16}) {
    auto count = CountNonFiniteValues(*WireCodec::Encode(x, dtype));
    ASSERT_TRUE(count.ok()) << count.status();
    EXPECT_EQ(*count, 2) << WireDtypeName(dtype);
  }
  auto clean = CountNonFiniteValues(*WireCodec::Encode(torch::randn({2, 3, 4}), WireDtype::kBf16));
  EXPECT_EQ(*clean, 0);
}

TEST(CountNonFiniteValuesTest, Int8CountsTheTokensWhoseScaleIsNotFinite) {
  WireTensor wire = *WireCodec::Encode(torch::randn({2, 3, 4}), WireDtype::kInt8);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::memcpy(wire.payload.data() + 2 * sizeof(float), &nan, sizeof(float));  // token 2's scale
  EXPECT_EQ(*CountNonFiniteValues(wire), 1);
}

TEST(CountNonFiniteValuesTest, RefusesAPayloadOfTheWrongSize) {
  WireTensor wire = *WireCodec::Encode(torch::randn({2, 3, 4}), WireDtype::kFp16);
  wire.payload.append("xx");
  EXPECT_EQ(CountNonFiniteValues(wire).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace resbm
