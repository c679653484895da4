// RunSummary: what a finished training run reports (losses, tokens, time, wire traffic per
// boundary and direction, compression against an uncompressed bf16 boundary). Its API form is
// v1::RunSummary (a Job's `summary`) and its file form the JSON of --summary-json; ToProto and
// ToJson are the one place each is made. Value type; thread-compatible.
#ifndef RESBM_COMMON_TRAIN_RUN_SUMMARY_H_
#define RESBM_COMMON_TRAIN_RUN_SUMMARY_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/train/boundary_traffic.h"
#include "resbm/v1/job_service.pb.h"

namespace resbm {

struct BoundarySummary {
  int64_t boundary = 0;  // Between stage `boundary` and `boundary + 1`.
  BoundaryTraffic traffic;
  // Bytes an uncompressed bf16 boundary (d values x 2 bytes per token) would have sent, per
  // direction.
  int64_t bf16_reference_bytes = 0;
};

// Where one stage's time went, per microbatch and per step (from the workers' own reports;
// each pipeline's first step is left out: it opens the links).
struct StageSummary {
  int64_t stage = 0;
  int64_t steps = 0;                   // Steps measured.
  double forward_seconds = 0.0;        // Mean per microbatch.
  double backward_seconds = 0.0;       // Mean per microbatch.
  double wait_seconds_per_step = 0.0;  // Waiting for a neighbour's frame.
  int64_t replica_bytes_sent = 0;      // Between the stage's replicas, over the run.
  double all_reduce_seconds_per_step = 0.0;  // All-reducing (several replicas), per step.
};

struct RunSummary {
  std::string job_name;
  // How the run ended: "succeeded", "failed" or "cancelled"; `error` says why when it did not
  // succeed. A run that did not succeed reports the steps it completed.
  std::string outcome = "succeeded";
  std::string error;
  std::string compression;  // "resbm", "none", ...
  int64_t ratio = 1;
  std::string wire_dtype;
  int64_t num_stages = 1;
  int64_t steps = 0;
  // Failed steps the run recovered from (from the last checkpoint).
  int64_t recoveries = 0;
  int64_t tokens = 0;             // Training tokens processed.
  double final_train_loss = 0.0;  // Mean over the last min(10, steps) steps.
  double final_val_loss = 0.0;
  double unigram_entropy_nats = 0.0;  // The corpus baseline the model must beat.
  double wall_seconds = 0.0;
  double tokens_per_second = 0.0;
  // A run that started from a trained model (config.init): validation loss before step 1.
  std::optional<double> initial_val_loss;
  // The checkpoint written after the last step: its step and manifest; -1 and "" when the
  // backend writes none.
  int64_t final_checkpoint_step = -1;
  std::string final_checkpoint_manifest;
  std::vector<BoundarySummary> boundaries;
  std::vector<StageSummary> stages;  // Empty where the backend does not time stages.

  // (forward + backward bf16 reference bytes) / (forward + backward payload bytes) over all
  // boundaries; 0 without boundaries.
  double EffectiveCompression() const;
  // The same with the token channel's ids counted in: reference / (payload + token ids).
  double EffectiveCompressionWithTokenIds() const;
  // One line for people: losses, tokens, time, throughput, compression.
  std::string Describe() const;
  // JSON object with every field above plus the effective compression ratios (numbers, not
  // proto JSON's quoted 64-bit integers: scripts do arithmetic on them).
  std::string ToJson() const;
  absl::Status WriteJson(const std::string& path) const;
  // Reads ToJson's output (or proto JSON of v1::RunSummary) back.
  static absl::StatusOr<RunSummary> FromJson(const std::string& json);
  // The API form, with the effective compression ratios filled in; FromProto reads it back.
  v1::RunSummary ToProto() const;
  static RunSummary FromProto(const v1::RunSummary& proto);
};

}  // namespace resbm

#endif  // RESBM_COMMON_TRAIN_RUN_SUMMARY_H_
