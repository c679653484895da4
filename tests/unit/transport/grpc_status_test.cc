// ToGrpcStatus / FromGrpcStatus: codes, messages and payloads (the failure cause) survive.
#include "common/status/grpc_status.h"

#include "common/status/failure_cause.h"
#include "gtest/gtest.h"
#include "resbm/v1/status.pb.h"

namespace resbm {
namespace {

TEST(GrpcStatusTest, APayloadTravelsAsAnRpcStatusDetail) {
  const absl::Status lost =
      WithCause(absl::UnavailableError("worker is shutting down"), FailureCause::kWorkerLost);
  const grpc::Status wire = ToGrpcStatus(lost);
  EXPECT_EQ(wire.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(wire.error_message(), "worker is shutting down");
  // The details parse as google.rpc.Status would: code, message, one Any.
  v1::RpcStatus details;
  ASSERT_TRUE(details.ParseFromString(wire.error_details()));
  EXPECT_EQ(details.code(), 14);
  ASSERT_EQ(details.details_size(), 1);
  EXPECT_EQ(details.details(0).type_url(), kFailureCauseTypeUrl);
  EXPECT_EQ(details.details(0).value(), "FAILURE_CAUSE_WORKER_LOST");

  const absl::Status back = FromGrpcStatus(wire);
  EXPECT_EQ(back, lost);
  EXPECT_EQ(CauseOf(back), FailureCause::kWorkerLost);
}

TEST(GrpcStatusTest, AStatusWithoutPayloadsHasNoDetails) {
  const grpc::Status wire = ToGrpcStatus(absl::InvalidArgumentError("model.d_model: 7"));
  EXPECT_EQ(wire.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(wire.error_details().empty());
  EXPECT_EQ(CauseOf(FromGrpcStatus(wire)), std::nullopt);
  EXPECT_TRUE(FromGrpcStatus(grpc::Status::OK).ok());
}

TEST(GrpcStatusTest, DetailsThatDoNotParseAreDropped) {
  const absl::Status back =
      FromGrpcStatus(grpc::Status(grpc::StatusCode::ABORTED, "x", std::string("\xff\xff", 2)));
  EXPECT_EQ(back, absl::AbortedError("x"));
}

}  // namespace
}  // namespace resbm
