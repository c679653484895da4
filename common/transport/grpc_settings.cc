#include "common/transport/grpc_settings.h"

#include <grpcpp/generic/generic_stub.h>

#include <chrono>

#include "absl/strings/str_cat.h"

namespace resbm {
namespace {

// gRPC 1.51 on Linux runs every callback-API completion on threads of one process-wide queue,
// reference-counted by the channels and servers that use it. When the last reference goes on
// one of those threads (a reactor's OnDone freeing the last ClientContext, which holds its
// Channel), the queue joins that very thread, which cannot work, and frees itself under it:
// "ref_counted.h: prior > 0" or a segfault in grpc_completion_queue_next. One channel that
// lives as long as the process and has started a callback call holds a reference for good.
void HoldCallbackQueue() {
  static const bool held = [] {
    struct Holder {
      std::shared_ptr<grpc::Channel> channel = grpc::CreateChannel(
          "unix:/nonexistent/resbm-callback-queue-holder", grpc::InsecureChannelCredentials());
      grpc::GenericStub stub{channel};
      grpc::ClientContext context;
      grpc::Slice no_bytes{"", 0};
      grpc::ByteBuffer request{&no_bytes, 1};
      grpc::ByteBuffer response;
    };
    auto* holder = new Holder;  // Never freed: that is its purpose.
    holder->context.set_deadline(std::chrono::system_clock::now());
    holder->stub.UnaryCall(&holder->context, "/resbm.hold/Hold", grpc::StubOptions(),
                           &holder->request, &holder->response, [](grpc::Status) {});
    return true;
  }();
  (void)held;
}

}  // namespace

grpc::ChannelArguments PeerChannelArguments() {
  HoldCallbackQueue();
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  // HTTP/2 windows are left to gRPC's BDP probe (on by default): it fills 80 Mbit/s and
  // 1 Gbit/s links at 100 ms RTT, where a fixed window would fit one link only
  // (bench_transport --link_mbit; docs/BENCHMARKS.md). Never turn it off here.
  return args;
}

absl::StatusOr<std::unique_ptr<grpc::Server>> StartServer(grpc::ServerBuilder& builder,
                                                          const std::string& listen_address,
                                                          const int& bound_port) {
  HoldCallbackQueue();
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  // Clients ping every 10 s; a server that allowed less would answer them with GOAWAY.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 5000);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || bound_port == 0) {
    return absl::UnavailableError(
        absl::StrCat("listen_address: cannot listen on '", listen_address, "'"));
  }
  return server;
}

}  // namespace resbm
