// RecoveryPolicy: what recovers, what fails at once, and the limit that progress resets;
// StatusOrException, which turns what escapes a worker's work into a status the policy reads.
#include "common/train/recovery_policy.h"

#include <stdexcept>

#include "absl/strings/match.h"
#include "common/status/exception_guard.h"
#include "common/status/failure_cause.h"
#include "common/status/non_finite.h"
#include "gtest/gtest.h"

namespace resbm {
namespace {

TEST(ClassifyFailureTest, TheCauseDecidesBeforeTheCode) {
  const absl::Status restarted =
      WithCause(absl::FailedPreconditionError("no stage assigned"), FailureCause::kWorkerLost);
  EXPECT_EQ(ClassifyFailure(restarted), FailureClass::kTransient);
  EXPECT_EQ(ClassifyFailure(
                WithCause(absl::FailedPreconditionError("frame.step: 7"), FailureCause::kLink)),
            FailureClass::kTransient);
  EXPECT_EQ(ClassifyFailure(NonFiniteError("the loss")), FailureClass::kNonFinite);
  EXPECT_EQ(ClassifyFailure(WithCause(absl::InternalError("matmul"), FailureCause::kModelError)),
            FailureClass::kOncePerStep);
}

TEST(ClassifyFailureTest, WithoutACauseTheCodeDecides) {
  for (const absl::Status& transient :
       {absl::UnavailableError("connection refused"), absl::DeadlineExceededError("step"),
        absl::AbortedError("x"), absl::CancelledError("x"), absl::ResourceExhaustedError("x"),
        absl::DataLossError("x"), absl::UnknownError("x")}) {
    EXPECT_EQ(ClassifyFailure(transient), FailureClass::kTransient) << transient;
  }
  EXPECT_EQ(ClassifyFailure(absl::InternalError("x")), FailureClass::kOncePerStep);
  for (const absl::Status& deterministic :
       {absl::InvalidArgumentError("x"), absl::FailedPreconditionError("x"),
        absl::OutOfRangeError("x"), absl::NotFoundError("x"), absl::PermissionDeniedError("x"),
        absl::UnauthenticatedError("x"), absl::UnimplementedError("x")}) {
    EXPECT_EQ(ClassifyFailure(deterministic), FailureClass::kDeterministic) << deterministic;
  }
}

TEST(RecoveryPolicyTest, ADeterministicFailureEndsTheRunAtOnceWithItsCause) {
  RecoveryPolicy policy({/*max_without_progress=*/5, /*retry_non_finite=*/false});
  const absl::Status refused =
      policy.Admit(WithCause(absl::InvalidArgumentError("stage 1: targets: 3 ids; expected 4"),
                             FailureCause::kUnspecified),
                   12);
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(refused.message(),
            "step 12: not recovered (INVALID_ARGUMENT is deterministic: a retry fails the same "
            "way): stage 1: targets: 3 ids; expected 4");
}

TEST(RecoveryPolicyTest, ProgressResetsTheLimitSoFaultsCanOutnumberIt) {
  RecoveryPolicy policy({/*max_without_progress=*/2, /*retry_non_finite=*/false});
  policy.CheckpointCompleted(0);
  const absl::Status lost = absl::UnavailableError("stage 2 (w3): connection refused");
  // Two faults between every pair of checkpoints, 30 times over: never over the limit.
  for (int64_t checkpoint = 50; checkpoint <= 1500; checkpoint += 50) {
    for (int i = 0; i < 2; ++i) {
      ASSERT_TRUE(policy.Admit(lost, checkpoint - 10).ok()) << checkpoint;
      policy.Recovered(lost, checkpoint - 10, checkpoint - 50);
    }
    EXPECT_EQ(policy.without_progress(), 2);
    EXPECT_TRUE(policy.CheckpointCompleted(checkpoint));
    EXPECT_EQ(policy.without_progress(), 0);
  }
  EXPECT_EQ(policy.recent().size(), RecoveryPolicy::kRecentLimit);
}

TEST(RecoveryPolicyTest, AStepRedoneInPlaceKeepsTheProgressButNotForever) {
  RecoveryPolicy policy({/*max_without_progress=*/2, /*retry_non_finite=*/false});
  policy.CheckpointCompleted(0);
  const absl::Status lost = absl::UnavailableError("stage 1 replica 1: socket closed");
  // A replica replaced and its step redone (resumed right before it), every few steps: each
  // kept the steps before it, so no checkpoint is needed to go on.
  for (int64_t step = 3; step <= 90; step += 3) {
    ASSERT_TRUE(policy.Admit(lost, step).ok()) << step;
    EXPECT_EQ(policy.Recovered(lost, step, step - 1).without_progress, 1);
  }
  // The same step failing again and again is no progress.
  EXPECT_EQ(policy.Recovered(lost, 90, 89).without_progress, 2);
  const absl::Status refused = policy.Admit(lost, 90);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.message().find("step 90: gave up after redoing this step 2 times"),
            std::string::npos)
      << refused;
  // A checkpoint restore counts as before.
  EXPECT_EQ(policy.Recovered(lost, 95, 0).without_progress, 3);
}

TEST(RecoveryPolicyTest, AReplayedCheckpointIsNotProgress) {
  RecoveryPolicy policy({/*max_without_progress=*/3, /*retry_non_finite=*/false});
  EXPECT_TRUE(policy.CheckpointCompleted(50));
  policy.Recovered(absl::UnavailableError("x"), 70, 50);
  EXPECT_FALSE(policy.CheckpointCompleted(50));
  EXPECT_EQ(policy.without_progress(), 1);
}

TEST(RecoveryPolicyTest, TheLimitSaysWhichLimitAndListsTheLastCauses) {
  RecoveryPolicy policy({/*max_without_progress=*/2, /*retry_non_finite=*/false});
  policy.CheckpointCompleted(100);
  const absl::Status lost =
      WithCause(absl::UnavailableError("stage 1: gone"), FailureCause::kWorkerLost);
  const absl::Status slow = absl::DeadlineExceededError("stage 3: step timeout");
  policy.Recovered(lost, 105, 100);
  policy.Recovered(slow, 103, 100);
  const absl::Status refused = policy.Admit(lost, 104);
  EXPECT_EQ(refused.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(refused.message(),
            "step 104: gave up after 2 recoveries since the last new checkpoint (after step "
            "100), the limit training.max_recoveries_without_progress = 2; earlier causes: step "
            "105 UNAVAILABLE (FAILURE_CAUSE_WORKER_LOST): stage 1: gone; step 103 "
            "DEADLINE_EXCEEDED: stage 3: step timeout; this one: stage 1: gone");
  EXPECT_EQ(CauseOf(refused), FailureCause::kWorkerLost);  // Context keeps the payload.
}

TEST(RecoveryPolicyTest, AModelErrorIsRetriedOnceOnTheSameStep) {
  RecoveryPolicy policy({/*max_without_progress=*/5, /*retry_non_finite=*/false});
  const absl::Status raised =
      WithCause(absl::InternalError("stage 2 forward: shape mismatch"), FailureCause::kModelError);
  ASSERT_TRUE(policy.Admit(raised, 7).ok());
  policy.Recovered(raised, 7, 4);
  EXPECT_TRUE(policy.Admit(raised, 9).ok());  // Another step: a fresh chance.
  const absl::Status again = policy.Admit(raised, 7);
  EXPECT_EQ(again.code(), absl::StatusCode::kInternal);
  EXPECT_TRUE(absl::StartsWith(again.message(), "step 7: not recovered (the same step failed"))
      << again;
}

TEST(RecoveryPolicyTest, NonFiniteValuesFollowThePolicy) {
  RecoveryPolicy fail({5, /*retry_non_finite=*/false});
  const absl::Status nan = NonFiniteError("the loss of step 3 is nan");
  EXPECT_EQ(fail.Admit(nan, 3), nan);
  RecoveryPolicy retry({5, /*retry_non_finite=*/true});
  EXPECT_TRUE(retry.Admit(nan, 3).ok());
}

TEST(StatusOrExceptionTest, AStatusPassesThrough) {
  EXPECT_TRUE(StatusOrException("step", [] { return absl::OkStatus(); }).ok());
  EXPECT_EQ(StatusOrException("step", [] { return absl::NotFoundError("x"); }),
            absl::NotFoundError("x"));
}

TEST(StatusOrExceptionTest, AnExceptionBecomesInternal) {
  const absl::Status thrown = StatusOrException("stage worker", []() -> absl::Status {
    throw std::out_of_range("vector::at");
  });
  EXPECT_EQ(thrown, absl::InternalError("stage worker: uncaught exception: vector::at"));
  const absl::Status odd = StatusOrException("stage worker", []() -> absl::Status { throw 7; });
  EXPECT_EQ(odd.code(), absl::StatusCode::kInternal);
}

}  // namespace
}  // namespace resbm
