// bench_transport's link emulator: bytes cross intact and in order, end-of-stream passes
// through, and the link's delay and rate hold. Only lower bounds on time are checked (a loaded
// machine can make a transfer slower than the link, never faster).
#include "tools/bench_transport/shaped_relay.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

#include "gtest/gtest.h"

namespace resbm {
namespace {

using Clock = std::chrono::steady_clock;

// A listening socket on 127.0.0.1:0 whose one connection is echoed until end-of-stream.
class EchoServer {
 public:
  EchoServer() {
    listener_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof(address);
    auto* generic = reinterpret_cast<sockaddr*>(&address);
    EXPECT_EQ(bind(listener_, generic, sizeof(address)), 0);
    EXPECT_EQ(listen(listener_, 1), 0);
    EXPECT_EQ(getsockname(listener_, generic, &length), 0);
    port_ = ntohs(address.sin_port);
    echo_ = std::thread([this] {
      const int fd = accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) return;
      char buffer[4096];
      ssize_t n;
      while ((n = read(fd, buffer, sizeof(buffer))) > 0) {
        if (send(fd, buffer, static_cast<size_t>(n), MSG_NOSIGNAL) != n) break;
      }
      close(fd);
    });
  }
  ~EchoServer() {
    shutdown(listener_, SHUT_RDWR);
    echo_.join();
    close(listener_);
  }
  int port() const { return port_; }

 private:
  int listener_ = -1;
  int port_ = 0;
  std::thread echo_;
};

int Connect(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(static_cast<uint16_t>(port));
  EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  return fd;
}

// Sends `data`, closes the sending side and reads the echo back until end-of-stream.
std::string EchoThrough(int port, const std::string& data) {
  const int fd = Connect(port);
  std::thread writer([&] {
    EXPECT_EQ(send(fd, data.data(), data.size(), MSG_NOSIGNAL), static_cast<ssize_t>(data.size()));
    shutdown(fd, SHUT_WR);
  });
  std::string echoed;
  char buffer[4096];
  ssize_t n;
  while ((n = read(fd, buffer, sizeof(buffer))) > 0) echoed.append(buffer, static_cast<size_t>(n));
  writer.join();
  close(fd);
  return echoed;
}

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

TEST(ShapedRelayTest, OneByteTakesTheRoundTrip) {
  EchoServer echo;
  auto relay = ShapedRelay::Start(echo.port(), ShapedRelay::Link{1000.0, 40.0});
  ASSERT_TRUE(relay.ok()) << relay.status();
  const auto start = Clock::now();
  EXPECT_EQ(EchoThrough((*relay)->port(), "x"), "x");
  EXPECT_GE(SecondsSince(start), 0.080);  // 2 x 40 ms.
}

TEST(ShapedRelayTest, BytesCrossIntactAtTheLinkRate) {
  EchoServer echo;
  // 8 Mbit/s: 1 MB/s each way, 10 ms one way.
  auto relay = ShapedRelay::Start(echo.port(), ShapedRelay::Link{8.0, 10.0});
  ASSERT_TRUE(relay.ok()) << relay.status();
  std::string data(300'000, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 131 + i / 7);
  const auto start = Clock::now();
  EXPECT_EQ(EchoThrough((*relay)->port(), data), data);
  // 0.3 s on the link one way (the echo overlaps it) plus a round trip.
  EXPECT_GE(SecondsSince(start), 0.300 + 0.020);
}

TEST(ShapedRelayTest, RefusesALinkWithoutRate) {
  auto relay = ShapedRelay::Start(1, ShapedRelay::Link{0.0, 10.0});
  ASSERT_FALSE(relay.ok());
  EXPECT_EQ(relay.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(relay.status().message().find("rate 0"), std::string::npos) << relay.status();
}

}  // namespace
}  // namespace resbm
