// Coordinator: the coordinator process's server (the Control service for workers, gRPC
// health and reflection) and the job runner: waits for one healthy worker per stage, assigns
// the stages, and drives the job's training loop over them through a DistributedBackend.
// Start/RunJob/Shutdown; thread-safe.
#ifndef RESBM_SERVICES_COORDINATOR_COORDINATOR_H_
#define RESBM_SERVICES_COORDINATOR_COORDINATOR_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/train/run_summary.h"
#include "common/train/trainer.h"
#include "services/coordinator/control_service.h"
#include "services/coordinator/worker_registry.h"

namespace resbm {

struct CoordinatorOptions {
  // host:port to listen on; port 0 picks a free port.
  std::string listen_address = "127.0.0.1:0";
  absl::Duration heartbeat_interval = absl::Seconds(1);
  // A worker unheard of for this long is not healthy.
  absl::Duration heartbeat_timeout = absl::Seconds(5);
  // How long RunJob waits for enough workers.
  absl::Duration worker_wait = absl::Seconds(60);
};

class Coordinator {
 public:
  static absl::StatusOr<std::unique_ptr<Coordinator>> Start(const CoordinatorOptions& options);
  ~Coordinator();
  Coordinator(const Coordinator&) = delete;
  Coordinator& operator=(const Coordinator&) = delete;

  int port() const { return port_; }
  WorkerRegistry& registry() { return registry_; }

  // Runs one job to the end on the registered workers (trainer options as for resbm-train).
  // With training.checkpoint_every > 0, stages checkpoint into `checkpoint_dir` (a directory
  // every worker can reach) and a lost worker is replaced from the last checkpoint.
  absl::StatusOr<RunSummary> RunJob(const std::string& job_id, const TrainerOptions& options,
                                    const std::string& checkpoint_dir = "");

  void Shutdown(absl::Time deadline);

 private:
  explicit Coordinator(const CoordinatorOptions& options);

  CoordinatorOptions options_;
  WorkerRegistry registry_;
  ControlService control_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  bool shut_down_ = false;
};

}  // namespace resbm

#endif  // RESBM_SERVICES_COORDINATOR_COORDINATOR_H_
