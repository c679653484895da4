#include "services/coordinator/coordinator.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>

#include "absl/strings/str_cat.h"
#include "common/status/status_macros.h"
#include "services/coordinator/distributed_backend.h"
#include "services/coordinator/pipeline_driver.h"

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
                                               const TrainerOptions& options) {
  const int64_t stages = options.config.stages().num_stages();
  RESBM_ASSIGN_OR_RETURN(auto workers,
                         registry_.WaitForHealthy(stages, absl::Now() + options_.worker_wait));
  std::vector<std::string> addresses;
  for (int64_t s = 0; s < stages; ++s) addresses.push_back(workers[s].address);
  RESBM_ASSIGN_OR_RETURN(auto driver, PipelineDriver::Create(job_id, options.config, addresses));
  RESBM_ASSIGN_OR_RETURN(int64_t parameters, driver->Assign());
  if (options.progress != nullptr) {
    std::fprintf(options.progress, "coordinator: %lld stages assigned (%lld parameters):",
                 static_cast<long long>(stages), static_cast<long long>(parameters));
    for (int64_t s = 0; s < stages; ++s) {
      std::fprintf(options.progress, " %lld=%s", static_cast<long long>(s), addresses[s].c_str());
    }
    std::fprintf(options.progress, "\n");
  }
  auto backend = std::make_unique<DistributedBackend>(std::move(driver), stages);
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
