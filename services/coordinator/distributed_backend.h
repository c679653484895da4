// DistributedBackend: the TrainingBackend of the coordinator: the pipeline runs on stage
// workers driven by a PipelineDriver. It adds up the wire traffic the workers report, has
// every stage checkpoint on request, and recovers from a lost worker: it waits for a healthy
// set of workers (the same ones back, or spares), assigns the stages anew and restores the
// last complete checkpoint everywhere. Owns the driver. Not thread-safe.
#ifndef RESBM_SERVICES_COORDINATOR_DISTRIBUTED_BACKEND_H_
#define RESBM_SERVICES_COORDINATOR_DISTRIBUTED_BACKEND_H_

#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "common/train/training_backend.h"
#include "resbm/v1/config.pb.h"
#include "services/coordinator/coordinator_metrics.h"
#include "services/coordinator/pipeline_driver.h"

namespace resbm {

// Returns `count` healthy workers, waiting for them until `deadline` if needed
// (WorkerRegistry::Acquire).
using WorkerFinder =
    std::function<absl::StatusOr<std::vector<StageEndpoint>>(int64_t count, absl::Time deadline)>;

struct DistributedBackendOptions {
  std::string job_id;
  v1::JobConfig config;  // Validated.
  WorkerFinder find_workers;
  // Told the address of a worker an assignment or restore could not reach, so the next
  // find_workers leaves it out until it is heard from again (WorkerRegistry::Suspect). May
  // be empty.
  std::function<void(const std::string& address)> suspect;
  // When a worker's heartbeat lapses (WorkerRegistry::LapsesAt), for every driver: a step
  // whose worker lapses is cancelled then (PipelineDriver::set_liveness). May be empty.
  PipelineDriver::Liveness liveness;
  // How long the first assignment waits for workers.
  absl::Duration worker_wait = absl::Seconds(120);
  // Where stages write checkpoints (a filesystem every worker and its replacement can read).
  std::string checkpoint_dir;
  // How long Recover keeps trying to rebuild the pipeline.
  absl::Duration recovery_timeout = absl::Seconds(120);
  absl::Duration step_timeout = absl::Minutes(5);
  // Polled while recovering: true gives up with CANCELLED (the job was cancelled).
  std::function<bool()> cancelled;
  // Told the workers the job would hold in all while pipelines are out of it (stages x
  // replicas), and 0 once they are back (WorkerRegistry::Want: idle workers are kept for
  // them). May be empty.
  std::function<void(int64_t total)> want_workers;
  // Told the worker address of each stage whenever the stages are (re)assigned.
  std::function<void(const std::vector<std::string>&)> on_assigned;
  // Checkpoint times and sizes, the stage each step waited on (not owned); may be null.
  CoordinatorMetrics* metrics = nullptr;
  // Of the channels to the workers (TLS with the coordinator's certificate); null: plaintext.
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  // The stages are restored from a checkpoint of this job right away (a resumed run): the
  // workers need not read config.init's source again.
  bool resuming = false;
};

// The checkpoint file of `stage` after `steps_done` steps of job `job_id`.
std::string CheckpointPath(const std::string& checkpoint_dir, const std::string& job_id,
                           int64_t steps_done, int64_t stage);

// The CheckpointManifest of job `job_id`'s final checkpoint, next to its stage files.
std::string FinalManifestPath(const std::string& checkpoint_dir, const std::string& job_id);

class DistributedBackend : public TrainingBackend {
 public:
  // Finds one worker per stage and assigns the stages.
  static absl::StatusOr<std::unique_ptr<DistributedBackend>> Create(
      const DistributedBackendOptions& options);
  // Releases the job's state on the workers that run its stages.
  ~DistributedBackend() override;

  absl::StatusOr<StepStats> TrainStep(int64_t step, const std::vector<int64_t>& inputs,
                                      const std::vector<int64_t>& targets) override;
  absl::StatusOr<double> Evaluate(int64_t round, const std::vector<int64_t>& inputs,
                                  const std::vector<int64_t>& targets) override;
  bool supports_recovery() const override { return true; }
  absl::StatusOr<std::vector<std::string>> Checkpoint(int64_t steps_done) override;
  absl::StatusOr<int64_t> Recover(const absl::Status& failure) override;
  absl::Status Restore(int64_t steps_done) override;
  std::vector<BoundaryTraffic> Traffic() const override { return traffic_; }
  std::vector<StageTiming> Timing() const override { return timing_; }
  int64_t num_stages() const override { return num_stages_; }

  const std::vector<std::string>& addresses() const { return driver_->addresses(); }
  int64_t parameters() const { return parameters_; }
  // Deletes every kept checkpoint but the newest (a succeeded job's final one, recorded).
  void RetireAllButLast();

 private:
  // Adds the bytes the driver saw replicas send each other to the stages' timing.
  void CountReplicaBytes();
  explicit DistributedBackend(const DistributedBackendOptions& options);
  // The one way to (re)build the pipeline: releases the old workers, finds workers and
  // assigns every stage on them (replacing the driver), leaving out any worker that cannot be
  // reached and trying again until `deadline`. Once a checkpoint of the job exists the stages
  // are assigned without config.init: they restore that checkpoint instead, even if the init
  // source has gone since.
  absl::Status Build(absl::Time deadline);
  // Reports the driver's unreachable workers to options_.suspect; whether there were any.
  bool SuspectUnreachable(const PipelineDriver& driver);
  // Rebuilds and restores the last complete checkpoint until it works or time runs out.
  absl::StatusOr<int64_t> RebuildFromCheckpoint(const absl::Status& failure);
  // Replicas, after a failed training step: puts healthy workers in place of the ones that
  // no longer answer, each taking its stage's state from a live replica, and returns the
  // failed step's index (it is redone on the same state). No checkpoint is read; an error
  // where a whole stage is gone or no replacement comes.
  absl::StatusOr<int64_t> ReplaceLostReplicas();
  // Puts the pipelines DropPipelines took out back once enough workers are free (their
  // healthy workers and idle ones, every slot a new replica from a live one); until then
  // nothing (the job goes on without them). An error only where a Replace failed.
  absl::Status RestorePipelines();
  // The driver's addresses, empty for the slots of pipelines out of the job.
  std::vector<std::string> AssignedAddresses() const;

  DistributedBackendOptions options_;
  int64_t num_stages_;
  int64_t num_workers_;  // Stages x replicas.
  std::unique_ptr<PipelineDriver> driver_;
  int64_t parameters_ = 0;
  std::vector<BoundaryTraffic> traffic_;
  std::vector<StageTiming> timing_;  // [stage]
  bool timed_step_ = false;          // False until the current pipeline's first step is done.
  // The training step that failed last, while nothing else ran since; -1 otherwise.
  int64_t failed_train_step_ = -1;
  // The last checkpoint every stage acknowledged.
  int64_t checkpoint_step_ = -1;
  std::vector<std::string> checkpoint_paths_;
  // The stage files of the complete checkpoints still kept, oldest first (the newest is
  // checkpoint_paths_).
  std::deque<std::vector<std::string>> kept_checkpoints_;
};

}  // namespace resbm

#endif  // RESBM_SERVICES_COORDINATOR_DISTRIBUTED_BACKEND_H_
