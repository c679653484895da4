// The mailbox's step window: which frames it holds, which it refuses, and which step a
// refusal fails; and its byte budget: when the reader pauses and what resumes it.
#include "common/transport/frame_mailbox.h"

#include <thread>

#include "absl/synchronization/notification.h"
#include "common/runtime/cancellation.h"
#include "gtest/gtest.h"

namespace resbm {
namespace {

v1::TensorFrame Frame(const std::string& job, int64_t step, int64_t microbatch,
                      v1::FrameKind kind = v1::FRAME_KIND_ACTIVATION, size_t payload = 0) {
  v1::TensorFrame frame;
  frame.set_payload(std::string(payload, 'x'));
  frame.set_job_id(job);
  frame.set_step(static_cast<uint64_t>(step));
  frame.set_microbatch(static_cast<uint32_t>(microbatch));
  frame.set_kind(kind);
  return frame;
}

absl::StatusOr<v1::TensorFrame> TakeNow(FrameMailbox& mailbox, int64_t step, int64_t microbatch,
                                        v1::FrameKind kind = v1::FRAME_KIND_ACTIVATION) {
  return mailbox.Take(kind, step, microbatch, absl::Now() + absl::Milliseconds(50), nullptr);
}

// After a recovery a fresh link's first step is the one after the checkpoint, and the sender
// can be on it before the receiver begins it.
TEST(FrameMailboxTest, HoldsAnyStepBeforeTheFirstStepBegins) {
  FrameMailbox mailbox(8);
  mailbox.Deliver(Frame("job-1", 291, 0));
  mailbox.Deliver(Frame("job-1", 291, 1));
  mailbox.BeginStep("job-1", 291, /*evaluation=*/false);
  EXPECT_TRUE(TakeNow(mailbox, 291, 0).ok());
  EXPECT_TRUE(TakeNow(mailbox, 291, 1).ok());
}

// What was held is checked when the first step begins: a frame too far ahead or of another
// job fails that step; an earlier step's frame is dropped.
TEST(FrameMailboxTest, ChecksHeldFramesWhenTheFirstStepBegins) {
  FrameMailbox ahead(8);
  ahead.Deliver(Frame("job-1", 7, 0));
  ahead.BeginStep("job-1", 0, false);
  auto refused = TakeNow(ahead, 0, 0);
  EXPECT_NE(refused.status().message().find("frame.step: 7; expected 0 (or 1)"), std::string::npos)
      << refused.status();

  FrameMailbox intruder(8);
  intruder.Deliver(Frame("intruder", 0, 0));
  intruder.BeginStep("job-1", 0, false);
  EXPECT_NE(TakeNow(intruder, 0, 0).status().message().find("frame.job_id: 'intruder'"),
            std::string::npos);

  FrameMailbox stale(8);
  stale.Deliver(Frame("job-1", 3, 0));
  stale.BeginStep("job-1", 5, false);
  EXPECT_EQ(stale.size(), 0);
  EXPECT_EQ(TakeNow(stale, 5, 0).status().code(), absl::StatusCode::kDeadlineExceeded);
}

TEST(FrameMailboxTest, AcceptsThisStepAndTheNextOnly) {
  FrameMailbox mailbox(8);
  mailbox.BeginStep("job-1", 10, false);
  mailbox.Deliver(Frame("job-1", 11, 0));
  EXPECT_TRUE(mailbox.size() == 1);
  mailbox.Deliver(Frame("job-1", 13, 0));
  auto refused = TakeNow(mailbox, 10, 0);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("frame.step: 13; expected 10 (or 11)"),
            std::string::npos)
      << refused.status();
  // The refusal belonged to step 10: step 11 starts clean, with its early frame kept.
  mailbox.BeginStep("job-1", 11, false);
  EXPECT_TRUE(TakeNow(mailbox, 11, 0).ok());
}

TEST(FrameMailboxTest, ARefusalBeforeAnyStepFailsTheFirstStepOnly) {
  FrameMailbox mailbox(1);
  mailbox.Deliver(Frame("job-1", 40, 0));
  mailbox.Deliver(Frame("job-1", 40, 1));  // Over capacity: refused.
  mailbox.BeginStep("job-1", 40, false);
  EXPECT_EQ(TakeNow(mailbox, 40, 0).status().code(), absl::StatusCode::kResourceExhausted);
  mailbox.Clear();  // The step aborts.
  mailbox.BeginStep("job-1", 41, false);
  mailbox.Deliver(Frame("job-1", 41, 0));
  EXPECT_TRUE(TakeNow(mailbox, 41, 0).ok());
}

TEST(FrameMailboxTest, RefusesDuplicatesAndOtherJobs) {
  FrameMailbox mailbox(8);
  mailbox.BeginStep("job-1", 0, false);
  mailbox.Deliver(Frame("job-1", 0, 0));
  mailbox.Deliver(Frame("job-1", 0, 0));
  EXPECT_EQ(TakeNow(mailbox, 0, 1).status().code(), absl::StatusCode::kInvalidArgument);
  mailbox.Clear();
  mailbox.Deliver(Frame("job-2", 0, 0));
  auto other = TakeNow(mailbox, 0, 0);
  EXPECT_NE(other.status().message().find("frame.job_id: 'job-2'; expected 'job-1'"),
            std::string::npos)
      << other.status();
}

TEST(FrameMailboxTest, EvaluationFramesHaveTheirOwnWindow) {
  FrameMailbox mailbox(8);
  mailbox.BeginStep("job-1", 500, false);
  mailbox.Deliver(Frame("job-1", 3, 0, v1::FRAME_KIND_EVAL_ACTIVATION));
  mailbox.BeginStep("job-1", 3, true);
  EXPECT_TRUE(TakeNow(mailbox, 3, 0, v1::FRAME_KIND_EVAL_ACTIVATION).ok());
}

TEST(FrameMailboxTest, ClosedFailsEveryWaitUntilReopened) {
  FrameMailbox mailbox(8);
  mailbox.Close(absl::UnavailableError("link gone"));
  EXPECT_EQ(TakeNow(mailbox, 0, 0).status().message(), "link gone");
  mailbox.Reopen();
  mailbox.Deliver(Frame("job-1", 0, 0));
  EXPECT_TRUE(TakeNow(mailbox, 0, 0).ok());
}

TEST(FrameMailboxTest, TimesOutAndCancels) {
  FrameMailbox mailbox(8);
  mailbox.BeginStep("job-1", 0, false);
  EXPECT_EQ(TakeNow(mailbox, 0, 0).status().code(), absl::StatusCode::kDeadlineExceeded);
  Cancellation tripped;
  tripped.Cancel(absl::CancelledError("stopped before"));
  auto cancelled =
      mailbox.Take(v1::FRAME_KIND_ACTIVATION, 0, 0, absl::Now() + absl::Seconds(30), &tripped);
  EXPECT_EQ(cancelled.status().message(), "stopped before");
}

// The token wakes a sleeping Take at once: with a deadline of an hour, only the wake-up can
// end this wait (a lost one hangs the test until ctest's timeout).
TEST(FrameMailboxTest, ACancelWakesASleepingTake) {
  FrameMailbox mailbox(8);
  mailbox.BeginStep("job-1", 0, false);
  Cancellation cancel;
  absl::Notification taking;
  std::thread canceller([&] {
    taking.WaitForNotification();
    cancel.Cancel(absl::UnavailableError("stage 2's link failed"));
  });
  taking.Notify();
  auto taken = mailbox.Take(v1::FRAME_KIND_ACTIVATION, 0, 0, absl::Now() + absl::Hours(1), &cancel);
  canceller.join();
  EXPECT_EQ(taken.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(taken.status().message(), "stage 2's link failed");
}

// Frames of 1000 payload bytes against a budget of 2500: the third one reaches it.
TEST(FrameMailboxBudgetTest, PausesAtTheBudgetAndResumesWhenATakeFreesRoom) {
  FrameMailbox mailbox(100);
  int resumed = 0;
  mailbox.SetOnRoom([&] { ++resumed; });
  mailbox.SetByteBudget(2500);
  int64_t bytes[3];
  for (int mb = 0; mb < 3; ++mb) {
    v1::TensorFrame frame = Frame("job-1", 0, mb, v1::FRAME_KIND_ACTIVATION, 1000);
    bytes[mb] = static_cast<int64_t>(frame.ByteSizeLong());
    EXPECT_EQ(mailbox.Deliver(std::move(frame)), mb < 2) << "microbatch " << mb;
  }
  EXPECT_EQ(mailbox.held_bytes(), bytes[0] + bytes[1] + bytes[2]);
  EXPECT_EQ(mailbox.pauses(), 1);
  EXPECT_EQ(resumed, 0);

  mailbox.BeginStep("job-1", 0, false);  // Drops nothing: no room yet.
  EXPECT_EQ(resumed, 0);
  ASSERT_TRUE(TakeNow(mailbox, 0, 2).ok());  // 2 frames left: below the budget.
  EXPECT_EQ(resumed, 1);
  ASSERT_TRUE(TakeNow(mailbox, 0, 1).ok());  // Not paused any more: no second call.
  EXPECT_EQ(resumed, 1);
  EXPECT_EQ(mailbox.held_bytes(), bytes[0]);
}

TEST(FrameMailboxBudgetTest, ABudgetOfZeroHoldsOneFrameAtATime) {
  FrameMailbox mailbox(100);
  int resumed = 0;
  mailbox.SetOnRoom([&] { ++resumed; });
  EXPECT_FALSE(mailbox.Deliver(Frame("job-1", 0, 0)));
  mailbox.SetByteBudget(1 << 20);  // The assignment's budget arrives: read on.
  EXPECT_EQ(resumed, 1);
  EXPECT_TRUE(mailbox.Deliver(Frame("job-1", 0, 1)));
}

TEST(FrameMailboxBudgetTest, ClearingOrClosingResumesAPausedReader) {
  FrameMailbox mailbox(100);
  int resumed = 0;
  mailbox.SetOnRoom([&] { ++resumed; });
  mailbox.SetByteBudget(100);
  EXPECT_FALSE(mailbox.Deliver(Frame("job-1", 0, 0, v1::FRAME_KIND_ACTIVATION, 200)));
  mailbox.Clear();  // An aborted step.
  EXPECT_EQ(resumed, 1);
  EXPECT_EQ(mailbox.held_bytes(), 0);

  EXPECT_FALSE(mailbox.Deliver(Frame("job-1", 0, 0, v1::FRAME_KIND_ACTIVATION, 200)));
  mailbox.Close(absl::UnavailableError("gone"));  // The reader reads on to the stream's end.
  EXPECT_EQ(resumed, 2);
  EXPECT_TRUE(mailbox.Deliver(Frame("job-1", 0, 1, v1::FRAME_KIND_ACTIVATION, 200)));
  EXPECT_EQ(mailbox.held_bytes(), 0);
}

TEST(FrameMailboxBudgetTest, StaleFramesDroppedByANewStepFreeTheirBytes) {
  FrameMailbox mailbox(100);
  int resumed = 0;
  mailbox.SetOnRoom([&] { ++resumed; });
  mailbox.SetByteBudget(1500);
  EXPECT_TRUE(mailbox.Deliver(Frame("job-1", 4, 0, v1::FRAME_KIND_ACTIVATION, 1000)));
  EXPECT_FALSE(mailbox.Deliver(Frame("job-1", 5, 0, v1::FRAME_KIND_ACTIVATION, 1000)));
  mailbox.BeginStep("job-1", 5, false);  // Step 4's frame is stale.
  EXPECT_EQ(resumed, 1);
  EXPECT_EQ(mailbox.size(), 1);
  // A refused frame (a duplicate) holds nothing.
  EXPECT_TRUE(mailbox.Deliver(Frame("job-1", 5, 0, v1::FRAME_KIND_ACTIVATION, 1000)));
  EXPECT_EQ(mailbox.size(), 1);
}

}  // namespace
}  // namespace resbm
