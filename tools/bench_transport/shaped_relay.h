// ShapedRelay: a TCP forwarder on 127.0.0.1 that makes a loopback connection behave like a long
// fat link, so bench_transport can measure HTTP/2's flow control where it matters: every byte
// crosses at a fixed rate, then arrives a fixed one-way delay later, in each direction. The
// connection is split at the relay (each side's TCP sees loopback), so the link bounds what
// the application protocol can keep in flight (HTTP/2 windows, acks), as the
// bandwidth-delay product of a real link would; it does not model the kernel's own TCP on it.
#ifndef RESBM_TOOLS_BENCH_TRANSPORT_SHAPED_RELAY_H_
#define RESBM_TOOLS_BENCH_TRANSPORT_SHAPED_RELAY_H_

#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"

namespace resbm {

class ShapedRelay {
 public:
  struct Link {
    double mbit_per_second = 80.0;
    double delay_ms = 50.0;  // One way: the round trip is twice this.
    // Bytes a direction holds beyond those in flight (rate x delay) before it stops reading:
    // the link's queue. Senders then wait on their own socket buffers, as on a full link.
    int64_t queue_bytes = int64_t{1} << 20;
  };

  // Listens on 127.0.0.1:0 and relays every connection to 127.0.0.1:`target_port`.
  static absl::StatusOr<std::unique_ptr<ShapedRelay>> Start(int target_port, const Link& link);

  ShapedRelay(const ShapedRelay&) = delete;
  ShapedRelay& operator=(const ShapedRelay&) = delete;
  // Stops accepting, shuts every relayed connection down and joins its threads.
  ~ShapedRelay();

  int port() const { return port_; }

 private:
  class Direction;

  ShapedRelay(int listener, int port, int target_port, const Link& link);
  void AcceptLoop();

  const int listener_;
  const int port_;
  const int target_port_;
  const Link link_;
  std::thread acceptor_;
  std::mutex mu_;
  bool stopping_ = false;                          // Guarded by mu_.
  std::vector<std::unique_ptr<Direction>> pumps_;  // Guarded by mu_.
  std::vector<int> sockets_;                       // Guarded by mu_; closed by the destructor.
};

}  // namespace resbm

#endif  // RESBM_TOOLS_BENCH_TRANSPORT_SHAPED_RELAY_H_
