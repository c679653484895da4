// MetricsServer: serves a prometheus::Registry as Prometheus text at GET /metrics (and "ok" at
// /healthz) over plain HTTP/1.1, one short connection at a time on its own thread. It replaces
// prometheus-cpp's civetweb Exposer, whose 100 KiB thread stacks cannot start next to
// LibTorch + OpenBLAS (their static TLS does not fit; see NOTES-deps.md): this thread is an
// ordinary std::thread with the default stack. Scrapes are rare and small, so serial
// handling with short socket timeouts is enough. Thread-safe.
#ifndef RESBM_COMMON_METRICS_METRICS_SERVER_H_
#define RESBM_COMMON_METRICS_METRICS_SERVER_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "prometheus/registry.h"

namespace resbm {

class MetricsServer {
 public:
  // Listens on `address` ("host:port"; port 0 picks a free one). `before_collect` (may be
  // empty) runs before each scrape, on the server's thread, to refresh gauges.
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(
      const std::string& address, std::shared_ptr<prometheus::Registry> registry,
      std::function<void()> before_collect = nullptr);
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  int port() const { return port_; }

 private:
  MetricsServer(int listen_fd, int port, std::shared_ptr<prometheus::Registry> registry,
                std::function<void()> before_collect);
  void Serve();
  void Handle(int fd);

  const int listen_fd_;
  const int port_;
  int wake_[2] = {-1, -1};  // Self-pipe: a write ends Serve().
  std::shared_ptr<prometheus::Registry> registry_;
  std::function<void()> before_collect_;
  std::thread thread_;
};

}  // namespace resbm

#endif  // RESBM_COMMON_METRICS_METRICS_SERVER_H_
