// Frames round-trip, and every kind of bad frame is refused with a status that names it.
#include "common/wire/frame_codec.h"

#include "gtest/gtest.h"

namespace resbm {
namespace {

WireTensor Bf16Tensor(std::vector<int64_t> shape) {
  WireTensor tensor;
  tensor.dtype = WireDtype::kBf16;
  tensor.shape = shape;
  int64_t values = 1;
  for (int64_t d : shape) values *= d;
  for (int64_t i = 0; i < values * 2; ++i) tensor.payload.push_back(static_cast<char>(i * 7));
  return tensor;
}

FrameExpectation Expect() {
  FrameExpectation e;
  e.job_id = "job-1";
  e.step = 5;
  e.num_microbatches = 4;
  e.kind = v1::FRAME_KIND_ACTIVATION;
  e.dtype = WireDtype::kBf16;
  e.shape = {2, 8, 4};
  return e;
}

v1::TensorFrame GoodFrame() {
  return FrameCodec::Encode(FrameHeader{"job-1", 5, 3, v1::FRAME_KIND_ACTIVATION},
                            Bf16Tensor({2, 8, 4}));
}

TEST(FrameCodecTest, RoundTripsHeaderAndPayload) {
  WireTensor original = Bf16Tensor({2, 8, 4});
  v1::TensorFrame frame = GoodFrame();
  EXPECT_EQ(frame.format_version(), FrameCodec::kFormatVersion);
  EXPECT_EQ(frame.microbatch(), 3u);
  auto decoded = FrameCodec::Decode(frame, Expect());
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->shape, original.shape);
  EXPECT_EQ(decoded->payload, original.payload);
  EXPECT_EQ(decoded->dtype, WireDtype::kBf16);
}

TEST(FrameCodecTest, RefusesEveryBadFrameNamingTheField) {
  struct Row {
    std::string name;
    std::function<void(v1::TensorFrame*, FrameExpectation*)> mutate;
    absl::StatusCode code;
    std::string message;
  };
  std::vector<Row> rows = {
      {"version", [](auto* f, auto*) { f->set_format_version(2); },
       absl::StatusCode::kInvalidArgument, "frame.format_version: 2; expected 1"},
      {"job", [](auto* f, auto*) { f->set_job_id("other"); }, absl::StatusCode::kFailedPrecondition,
       "frame.job_id: 'other'; expected 'job-1'"},
      {"wrong step", [](auto* f, auto*) { f->set_step(4); }, absl::StatusCode::kFailedPrecondition,
       "frame.step: 4; expected 5"},
      {"direction", [](auto* f, auto*) { f->set_kind(v1::FRAME_KIND_GRADIENT); },
       absl::StatusCode::kFailedPrecondition, "expected FRAME_KIND_ACTIVATION"},
      {"microbatch", [](auto* f, auto*) { f->set_microbatch(4); },
       absl::StatusCode::kInvalidArgument, "frame.microbatch: 4; expected 0..3"},
      {"dtype", [](auto* f, auto*) { f->set_dtype(v1::WIRE_DTYPE_FP32); },
       absl::StatusCode::kInvalidArgument, "frame.dtype: fp32; expected bf16"},
      {"unknown dtype", [](auto* f, auto*) { f->set_dtype(static_cast<v1::WireDtype>(9)); },
       absl::StatusCode::kInvalidArgument, "frame.dtype: 9"},
      {"wrong shape", [](auto* f, auto*) { f->set_shape(2, 5); },
       absl::StatusCode::kInvalidArgument, "frame.shape: [2,8,5]; expected [2,8,4]"},
      {"rank", [](auto* f, auto*) { f->add_shape(1); }, absl::StatusCode::kInvalidArgument,
       "frame.shape: [2,8,4,1]"},
      {"oversized", [](auto* f, auto* e) { e->max_payload_bytes = 64; },
       absl::StatusCode::kInvalidArgument, "the limit is 64"},
      {"short payload", [](auto* f, auto*) { f->mutable_payload()->pop_back(); },
       absl::StatusCode::kInvalidArgument, "frame.payload: 127 bytes; expected 128"},
      {"corrupt payload", [](auto* f, auto*) { (*f->mutable_payload())[10] ^= 1; },
       absl::StatusCode::kDataLoss, "frame.checksum"},
  };
  for (const Row& row : rows) {
    v1::TensorFrame frame = GoodFrame();
    FrameExpectation expected = Expect();
    row.mutate(&frame, &expected);
    auto decoded = FrameCodec::Decode(frame, expected);
    ASSERT_FALSE(decoded.ok()) << row.name;
    EXPECT_EQ(decoded.status().code(), row.code) << row.name << ": " << decoded.status();
    EXPECT_NE(decoded.status().message().find(row.message), std::string::npos)
        << row.name << ": " << decoded.status();
  }
}

TEST(FrameCodecTest, AcceptsAShorterSequenceOnlyWhenAllowed) {
  v1::TensorFrame frame = FrameCodec::Encode(FrameHeader{"job-1", 5, 0, v1::FRAME_KIND_ACTIVATION},
                                             Bf16Tensor({2, 6, 4}));
  FrameExpectation expected = Expect();
  EXPECT_FALSE(FrameCodec::Decode(frame, expected).ok());
  expected.allow_shorter_sequence = true;
  EXPECT_TRUE(FrameCodec::Decode(frame, expected).ok());
}

TEST(FrameCodecTest, Int8FramesCarryTheirPerTokenScales) {
  WireTensor tensor;
  tensor.dtype = WireDtype::kInt8;
  tensor.shape = {1, 3, 4};
  tensor.payload.assign(3 * 4 + 3 * 4, '\1');  // 3 fp32 scales + 12 int8 values
  FrameExpectation expected = Expect();
  expected.dtype = WireDtype::kInt8;
  expected.shape = {1, 3, 4};
  auto decoded = FrameCodec::Decode(
      FrameCodec::Encode(FrameHeader{"job-1", 5, 0, v1::FRAME_KIND_ACTIVATION}, tensor), expected);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->payload.size(), 24u);
}

}  // namespace
}  // namespace resbm
