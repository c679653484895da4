// Trainer: the training loop of a job, the same for resbm-train (LocalBackend) and the
// coordinator (stage workers behind a DistributedBackend). Loads the data the job config
// names (the data loader lives here: only token ids reach the backend), trains for the
// configured steps with a live progress line, evaluates on held-out data, and writes the loss
// curve (CSV) and a RunSummary (JSON). Owns the backend and the dataset. Not thread-safe.
#ifndef RESBM_COMMON_TRAIN_TRAINER_H_
#define RESBM_COMMON_TRAIN_TRAINER_H_

#include <cstdio>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/data/batch_sampler.h"
#include "common/data/token_dataset.h"
#include "common/train/recovery_policy.h"
#include "common/train/run_summary.h"
#include "common/train/training_backend.h"
#include "resbm/v1/config.pb.h"

namespace resbm {

// One completed optimizer step, as the loss curve (CSV) and the job store keep it.
struct StepRecord {
  int64_t step = 0;  // Optimizer steps done (1-based).
  int64_t tokens = 0;
  StepStats stats;                 // The training loss, gradient norm and clip factor.
  std::optional<double> val_loss;  // Set on the steps that evaluated.
  double seconds = 0.0;            // Since the run first started, across resumes.
};

// Where a resumed run starts: a checkpoint every stage completed after `step` steps, and the
// records of those steps.
struct TrainerResume {
  int64_t step = 0;
  std::vector<StepRecord> records;  // Exactly `step` of them.
  int64_t recoveries = 0;
};

// Called on the training thread; they must not block for long.
struct TrainerHooks {
  std::function<void(const StepRecord&)> on_step;
  // A checkpoint after `step` steps is complete (every stage wrote it); the recoveries the
  // policy counts since the last new checkpoint (0 when this one is new).
  std::function<void(int64_t step, int64_t recoveries_without_progress)> on_checkpoint;
  // The run recovered from `event.failure` and replays the steps after
  // `event.resumed_after`.
  std::function<void(const RecoveryEvent& event)> on_recovery;
  // A run that starts from a trained model evaluated it before its first step.
  std::function<void(double val_loss)> on_initial_eval;
  // The checkpoint after the last step is complete (on_checkpoint came first) and its
  // manifest, if the options name one, is written.
  std::function<void(int64_t step, const std::string& manifest_path)> on_final_checkpoint;
  // Before the first step: the shards the run reads (not called for data held in memory).
  std::function<void(const DatasetFingerprint& data)> on_data;
  // Every ending (succeeded, failed after the run began, cancelled): the summary of the
  // steps completed, also written to summary_json_path; the loss curve is written before.
  std::function<void(const RunSummary& summary)> on_end;
};

struct TrainerOptions {
  // A config that passed ValidateJobConfig (LoadJobConfigFile does both).
  v1::JobConfig config;
  // Empty: not written.
  std::string summary_json_path;
  std::string loss_csv_path;
  // Progress output (not owned); null for a silent run.
  std::FILE* progress = stdout;
  // Polled before every step; when it returns true the run stops there: the loss curve so far
  // is written and Run returns Cancelled. Empty: never.
  std::function<bool()> stop_requested;
  TrainerHooks hooks;
  // Start from a checkpoint instead of step 0 (the backend must support recovery).
  std::optional<TrainerResume> resume;
  // Where the CheckpointManifest of the checkpoint after the last step goes (the backend
  // writes one when it supports checkpoints); empty: none. Stage files in its directory are
  // named relative to it, so the directory can move.
  std::string final_manifest_path;
  // The job the manifest names.
  std::string job_id = "resbm-train";
  // The shards an earlier run of this job read: the run refuses (FailedPrecondition) to start
  // on shards that differ. Empty: not checked.
  DatasetFingerprint recorded_data;
};

// "step,tokens,train_loss,val_loss,grad_norm,seconds,clip_factor" rows.
std::string StepRecordsToCsv(const std::vector<StepRecord>& records);

class Trainer {
 public:
  // `backend` runs the pipeline the config describes.
  static absl::StatusOr<std::unique_ptr<Trainer>> Create(const TrainerOptions& options,
                                                         std::unique_ptr<TrainingBackend> backend);
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  // Trains to the end; returns the summary (also written where the options say).
  absl::StatusOr<RunSummary> Run();

  // Mean validation loss over the configured eval batches (the same batches every time).
  absl::StatusOr<double> EvaluateValidation();

 private:
  // Where a run starts: after a resume's checkpoint, or at step 0 (checkpointed, and a
  // trained model evaluated first). Reports the shards read first (on_data).
  struct RunStart {
    int64_t step = 0;
    std::vector<StepRecord> records;
    double val_loss = -1.0;
    int64_t recoveries = 0;
    double seconds_before = 0.0;  // Run time of the steps a resumed run starts after.
    std::optional<double> initial_val_loss;
  };

  // What one completed step produced.
  struct StepOutcome {
    StepStats stats;
    std::optional<double> val_loss;  // Set on the steps that evaluated.
    bool checkpointed = false;       // A checkpoint after this step is complete.
    bool final_checkpoint = false;   // It was the run's last one.
  };

  Trainer(const TrainerOptions& options, TokenDataset dataset, double unigram_entropy_nats,
          std::unique_ptr<TrainingBackend> backend);
  absl::StatusOr<RunStart> Begin(int64_t checkpoint_every);
  // Trains 0-based `step`, evaluates and checkpoints (into `stage_files`) where the config
  // says: a failure of any of them (NaN or Inf in the loss or gradient norm included) is the
  // step's.
  absl::StatusOr<StepOutcome> AttemptStep(int64_t step, int64_t checkpoint_every,
                                          std::vector<std::string>* stage_files);
  // The validation loss of the model the run starts from, recovering (from the step-0
  // checkpoint) as a failed step would.
  absl::StatusOr<double> EvaluateInitialModel(int64_t* recoveries);
  // Recovers from `failure` of 1-based `step` if the policy admits it (the backend goes back
  // to its last checkpoint); returns the steps done it resumes after, or the status the run
  // fails with.
  absl::StatusOr<int64_t> Recover(const absl::Status& failure, int64_t step, int64_t* recoveries);
  // The end of a run that did not succeed: the loss curve and a summary of `records` are
  // written and reported (on_end), and `why` is returned.
  absl::Status EndEarly(const absl::Status& why, const std::vector<StepRecord>& records,
                        double val_loss, int64_t recoveries, double wall_seconds) const;
  // 0-based `step` completed with `outcome` after `wall_seconds`: its record (handed to the
  // step hook), the policy and hook of a complete checkpoint, the final checkpoint's manifest.
  absl::Status Completed(int64_t step, const StepOutcome& outcome, double wall_seconds,
                         const std::vector<std::string>& stage_files,
                         std::vector<StepRecord>* records);
  // The end of a run that succeeded: the loss curve and the summary written and reported.
  absl::StatusOr<RunSummary> EndWell(const std::vector<StepRecord>& records, double val_loss,
                                     int64_t recoveries, double wall_seconds,
                                     std::optional<double> initial_val_loss) const;
  // The summary written and reported at the end of every run.
  absl::Status Report(const RunSummary& summary) const;
  // Creates the output directories; refuses a loss CSV that cannot be written, before the run.
  absl::Status PrepareOutputs() const;
  absl::Status WriteLossCsv(const std::vector<StepRecord>& records) const;
  // The final checkpoint (`stage_files` after `step` steps) is complete: its manifest, then
  // the hook.
  absl::Status FinishFinalCheckpoint(int64_t step,
                                     const std::vector<std::string>& stage_files) const;
  // Writes the manifest of the final checkpoint.
  absl::Status WriteFinalManifest(int64_t step, const std::vector<std::string>& stage_files) const;
  // The summary of a run that ended after `records`, with the last validation loss.
  RunSummary Summarize(const std::vector<StepRecord>& records, double val_loss, int64_t recoveries,
                       double wall_seconds) const;

  TrainerOptions options_;
  TokenDataset dataset_;
  BatchSampler train_sampler_;
  BatchSampler val_sampler_;
  std::unique_ptr<TrainingBackend> backend_;
  RecoveryPolicy policy_;
  double unigram_entropy_nats_;
  int64_t eval_round_ = 0;
};

}  // namespace resbm

#endif  // RESBM_COMMON_TRAIN_TRAINER_H_
