#include "services/stage_worker/stage_worker.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>

#include "absl/strings/str_cat.h"
#include "common/model/compute_device.h"
#include "common/status/status_macros.h"
#include "common/transport/grpc_settings.h"

namespace resbm {

absl::StatusOr<std::unique_ptr<StageWorker>> StageWorker::Start(
    const StageWorkerOptions& given) {
  // A device this process cannot use is refused now, not at the first assignment.
  StageWorkerOptions options = given;
  auto device = ResolveComputeDevice("--device", given.session.device);
  if (!device.ok()) return device.status();
  options.session.device = *device;
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  auto registry = std::make_shared<prometheus::Registry>();
  auto metrics = std::make_unique<StageMetrics>(registry);
  StageSessionOptions session = options.session;
  session.metrics = metrics.get();
  session.channel_credentials = options.security.ChannelCredentials();
  auto service = std::make_unique<StageWorkerService>(session);
  std::unique_ptr<StageWorker> worker(
      new StageWorker(options, std::move(metrics), std::move(service)));
  worker->registry_ = std::move(registry);
  if (!options.metrics_address.empty()) {
    auto server = MetricsServer::Start(options.metrics_address, worker->registry_);
    if (!server.ok()) return server.status();
    worker->metrics_server_ = std::move(*server);
  }
  grpc::ServerBuilder builder;
  // Only the coordinator and the neighbouring stages call a worker: all hold certificates.
  builder.AddListeningPort(
      options.listen_address,
      options.security.ServerCredentials(TransportSecurity::ClientCertificates::kRequire),
      &worker->port_);
  builder.RegisterService(worker->service_.get());
  builder.SetMaxReceiveMessageSize(kMaxWorkerMessageBytes);
  RESBM_ASSIGN_OR_RETURN(worker->server_,
                         StartServer(builder, options.listen_address, worker->port_));
  if (!options.coordinator_address.empty()) {
    v1::RegisterWorkerRequest registration;
    registration.set_address(worker->address());
    registration.set_exchange_address(options.exchange_address);
    registration.set_device(options.session.device);
    worker->coordinator_client_ =
        std::make_unique<CoordinatorClient>(options.coordinator_address, std::move(registration),
                                            options.security.ChannelCredentials());
  }
  return worker;
}

StageWorker::StageWorker(const StageWorkerOptions& options, std::unique_ptr<StageMetrics> metrics,
                         std::unique_ptr<StageWorkerService> service)
    : options_(options), metrics_(std::move(metrics)), service_(std::move(service)) {}

StageWorker::~StageWorker() { Shutdown(absl::Now() + absl::Seconds(1)); }

std::string StageWorker::address() const {
  if (!options_.advertise_address.empty()) return options_.advertise_address;
  const std::string& listen = options_.listen_address;
  const std::string host = listen.substr(0, listen.rfind(':'));
  return absl::StrCat(host == "0.0.0.0" || host == "[::]" ? "127.0.0.1" : host, ":", port_);
}

void StageWorker::Shutdown(absl::Time deadline) {
  if (shut_down_ || server_ == nullptr) return;
  shut_down_ = true;
  coordinator_client_.reset();  // Stop heartbeating: the coordinator sees us leave.
  server_->GetHealthCheckService()->Shutdown();
  server_->Shutdown(absl::ToChronoTime(deadline));
  service_->Stop();
}

}  // namespace resbm
