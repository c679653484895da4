// The gRPC settings every ResBM service and client shares, in one place so that benchmarks
// measure exactly what the services run: keepalives that notice a vanished peer in seconds,
// and message-size limits sized for tensor frames.
#ifndef RESBM_COMMON_TRANSPORT_GRPC_SETTINGS_H_
#define RESBM_COMMON_TRANSPORT_GRPC_SETTINGS_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace resbm {

// A stage worker's bound on one received message. Frames are checked against the stage
// assignment before anything is allocated; this only bounds a hostile message.
inline constexpr int kMaxWorkerMessageBytes = 512 << 20;

// Client channels (to the coordinator, to a stage worker, to the next stage): keepalive pings
// every 10 s, a peer silent 5 s after a ping is gone; no bound on what the peer sends back
// (the caller checks it). Also keeps gRPC's callback threads alive for the process (see the
// .cc), as StartServer does: a channel or server made without either may crash on release.
grpc::ChannelArguments PeerChannelArguments();

// Server side: starts `builder`'s server accepting those keepalive pings, also between calls.
// `bound_port` is the int given to AddListeningPort for `listen_address` (BuildAndStart
// fills it in); UNAVAILABLE, naming the address, when nothing could listen there.
absl::StatusOr<std::unique_ptr<grpc::Server>> StartServer(grpc::ServerBuilder& builder,
                                                          const std::string& listen_address,
                                                          const int& bound_port);

}  // namespace resbm

#endif  // RESBM_COMMON_TRANSPORT_GRPC_SETTINGS_H_
