// TrainingBackend: what the training loop needs from a pipeline, whatever runs it: one
// process (LocalBackend) or stage workers over the network (the coordinator's
// DistributedBackend). Batches are token ids, row-major (batch_size x seq_len), so the loop
// itself needs no LibTorch. Implementations are not thread-safe.
#ifndef RESBM_COMMON_TRAIN_TRAINING_BACKEND_H_
#define RESBM_COMMON_TRAIN_TRAINING_BACKEND_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/train/boundary_traffic.h"

namespace resbm {

// One stage's compute and waiting time over the training steps a backend measured.
struct StageTiming {
  int64_t steps = 0;
  int64_t microbatches = 0;       // Forward+backward pairs, over all those steps.
  double forward_seconds = 0.0;   // Summed over the microbatches.
  double backward_seconds = 0.0;  // Summed over the microbatches.
  double wait_seconds = 0.0;      // Waiting for a neighbour's frame, summed over the steps.
  double all_reduce_seconds = 0.0;  // In the replicas' gradient all-reduce, over the steps.
  // Bytes the stage's replicas sent each other, over every training step (timed or not).
  int64_t replica_bytes_sent = 0;
};

struct StepStats {
  double loss = 0.0;       // Mean over the step's tokens.
  double grad_norm = 0.0;  // Global, before clipping.
  double clip_factor = 1.0;
};

class TrainingBackend {
 public:
  virtual ~TrainingBackend() = default;

  // Optimizer step `step` (0-based) on one batch split into the configured microbatches.
  virtual absl::StatusOr<StepStats> TrainStep(int64_t step, const std::vector<int64_t>& inputs,
                                              const std::vector<int64_t>& targets) = 0;
  // Mean loss of one batch without updating anything; `round` counts evaluation batches over
  // the whole run (0, 1, 2, ...).
  virtual absl::StatusOr<double> Evaluate(int64_t round, const std::vector<int64_t>& inputs,
                                          const std::vector<int64_t>& targets) = 0;
  // Whether Recover does anything (the single-process backend has nothing to recover from:
  // its process is the job).
  virtual bool supports_recovery() const { return false; }
  // Whether Checkpoint does anything. A backend that recovers checkpoints.
  virtual bool supports_checkpoints() const { return supports_recovery(); }
  // Writes a checkpoint of every stage after `steps_done` optimizer steps and returns its
  // files, one per stage; it becomes the one Recover restores once every stage has written
  // it. Unimplemented by default.
  virtual absl::StatusOr<std::vector<std::string>> Checkpoint(int64_t steps_done);
  // After a failed step or evaluation: brings the pipeline back (e.g. on replacement workers)
  // from the last complete checkpoint and returns its step, from which the loop replays the
  // same batches. By default nothing can be recovered: returns `failure`.
  virtual absl::StatusOr<int64_t> Recover(const absl::Status& failure);
  // Brings every stage to the complete checkpoint written after `steps_done` steps (a run
  // resumed by a restarted coordinator). Unimplemented by default.
  virtual absl::Status Restore(int64_t steps_done);
  // Training traffic so far, one entry per boundary (num_stages - 1).
  virtual std::vector<BoundaryTraffic> Traffic() const = 0;
  // Per-stage timing of the training steps so far, where the stages report it; empty
  // otherwise.
  virtual std::vector<StageTiming> Timing() const { return {}; }
  virtual int64_t num_stages() const = 0;
};

inline absl::StatusOr<std::vector<std::string>> TrainingBackend::Checkpoint(int64_t steps_done) {
  return absl::UnimplementedError("this backend does not write checkpoints");
}

inline absl::Status TrainingBackend::Restore(int64_t steps_done) {
  return absl::UnimplementedError("this backend cannot restore checkpoints");
}

inline absl::StatusOr<int64_t> TrainingBackend::Recover(const absl::Status& failure) {
  return failure;
}

}  // namespace resbm

#endif  // RESBM_COMMON_TRAIN_TRAINING_BACKEND_H_
