#include "common/transport/grpc_settings.h"

#include <grpcpp/generic/generic_stub.h>

#include <memory>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace resbm {
namespace {

// One call whose completion callback frees everything, the channel included: what a reactor's
// OnDone does when it holds the last ClientContext of a channel its owner already dropped.
struct SelfFreeingCall {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<grpc::GenericStub> stub;
  grpc::ClientContext context;
  grpc::ByteBuffer request;
  grpc::ByteBuffer response;
};

// gRPC 1.51 runs callback completions on threads of a process-wide queue that channels and
// servers reference-count; dropping the last reference on one of those threads used to free
// the queue under that thread (a crash once in a few hundred pipeline tests).
TEST(GrpcSettingsTest, TheLastChannelMayBeFreedInsideItsOwnCallback) {
  for (int round = 0; round < 20; ++round) {
    auto* call = new SelfFreeingCall;
    call->channel = grpc::CreateCustomChannel("unix:/nonexistent/resbm-test.sock",
                                              grpc::InsecureChannelCredentials(),
                                              PeerChannelArguments());
    call->stub = std::make_unique<grpc::GenericStub>(call->channel);
    grpc::Slice no_bytes("", 0);  // An empty message; a ByteBuffer without a slice is none.
    call->request = grpc::ByteBuffer(&no_bytes, 1);
    call->context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Milliseconds(20)));
    absl::Notification done;
    grpc::Status status;
    call->stub->UnaryCall(&call->context, "/grpc.health.v1.Health/Check", grpc::StubOptions(),
                          &call->request, &call->response, [call, &done, &status](grpc::Status s) {
                            status = std::move(s);
                            delete call;
                            done.Notify();
                          });
    done.WaitForNotification();
    EXPECT_FALSE(status.ok());  // Nothing listens there.
  }
}

}  // namespace
}  // namespace resbm
