#include "tools/bench_transport/shaped_relay.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace resbm {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kChunkBytes = 64 << 10;

absl::Status ErrnoError(const std::string& what) {
  return absl::UnavailableError(absl::StrCat("relay: ", what, ": ", std::strerror(errno)));
}

sockaddr_in Loopback(int port) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(static_cast<uint16_t>(port));
  return address;
}

bool WriteAll(int fd, const char* data, size_t size) {
  while (size > 0) {
    const ssize_t n = send(fd, data, size, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

// One direction of a relayed connection: a reader thread stamps each chunk with its arrival;
// a writer thread lets it onto the link once the link is free, holds it for the delay and
// writes it on. The link is a schedule, not a clock loop: chunk i leaves at
// max(arrival_i, free), occupies the link for size / rate, and arrives `delay` later.
class ShapedRelay::Direction {
 public:
  Direction(int in, int out, const Link& link)
      : in_(in),
        out_(out),
        bytes_per_second_(link.mbit_per_second * 1e6 / 8.0),
        delay_(std::chrono::duration_cast<Clock::duration>(
            std::chrono::duration<double, std::milli>(link.delay_ms))),
        capacity_(static_cast<int64_t>(bytes_per_second_ * link.delay_ms / 1000.0) +
                  link.queue_bytes) {
    reader_ = std::thread([this] { ReadLoop(); });
    writer_ = std::thread([this] { WriteLoop(); });
  }

  // The owner shuts the sockets down first, which ends a blocked read or write.
  ~Direction() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    changed_.notify_all();
    reader_.join();
    writer_.join();
  }

 private:
  struct Chunk {
    Clock::time_point arrival;
    std::string bytes;  // Empty: the sender closed its side.
  };

  void ReadLoop() {
    while (true) {
      std::string bytes(kChunkBytes, '\0');
      const ssize_t n = read(in_, bytes.data(), bytes.size());
      if (n < 0 && errno == EINTR) continue;
      bytes.resize(n > 0 ? static_cast<size_t>(n) : 0);
      std::unique_lock<std::mutex> lock(mu_);
      changed_.wait(lock, [&] { return stopping_ || queued_bytes_ < capacity_; });
      if (stopping_) return;
      queued_bytes_ += static_cast<int64_t>(bytes.size());
      queue_.push_back(Chunk{Clock::now(), std::move(bytes)});
      changed_.notify_all();
      if (n <= 0) return;
    }
  }

  void WriteLoop() {
    Clock::time_point link_free = Clock::now();
    while (true) {
      std::unique_lock<std::mutex> lock(mu_);
      changed_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      Chunk chunk = std::move(queue_.front());
      queue_.pop_front();
      const auto on_link =
          std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(
              static_cast<double>(chunk.bytes.size()) / bytes_per_second_));
      link_free = std::max(link_free, chunk.arrival) + on_link;
      // The delay is the link's, not a poll: the wait ends early only to stop.
      if (changed_.wait_until(lock, link_free + delay_, [&] { return stopping_; })) return;
      lock.unlock();
      if (chunk.bytes.empty()) {
        shutdown(out_, SHUT_WR);
        return;
      }
      const bool written = WriteAll(out_, chunk.bytes.data(), chunk.bytes.size());
      lock.lock();
      queued_bytes_ -= static_cast<int64_t>(chunk.bytes.size());
      changed_.notify_all();
      if (!written) return;
    }
  }

  const int in_;
  const int out_;
  const double bytes_per_second_;
  const Clock::duration delay_;
  const int64_t capacity_;
  std::mutex mu_;
  std::condition_variable changed_;
  bool stopping_ = false;     // Guarded by mu_.
  std::deque<Chunk> queue_;   // Guarded by mu_.
  int64_t queued_bytes_ = 0;  // Guarded by mu_: queued or on the link, not yet written.
  std::thread reader_;
  std::thread writer_;
};

absl::StatusOr<std::unique_ptr<ShapedRelay>> ShapedRelay::Start(int target_port, const Link& link) {
  if (!(link.mbit_per_second > 0.0) || link.delay_ms < 0.0 || link.queue_bytes < 1) {
    return absl::InvalidArgumentError(absl::StrCat("relay: rate ", link.mbit_per_second,
                                                   " Mbit/s and delay ", link.delay_ms,
                                                   " ms; expected a rate > 0 and a delay >= 0"));
  }
  const int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listener < 0) return ErrnoError("socket");
  sockaddr_in address = Loopback(0);
  socklen_t length = sizeof(address);
  auto* generic = reinterpret_cast<sockaddr*>(&address);
  if (bind(listener, generic, sizeof(address)) != 0 || listen(listener, 16) != 0 ||
      getsockname(listener, generic, &length) != 0) {
    const absl::Status error = ErrnoError("listen on 127.0.0.1:0");
    close(listener);
    return error;
  }
  return std::unique_ptr<ShapedRelay>(
      new ShapedRelay(listener, ntohs(address.sin_port), target_port, link));
}

ShapedRelay::ShapedRelay(int listener, int port, int target_port, const Link& link)
    : listener_(listener), port_(port), target_port_(target_port), link_(link) {
  acceptor_ = std::thread([this] { AcceptLoop(); });
}

ShapedRelay::~ShapedRelay() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    for (const int fd : sockets_) shutdown(fd, SHUT_RDWR);
  }
  shutdown(listener_, SHUT_RDWR);  // Ends the blocked accept.
  acceptor_.join();
  pumps_.clear();  // Joins their threads; the sockets are shut, so none is blocked.
  for (const int fd : sockets_) close(fd);
  close(listener_);
}

void ShapedRelay::AcceptLoop() {
  while (true) {
    const int client = accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return;  // Shut down.
    }
    const int target = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address = Loopback(target_port_);
    if (target < 0 ||
        connect(target, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
      if (target >= 0) close(target);
      close(client);  // The client sees its connection reset, as with a dead next hop.
      continue;
    }
    for (const int fd : {client, target}) {
      const int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    std::lock_guard<std::mutex> lock(mu_);
    sockets_.push_back(client);
    sockets_.push_back(target);
    if (stopping_) {
      shutdown(client, SHUT_RDWR);
      shutdown(target, SHUT_RDWR);
      return;
    }
    pumps_.push_back(std::make_unique<Direction>(client, target, link_));
    pumps_.push_back(std::make_unique<Direction>(target, client, link_));
  }
}

}  // namespace resbm
