// StageWorker: the stage worker process's server: the StageWorker service, gRPC health
// checking and reflection, on one listening port (port 0 picks a free one). Construction is
// by Create; Start/Shutdown(deadline). Thread-safe.
#ifndef RESBM_SERVICES_STAGE_WORKER_STAGE_WORKER_H_
#define RESBM_SERVICES_STAGE_WORKER_STAGE_WORKER_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/metrics/metrics_server.h"
#include "common/transport/transport_security.h"
#include "services/stage_worker/coordinator_client.h"
#include "services/stage_worker/stage_metrics.h"
#include "services/stage_worker/stage_session.h"
#include "services/stage_worker/stage_worker_service.h"

namespace resbm {

struct StageWorkerOptions {
  // host:port to listen on; port 0 picks a free port (see port()).
  std::string listen_address = "127.0.0.1:0";
  StageSessionOptions session;
  // host:port of the coordinator's Control service; empty: do not register (tests that
  // drive the worker directly).
  std::string coordinator_address;
  // host:port the coordinator and the previous stage reach this worker at (a Kubernetes pod's
  // DNS name, a public address behind NAT). Empty: the listen address (0.0.0.0 and [::] as
  // 127.0.0.1) with the bound port.
  std::string advertise_address;
  // host:port the previous stage opens its Exchange stream to, when peers reach this worker
  // another way than the coordinator does (a data network, a relay). Empty: the address above.
  std::string exchange_address;
  // host:port of the Prometheus /metrics endpoint; empty: none.
  std::string metrics_address;
  // TLS on the service (callers must present a certificate from the CA), on the stream to the
  // next stage and towards the coordinator; or plaintext (the default here for in-process
  // use; the binary asks for it explicitly with --plaintext).
  TransportSecurity security = TransportSecurity::Plaintext();
};

class StageWorker {
 public:
  // Binds the port and starts serving.
  static absl::StatusOr<std::unique_ptr<StageWorker>> Start(const StageWorkerOptions& options);
  ~StageWorker();  // Shutdown with a short deadline.
  StageWorker(const StageWorker&) = delete;
  StageWorker& operator=(const StageWorker&) = delete;

  int port() const { return port_; }
  // Port of /metrics; 0 without one.
  int metrics_port() const { return metrics_server_ ? metrics_server_->port() : 0; }
  // host:port a neighbour or the coordinator dials.
  std::string address() const;

  // Health goes NOT_SERVING, calls in flight get until `deadline`, the executor joins.
  void Shutdown(absl::Time deadline);
  void Wait() { server_->Wait(); }

 private:
  StageWorker(const StageWorkerOptions& options, std::unique_ptr<StageMetrics> metrics,
              std::unique_ptr<StageWorkerService> service);

  StageWorkerOptions options_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<StageMetrics> metrics_;  // Outlives the service, which reports to it.
  std::unique_ptr<MetricsServer> metrics_server_;
  std::unique_ptr<StageWorkerService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<CoordinatorClient> coordinator_client_;  // Null without a coordinator.
  int port_ = 0;
  bool shut_down_ = false;
};

}  // namespace resbm

#endif  // RESBM_SERVICES_STAGE_WORKER_STAGE_WORKER_H_
