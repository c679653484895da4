#include "common/transport/frame_link.h"

#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/slice.h>

#include <string>

#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "resbm/v1/tensor_frame.pb.h"

namespace resbm {
namespace {

using ::testing::HasSubstr;

// Writes nowhere: these cases only read.
class NullWriter : public FrameWriter {
 public:
  void StartFrameWrite(const grpc::ByteBuffer*) override {}
};

v1::TensorFrame Activation(int64_t step, int32_t microbatch) {
  v1::TensorFrame frame;
  frame.set_format_version(1);
  frame.set_job_id("job");
  frame.set_step(static_cast<uint64_t>(step));
  frame.set_microbatch(static_cast<uint32_t>(microbatch));
  frame.set_kind(v1::FRAME_KIND_ACTIVATION);
  frame.add_shape(2);
  frame.add_shape(250);
  frame.set_payload(std::string(1000, '\x5a'));
  return frame;
}

TEST(FrameLinkTest, DeliversAReadMessageAsItsFrameAndClearsIt) {
  FrameLink link(/*max_queued=*/4, /*inbox_capacity=*/4);
  NullWriter writer;
  link.Attach(&writer);
  const v1::TensorFrame sent = Activation(3, 1);
  grpc::ByteBuffer message = FrameMessage(sent);

  const absl::StatusOr<bool> read_on = link.DeliverMessage(&message, "upstream stage");
  ASSERT_TRUE(read_on.ok()) << read_on.status();
  EXPECT_EQ(message.Length(), 0u);  // Free for the next read.
  auto taken =
      link.inbox().Take(v1::FRAME_KIND_ACTIVATION, 3, 1, absl::Now() + absl::Seconds(10), nullptr);
  ASSERT_TRUE(taken.ok()) << taken.status();
  EXPECT_EQ(taken->SerializeAsString(), sent.SerializeAsString());
  EXPECT_TRUE(link.open());
}

TEST(FrameLinkTest, AMessageThatIsNotAFrameShutsTheLinkNamingThePeer) {
  FrameLink link(/*max_queued=*/4, /*inbox_capacity=*/4);
  NullWriter writer;
  link.Attach(&writer);
  // Field 1 as a length-delimited run of 255 bytes, of which none follow.
  const std::string truncated = "\x0a\xff\x01";
  grpc::Slice slice(truncated.data(), truncated.size());
  grpc::ByteBuffer message(&slice, 1);

  const absl::StatusOr<bool> read_on = link.DeliverMessage(&message, "upstream stage");
  ASSERT_FALSE(read_on.ok());
  EXPECT_EQ(read_on.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(read_on.status().message(), HasSubstr("upstream stage sent what is not a frame"));
  EXPECT_FALSE(link.open());
  // The executor's waits end with the same cause, not at their deadline.
  auto taken =
      link.inbox().Take(v1::FRAME_KIND_ACTIVATION, 0, 0, absl::Now() + absl::Seconds(60), nullptr);
  EXPECT_EQ(taken.status().code(), absl::StatusCode::kDataLoss) << taken.status();
  EXPECT_EQ(link.Send(Activation(0, 0), absl::Now() + absl::Seconds(60)).code(),
            absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace resbm
