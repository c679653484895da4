#include "services/coordinator/coordinator.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>

#include "absl/strings/str_cat.h"
#include "common/status/status_macros.h"
#include "services/coordinator/distributed_backend.h"

namespace resbm {

absl::StatusOr<std::unique_ptr<Coordinator>> Coordinator::Start(const CoordinatorOptions& options) {
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  std::unique_ptr<Coordinator> coordinator(new Coordinator(options));
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.listen_address, grpc::InsecureServerCredentials(),
                           &coordinator->port_);
  builder.RegisterService(&coordinator->control_);
  coordinator->server_ = builder.BuildAndStart();
  if (coordinator->server_ == nullptr || coordinator->port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("listen_address: cannot listen on '", options.listen_address, "'"));
  }
  return coordinator;
}

Coordinator::Coordinator(const CoordinatorOptions& options)
    : options_(options),
      registry_(options.heartbeat_timeout),
      control_(&registry_, options.heartbeat_interval) {}

Coordinator::~Coordinator() { Shutdown(absl::Now() + absl::Seconds(1)); }

absl::StatusOr<RunSummary> Coordinator::RunJob(const std::string& job_id,
                                               const TrainerOptions& options,
                                               const std::string& checkpoint_dir) {
  DistributedBackendOptions backend_options;
  backend_options.job_id = job_id;
  backend_options.config = options.config;
  backend_options.checkpoint_dir = checkpoint_dir;
  backend_options.find_workers = [this](int64_t count) -> absl::StatusOr<std::vector<std::string>> {
    RESBM_ASSIGN_OR_RETURN(auto workers,
                           registry_.WaitForHealthy(count, absl::Now() + options_.worker_wait));
    std::vector<std::string> addresses;
    for (const auto& worker : workers) addresses.push_back(worker.address);
    return addresses;
  };
  RESBM_ASSIGN_OR_RETURN(auto backend, DistributedBackend::Create(backend_options));
  if (options.progress != nullptr) {
    std::fprintf(options.progress, "coordinator: %lld stages assigned (%lld parameters):",
                 static_cast<long long>(backend->num_stages()),
                 static_cast<long long>(backend->parameters()));
    for (size_t s = 0; s < backend->addresses().size(); ++s) {
      std::fprintf(options.progress, " %zu=%s", s, backend->addresses()[s].c_str());
    }
    std::fprintf(options.progress, "\n");
    std::fflush(options.progress);
  }
  RESBM_ASSIGN_OR_RETURN(auto trainer, Trainer::Create(options, std::move(backend)));
  return trainer->Run();
}

void Coordinator::Shutdown(absl::Time deadline) {
  if (shut_down_ || server_ == nullptr) return;
  shut_down_ = true;
  server_->GetHealthCheckService()->Shutdown();
  server_->Shutdown(absl::ToChronoTime(deadline));
}

}  // namespace resbm
