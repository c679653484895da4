// Boundary tensors leave and enter a device with exactly the bytes WireCodec gives on the
// host, whatever device they were computed on, and with the bytes an independent scalar
// reference of each wire dtype gives (written here from the formats, without LibTorch: the CPU
// rows would otherwise compare the codec with itself); NaN/Inf are counted on the way out;
// copies in flight finish on another thread while more start, and a dropped one harms none.
// GPU rows skip on CPU-only machines.
#include "common/wire/wire_transfer.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <deque>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "common/wire/wire_codec.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/devices.h"

namespace resbm {
namespace {

using ::testing::HasSubstr;

constexpr WireDtype kDtypes[] = {WireDtype::kFp32, WireDtype::kBf16, WireDtype::kFp16,
                                 WireDtype::kInt8};

// The reference codec, one value at a time from the formats (little-endian host): fp32 as
// is; bf16 the top half of the fp32 bits rounded to nearest even; fp16 by the compiler's
// IEEE conversion (_Float16, round to nearest even); int8 one fp32 scale per token,
// amax / 127, then every token's values / scale rounded half to even into [-127, 127].
template <typename T>
void Append(std::string* out, T value) {
  out->append(reinterpret_cast<const char*>(&value), sizeof(T));
}

std::string ReferenceEncode(const std::vector<float>& values, int64_t width, WireDtype dtype) {
  std::string out;
  if (dtype == WireDtype::kInt8) {
    std::string q;
    for (size_t row = 0; row < values.size(); row += width) {
      float amax = 0;
      for (int64_t i = 0; i < width; ++i) amax = std::max(amax, std::fabs(values[row + i]));
      const float scale = amax / 127.0f;
      Append(&out, scale);
      for (int64_t i = 0; i < width; ++i) {
        const float scaled = values[row + i] / (scale > 0 ? scale : 1.0f);
        Append(&q, static_cast<int8_t>(std::clamp(std::nearbyint(scaled), -127.0f, 127.0f)));
      }
    }
    return out + q;
  }
  for (float value : values) {
    uint32_t bits = 0;
    std::memcpy(&bits, &value, sizeof(bits));
    if (dtype == WireDtype::kFp32) {
      Append(&out, bits);
    } else if (dtype == WireDtype::kBf16) {
      Append(&out, static_cast<uint16_t>((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16));
    } else {
      Append(&out, static_cast<_Float16>(value));
    }
  }
  return out;
}

// The reference decoder: each value widened back to fp32 (int8: q * its token's scale).
std::vector<float> ReferenceDecode(const std::string& payload, int64_t width, WireDtype dtype) {
  std::vector<float> values;
  const char* data = payload.data();
  if (dtype == WireDtype::kInt8) {
    const size_t tokens = payload.size() / (width + sizeof(float));
    for (size_t t = 0; t < tokens; ++t) {
      float scale = 0;
      std::memcpy(&scale, data + t * sizeof(float), sizeof(float));
      const auto* q = reinterpret_cast<const int8_t*>(data + tokens * sizeof(float) + t * width);
      for (int64_t i = 0; i < width; ++i) values.push_back(static_cast<float>(q[i]) * scale);
    }
    return values;
  }
  const size_t size = dtype == WireDtype::kFp32 ? 4 : 2;
  for (size_t offset = 0; offset < payload.size(); offset += size) {
    uint32_t bits = 0;
    float value = 0;
    if (dtype == WireDtype::kFp16) {
      _Float16 half;
      std::memcpy(&half, data + offset, sizeof(half));
      value = static_cast<float>(half);
    } else {
      std::memcpy(reinterpret_cast<char*>(&bits) + (4 - size), data + offset, size);
      std::memcpy(&value, &bits, sizeof(value));
    }
    values.push_back(value);
  }
  return values;
}

std::vector<float> HostValues(const torch::Tensor& x) {
  const auto contiguous = x.to(torch::kCPU).contiguous();
  const float* data = contiguous.data_ptr<float>();
  return std::vector<float>(data, data + contiguous.numel());
}

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
    EXPECT_TRUE(wire->payload == ReferenceEncode(HostValues(x), x.size(-1), dtype))
        << WireDtypeName(dtype) << ": not the reference's bytes";
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
    EXPECT_EQ(HostValues(*uploaded), ReferenceDecode(wire.payload, x.size(-1), dtype))
        << WireDtypeName(dtype);
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
    EXPECT_TRUE(payloads[i] == ReferenceEncode(HostValues(sources[i]), 256, WireDtype::kBf16)) << i;
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
  EXPECT_TRUE(wire->payload == ReferenceEncode(HostValues(second), 8, WireDtype::kFp32));
}

TEST_P(WireTransferTest, ATensorOnAnotherDeviceIsRefused) {
  RESBM_SKIP_WITHOUT_CUDA();
  const std::string other = GetParam() == "cpu" ? "cuda:0" : "cpu";
  auto pending =
      transfer_->StartEncode(torch::ones({2, 2}, torch::Device(other)), WireDtype::kBf16);
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
