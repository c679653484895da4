// The sender hands tensors to their link in the order given, framed with their headers and
// counted; a tensor with NaN or Inf fails the step with a status naming it and stops the
// step's sending until Reset; a link that does not drain runs into the step deadline.
#include "services/stage_worker/frame_sender.h"

#include <torch/torch.h>

#include <cmath>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "common/runtime/cancellation.h"
#include "common/status/non_finite.h"
#include "common/transport/frame_mailbox.h"
#include "common/wire/wire_codec.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace resbm {
namespace {

using ::testing::HasSubstr;

// Records every frame the link starts writing (parsed back from its raw message, as the
// receiving stage parses it); the test completes writes by hand.
class RecordingWriter : public FrameWriter {
 public:
  void StartFrameWrite(const grpc::ByteBuffer* message) override {
    absl::StatusOr<v1::TensorFrame> frame = ParseFrameMessage(*message);
    ASSERT_TRUE(frame.ok()) << frame.status();
    absl::MutexLock lock(&mu_);
    frames_.push_back(*std::move(frame));
  }
  std::vector<v1::TensorFrame> frames() const {
    absl::MutexLock lock(&mu_);
    return frames_;
  }

 private:
  mutable absl::Mutex mu_;
  std::vector<v1::TensorFrame> frames_;
};

class FrameSenderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    link_ = std::make_shared<FrameLink>(/*max_queued=*/16, /*inbox_capacity=*/4);
    link_->Attach(&writer_);
    transfer_ = *WireTransfer::Create("cpu");
  }

  FrameSender::Outgoing Item(int64_t microbatch, const torch::Tensor& x,
                             absl::Duration timeout = absl::Seconds(10)) {
    return FrameSender::Outgoing{link_,
                                 FrameHeader{"job", 3, microbatch, v1::FRAME_KIND_ACTIVATION},
                                 *transfer_->StartEncode(x, WireDtype::kFp32),
                                 /*peer_stage=*/1,
                                 /*bf16_reference_bytes=*/0,
                                 "the activation of microbatch " + std::to_string(microbatch),
                                 absl::Now() + timeout};
  }

  // A link that holds one frame: the second Send blocks until the first write is done.
  void UseANarrowLink() {
    link_ = std::make_shared<FrameLink>(/*max_queued=*/1, 4);
    link_->Attach(&writer_);
  }

  // On a narrow link: microbatch 0 is written (never completed), microbatch 1 then blocks
  // in the link until its deadline, 300 ms from now.
  void BlockTheLink(FrameSender& sender) {
    const auto x = torch::ones({2, 4});
    ASSERT_TRUE(sender.Send(Item(0, x, absl::Milliseconds(300))).ok());
    ASSERT_TRUE(sender.Send(Item(1, x, absl::Milliseconds(300))).ok());
  }

  // Completes the link's writes until `count` frames have been started.
  void Drain(size_t count) {
    while (writer_.frames().size() < count) link_->OnWriteDone(true);
  }

  RecordingWriter writer_;
  std::shared_ptr<FrameLink> link_;
  std::unique_ptr<WireTransfer> transfer_;
};

TEST_F(FrameSenderTest, SendsEveryTensorInOrderWithItsHeaderAndCountsBytes) {
  FrameSender sender(/*capacity=*/4, /*metrics=*/nullptr);
  std::vector<torch::Tensor> sent;
  for (int64_t mb = 0; mb < 3; ++mb) {
    sent.push_back(torch::full({2, 2, 4}, static_cast<float>(mb)));  // (B, T, k)
    ASSERT_TRUE(sender.Send(Item(mb, sent.back())).ok());
  }
  auto totals = sender.Flush(absl::Now() + absl::Seconds(10));
  ASSERT_TRUE(totals.ok()) << totals.status();
  EXPECT_EQ(totals->activation_bytes, 3u * 16 * 4);
  EXPECT_GT(totals->activation_overhead_bytes, 0u);
  EXPECT_EQ(totals->gradient_bytes, 0u);
  Drain(3);
  const auto frames = writer_.frames();
  for (int64_t mb = 0; mb < 3; ++mb) {
    EXPECT_EQ(frames[mb].microbatch(), static_cast<uint32_t>(mb));
    EXPECT_EQ(frames[mb].step(), 3u);
    EXPECT_EQ(frames[mb].payload(), WireCodec::Encode(sent[mb], WireDtype::kFp32)->payload);
  }
}

TEST_F(FrameSenderTest, ANonFiniteTensorFailsTheStepUntilReset) {
  FrameSender sender(4, nullptr);
  auto bad = torch::ones({2, 4});
  bad.index_put_({1, 1}, std::numeric_limits<float>::quiet_NaN());
  ASSERT_TRUE(sender.Send(Item(0, torch::ones({2, 4}))).ok());
  ASSERT_TRUE(sender.Send(Item(1, bad)).ok());
  auto flushed = sender.Flush(absl::Now() + absl::Seconds(10));
  ASSERT_FALSE(flushed.ok());
  EXPECT_TRUE(IsNonFiniteError(flushed.status())) << flushed.status();
  EXPECT_THAT(flushed.status().message(), HasSubstr("1 of 8 in the activation of microbatch 1"));
  EXPECT_TRUE(sender.failed());
  // The rest of the step goes nowhere.
  EXPECT_TRUE(IsNonFiniteError(sender.Send(Item(2, torch::ones({2, 4})))));
  sender.Reset();
  EXPECT_FALSE(sender.failed());
  ASSERT_TRUE(sender.Send(Item(3, torch::ones({2, 4}))).ok());
  EXPECT_TRUE(sender.Flush(absl::Now() + absl::Seconds(10)).ok());
  Drain(2);
  EXPECT_EQ(writer_.frames().size(), 2u) << "the NaN tensor and the one after it were sent";
  EXPECT_EQ(writer_.frames()[1].microbatch(), 3u);
}

TEST_F(FrameSenderTest, ALinkThatDoesNotDrainRunsIntoTheDeadline) {
  UseANarrowLink();
  FrameSender sender(/*capacity=*/1, nullptr);
  BlockTheLink(sender);
  // Until the link refuses microbatch 1 the sender is busy and its one slot may be taken.
  auto flushed = sender.Flush(absl::Now() + absl::Seconds(10));
  ASSERT_FALSE(flushed.ok());
  EXPECT_EQ(flushed.status().code(), absl::StatusCode::kDeadlineExceeded) << flushed.status();
  EXPECT_THAT(flushed.status().message(), HasSubstr("outbound queue full"));
}

TEST_F(FrameSenderTest, ResetWaitsForTheSendInFlightThenStartsAfresh) {
  UseANarrowLink();
  // One tensor waits for the sender at most: Send(2) returns only once the sender has taken
  // microbatch 1, so 1 is in flight when Reset comes (not still queued, where Reset would
  // drop it).
  FrameSender sender(/*capacity=*/1, nullptr);
  const auto x = torch::ones({2, 4});
  // Microbatch 0 is written (not completed); 1 is then in flight, blocked in the link until
  // there is room (its deadline is an hour away); 2 waits behind it in the sender's queue.
  ASSERT_TRUE(sender.Send(Item(0, x, absl::Hours(1))).ok());
  ASSERT_TRUE(sender.Send(Item(1, x, absl::Hours(1))).ok());
  ASSERT_TRUE(sender.Send(Item(2, x, absl::Hours(1))).ok());
  absl::Notification reset;
  std::thread aborting([&] {
    sender.Reset();  // An aborted step: drops microbatch 2, waits out microbatch 1's send.
    reset.Notify();
  });
  // Only room on the link ends the send in flight, so a Reset that does not wait for it
  // returns here. (A correct one never does: the wait is a stated bound, not a race.)
  EXPECT_FALSE(reset.WaitForNotificationWithTimeout(absl::Milliseconds(200)));
  Drain(1);
  link_->OnWriteDone(true);  // Microbatch 0 written: microbatch 1's send goes through.
  reset.WaitForNotification();
  aborting.join();
  EXPECT_FALSE(sender.failed());
  Drain(2);
  EXPECT_EQ(writer_.frames()[1].microbatch(), 1u) << "the send in flight was not cut";
  link_->OnWriteDone(true);
  ASSERT_TRUE(sender.Send(Item(5, x)).ok());
  auto totals = sender.Flush(absl::Now() + absl::Seconds(10));
  ASSERT_TRUE(totals.ok()) << totals.status();
  EXPECT_EQ(totals->activation_bytes, 8u * 4) << "only what was sent since the reset counts";
  Drain(3);
  EXPECT_EQ(writer_.frames()[2].microbatch(), 5u) << "microbatch 2 was dropped";
}

TEST_F(FrameSenderTest, FlushStopsWhenTheStepIsCancelled) {
  UseANarrowLink();
  FrameSender sender(4, nullptr);
  const auto x = torch::ones({2, 4});
  ASSERT_TRUE(sender.Send(Item(0, x, absl::Hours(1))).ok());
  ASSERT_TRUE(sender.Send(Item(1, x, absl::Hours(1))).ok());  // Blocks in the full link.
  Cancellation step;
  std::thread canceller([&] { step.Cancel(absl::CancelledError("the coordinator gave up")); });
  // Only the token can end this Flush: the link stays full and the deadline is an hour away.
  auto flushed = sender.Flush(absl::Now() + absl::Hours(1), &step);
  canceller.join();
  EXPECT_EQ(flushed.status().code(), absl::StatusCode::kCancelled) << flushed.status();
  EXPECT_EQ(flushed.status().message(), "the coordinator gave up");
  link_->Shutdown(absl::UnavailableError("test over"));  // Frees the blocked send.
}

TEST_F(FrameSenderTest, AFailedSendTripsTheStepsToken) {
  FrameSender sender(4, nullptr);
  auto step = std::make_shared<Cancellation>();
  sender.Reset(step);
  ASSERT_TRUE(sender.Send(Item(0, torch::full({2, 4}, std::nanf("")))).ok());
  // The executor waits for a frame of its neighbour; the refused tensor must end that wait.
  FrameMailbox inbox(4);
  inbox.BeginStep("job", 3, false);
  auto taken = inbox.Take(v1::FRAME_KIND_GRADIENT, 3, 0, absl::Now() + absl::Hours(1), step.get());
  ASSERT_FALSE(taken.ok());
  EXPECT_TRUE(IsNonFiniteError(taken.status())) << taken.status();
  EXPECT_THAT(taken.status().message(), HasSubstr("the activation of microbatch 0"));
  EXPECT_EQ(sender.Flush(absl::Now() + absl::Hours(1)).status(), taken.status());
}

}  // namespace
}  // namespace resbm
