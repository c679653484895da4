#include "common/train/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/config/job_config.h"
#include "common/modelio/checkpoint_manifest_file.h"
#include "common/status/non_finite.h"
#include "common/status/status_macros.h"
#include "common/train/job_dataset.h"
#include "common/train/progress_line.h"

namespace resbm {
namespace {

// Validation batches use their own stream, fixed for the whole run.
constexpr uint64_t kValidationSeedSalt = 0x76616c6964617465ULL;

}  // namespace

std::string StepRecordsToCsv(const std::vector<StepRecord>& records) {
  std::string csv = "step,tokens,train_loss,val_loss,grad_norm,seconds,clip_factor\n";
  for (const auto& r : records) {
    absl::StrAppend(&csv, r.step, ",", r.tokens, ",", absl::StrFormat("%.6f", r.stats.loss), ",",
                    r.val_loss.has_value() ? absl::StrFormat("%.6f", *r.val_loss) : "", ",",
                    absl::StrFormat("%.6f", r.stats.grad_norm), ",",
                    absl::StrFormat("%.3f", r.seconds), ",",
                    absl::StrFormat("%.6f", r.stats.clip_factor), "\n");
  }
  return csv;
}

absl::StatusOr<std::unique_ptr<Trainer>> Trainer::Create(const TrainerOptions& options,
                                                         std::unique_ptr<TrainingBackend> backend) {
  RESBM_RETURN_IF_ERROR(ValidateJobConfig(options.config));
  if (backend == nullptr || backend->num_stages() != options.config.stages().num_stages()) {
    return absl::InvalidArgumentError("backend: expected one running the config's stages");
  }
  RESBM_ASSIGN_OR_RETURN(TokenDataset dataset, LoadJobDataset(options.config));
  if (!options.recorded_data.empty()) {
    RESBM_RETURN_IF_ERROR(dataset.CheckSameAs(options.recorded_data));
  }
  RESBM_ASSIGN_OR_RETURN(double entropy, dataset.UnigramEntropyNats());
  return std::unique_ptr<Trainer>(
      new Trainer(options, std::move(dataset), entropy, std::move(backend)));
}

Trainer::Trainer(const TrainerOptions& options, TokenDataset dataset, double unigram_entropy_nats,
                 std::unique_ptr<TrainingBackend> backend)
    : options_(options),
      dataset_(std::move(dataset)),
      train_sampler_(&dataset_.train(), options.config.model().seq_len(),
                     options.config.training().seed()),
      val_sampler_(&dataset_.val(), options.config.model().seq_len(),
                   options.config.training().seed() ^ kValidationSeedSalt),
      backend_(std::move(backend)),
      policy_(RecoveryPolicyOptions{
          int64_t{options.config.training().max_recoveries_without_progress()},
          options.config.training().on_non_finite() ==
              v1::NON_FINITE_POLICY_RETRY_FROM_CHECKPOINT}),
      unigram_entropy_nats_(unigram_entropy_nats) {}

absl::StatusOr<double> Trainer::EvaluateValidation() {
  const auto& training = options_.config.training();
  double total = 0.0;
  for (uint32_t i = 0; i < training.eval_batches(); ++i) {
    std::vector<int64_t> inputs, targets;
    RESBM_RETURN_IF_ERROR(val_sampler_.Sample(i, 0, training.batch_size(), &inputs, &targets));
    RESBM_ASSIGN_OR_RETURN(double loss, backend_->Evaluate(eval_round_++, inputs, targets));
    total += loss;
  }
  return total / training.eval_batches();
}

absl::StatusOr<double> Trainer::EvaluateInitialModel(int64_t* recoveries) {
  while (true) {
    absl::StatusOr<double> loss = EvaluateValidation();
    if (loss.ok()) {
      if (options_.hooks.on_initial_eval) options_.hooks.on_initial_eval(*loss);
      if (options_.progress != nullptr) {
        std::fprintf(options_.progress, "initial val loss %.4f (the model the run starts from)\n",
                     *loss);
        std::fflush(options_.progress);
      }
      return loss;
    }
    if (!backend_->supports_recovery() || (options_.stop_requested && options_.stop_requested())) {
      return loss;
    }
    RESBM_RETURN_IF_ERROR(Recover(loss.status(), 0, recoveries).status());
  }
}

absl::StatusOr<int64_t> Trainer::Recover(const absl::Status& failure, int64_t step,
                                         int64_t* recoveries) {
  RESBM_RETURN_IF_ERROR(policy_.Admit(failure, step));
  RESBM_ASSIGN_OR_RETURN(const int64_t resumed, backend_->Recover(failure));
  ++*recoveries;
  const RecoveryEvent& event = policy_.Recovered(failure, step, resumed);
  if (options_.progress != nullptr) {
    std::fprintf(options_.progress, "recovered from %s '%s': resuming after step %lld\n",
                 absl::StatusCodeToString(failure.code()).c_str(),
                 std::string(failure.message()).c_str(), static_cast<long long>(resumed));
    std::fflush(options_.progress);
  }
  if (options_.hooks.on_recovery) options_.hooks.on_recovery(event);
  return resumed;
}

absl::StatusOr<Trainer::RunStart> Trainer::Begin(int64_t checkpoint_every) {
  if (const DatasetFingerprint data = dataset_.fingerprint();
      !data.empty() && options_.hooks.on_data) {
    options_.hooks.on_data(data);
  }
  const v1::JobConfig& config = options_.config;
  const int64_t steps = config.training().steps();
  RunStart start;
  if (options_.resume.has_value()) {
    const TrainerResume& resume = *options_.resume;
    if (resume.step < 0 || resume.step > steps ||
        static_cast<int64_t>(resume.records.size()) != resume.step) {
      return absl::InvalidArgumentError(
          absl::StrCat("resume: step ", resume.step, " with ", resume.records.size(),
                       " step records; expected 0..", steps, " steps, one record each"));
    }
    RESBM_RETURN_IF_ERROR(backend_->Restore(resume.step));
    policy_.CheckpointCompleted(resume.step);
    start.step = resume.step;
    start.records = resume.records;
    start.recoveries = resume.recoveries;
    for (const auto& record : start.records) {
      if (record.val_loss.has_value()) start.val_loss = *record.val_loss;
    }
    if (!start.records.empty()) start.seconds_before = start.records.back().seconds;
    return start;
  }
  if (checkpoint_every > 0) {
    RESBM_RETURN_IF_ERROR(backend_->Checkpoint(0).status());
    policy_.CheckpointCompleted(0);
    if (options_.hooks.on_checkpoint) options_.hooks.on_checkpoint(0, policy_.without_progress());
  }
  if (config.init().source_case() != v1::InitConfig::SOURCE_NOT_SET) {
    RESBM_ASSIGN_OR_RETURN(start.initial_val_loss, EvaluateInitialModel(&start.recoveries));
  }
  return start;
}

absl::Status Trainer::PrepareOutputs() const {
  for (const std::string& path :
       {options_.loss_csv_path, options_.summary_json_path, options_.final_manifest_path}) {
    const auto parent = std::filesystem::path(path).parent_path();
    std::error_code error;
    if (!parent.empty()) std::filesystem::create_directories(parent, error);
  }
  if (!options_.loss_csv_path.empty() && !std::ofstream(options_.loss_csv_path, std::ios::trunc)) {
    // Found out now rather than after the whole run.
    return absl::UnavailableError(
        absl::StrCat("loss csv ", options_.loss_csv_path, ": cannot open for writing"));
  }
  return absl::OkStatus();
}

absl::Status Trainer::WriteLossCsv(const std::vector<StepRecord>& records) const {
  if (options_.loss_csv_path.empty()) return absl::OkStatus();
  std::ofstream csv(options_.loss_csv_path, std::ios::trunc);
  csv << StepRecordsToCsv(records);
  csv.close();
  if (!csv) {
    return absl::DataLossError(absl::StrCat("loss csv ", options_.loss_csv_path, ": write failed"));
  }
  return absl::OkStatus();
}

absl::Status Trainer::FinishFinalCheckpoint(int64_t step,
                                            const std::vector<std::string>& stage_files) const {
  // Not a worker's fault when it fails: no recovery would help.
  RESBM_RETURN_IF_ERROR(WriteFinalManifest(step, stage_files));
  if (options_.hooks.on_final_checkpoint) {
    options_.hooks.on_final_checkpoint(step, options_.final_manifest_path);
  }
  return absl::OkStatus();
}

absl::Status Trainer::WriteFinalManifest(int64_t step,
                                         const std::vector<std::string>& stage_files) const {
  if (options_.final_manifest_path.empty()) return absl::OkStatus();
  v1::CheckpointManifest manifest;
  manifest.set_format_version(CheckpointManifestFile::kFormatVersion);
  manifest.set_job_id(options_.job_id);
  manifest.set_step(static_cast<uint64_t>(step));
  *manifest.mutable_config() = options_.config;
  const auto dir = std::filesystem::path(options_.final_manifest_path).parent_path();
  for (const std::string& file : stage_files) {
    const std::filesystem::path path(file);
    manifest.add_stage_files(path.parent_path() == dir ? path.filename().string() : file);
  }
  return CheckpointManifestFile::Write(options_.final_manifest_path, manifest);
}

absl::StatusOr<Trainer::StepOutcome> Trainer::AttemptStep(int64_t step, int64_t checkpoint_every,
                                                          std::vector<std::string>* stage_files) {
  const v1::TrainingConfig& training = options_.config.training();
  const int64_t steps = training.steps();
  // A shard changed under the job fails the step (FailedPrecondition: not recovered).
  RESBM_RETURN_IF_ERROR(dataset_.CheckUnchanged());
  std::vector<int64_t> inputs, targets;
  RESBM_RETURN_IF_ERROR(train_sampler_.Sample(step, 0, training.batch_size(), &inputs, &targets));
  StepOutcome outcome;
  RESBM_ASSIGN_OR_RETURN(outcome.stats, backend_->TrainStep(step, inputs, targets));
  if (!std::isfinite(outcome.stats.loss)) {
    return NonFiniteError(absl::StrCat("the loss of step ", step + 1, " is ", outcome.stats.loss));
  }
  if (!std::isfinite(outcome.stats.grad_norm)) {
    return NonFiniteError(
        absl::StrCat("the gradient norm of step ", step + 1, " is ", outcome.stats.grad_norm));
  }
  const bool last = step + 1 == steps;
  if (last || (training.eval_every() > 0 && (step + 1) % training.eval_every() == 0)) {
    RESBM_ASSIGN_OR_RETURN(outcome.val_loss, EvaluateValidation());
  }
  // Every run ends with a complete checkpoint: the trained model, whatever checkpoint_every.
  outcome.final_checkpoint = last && backend_->supports_checkpoints();
  outcome.checkpointed = outcome.final_checkpoint ||
                         (checkpoint_every > 0 && (step + 1) % checkpoint_every == 0 && !last);
  if (outcome.checkpointed) {
    RESBM_ASSIGN_OR_RETURN(*stage_files, backend_->Checkpoint(step + 1));
  }
  return outcome;
}

absl::StatusOr<RunSummary> Trainer::Run() {
  const v1::JobConfig& config = options_.config;
  const auto& training = config.training();
  const int64_t steps = training.steps();
  const int64_t tokens_per_step = int64_t{training.batch_size()} * config.model().seq_len();

  RESBM_RETURN_IF_ERROR(PrepareOutputs());
  // A live line every 5 s (and at evaluations) where the options give a stream.
  std::unique_ptr<ProgressLine> progress =
      options_.progress == nullptr ? nullptr
                                   : std::make_unique<ProgressLine>(options_.progress, steps, 5.0);
  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  const int64_t checkpoint_every =
      backend_->supports_recovery() ? int64_t{training.checkpoint_every()} : 0;
  RESBM_ASSIGN_OR_RETURN(RunStart begun, Begin(checkpoint_every));
  // One record per completed step; a recovery drops the records after its checkpoint, whose
  // steps are then replayed with the same batches.
  std::vector<StepRecord> records = std::move(begun.records);
  double val_loss = begun.val_loss;
  int64_t recoveries = begun.recoveries;
  int64_t step = begun.step;
  const double seconds_before = begun.seconds_before;
  std::vector<std::string> stage_files;  // Of the last checkpoint written.
  const int64_t first_step = step;
  if (progress) progress->set_start_step(first_step);

  absl::Status stopped;
  while (step < steps) {
    if (options_.stop_requested && options_.stop_requested()) {
      stopped = absl::CancelledError(absl::StrCat("stopped before step ", step + 1, " of ", steps,
                                                  "; the loss curve so far is written"));
      break;
    }
    absl::StatusOr<StepOutcome> outcome = AttemptStep(step, checkpoint_every, &stage_files);
    if (!outcome.ok()) {
      if (options_.stop_requested && options_.stop_requested()) continue;  // Stops above.
      if (progress) progress->Finish();
      absl::StatusOr<int64_t> resumed = Recover(outcome.status(), step + 1, &recoveries);
      if (!resumed.ok()) {
        return EndEarly(resumed.status(), records, val_loss, recoveries,
                        seconds_before + elapsed());
      }
      step = *resumed;
      records.resize(std::min<size_t>(records.size(), step));
      continue;
    }
    if (outcome->val_loss.has_value()) val_loss = *outcome->val_loss;
    const double seconds = elapsed();
    RESBM_RETURN_IF_ERROR(
        Completed(step, *outcome, seconds_before + seconds, stage_files, &records));
    if (progress) {
      const double tokens_this_run = static_cast<double>((step + 1 - first_step) * tokens_per_step);
      progress->Update(step + 1, outcome->stats.loss, val_loss, tokens_this_run / seconds, seconds,
                       /*force=*/outcome->val_loss.has_value());
    }
    ++step;
  }
  if (progress) progress->Finish();
  if (!stopped.ok()) {
    return EndEarly(stopped, records, val_loss, recoveries, seconds_before + elapsed());
  }
  if (first_step == steps && backend_->supports_checkpoints()) {
    // Resumed after the final checkpoint (the coordinator restarted before it recorded the
    // end): the restored weights are the final ones; write them and the manifest again.
    RESBM_ASSIGN_OR_RETURN(stage_files, backend_->Checkpoint(steps));
    RESBM_RETURN_IF_ERROR(FinishFinalCheckpoint(steps, stage_files));
  }
  return EndWell(records, val_loss, recoveries, seconds_before + elapsed(), begun.initial_val_loss);
}

absl::Status Trainer::Completed(int64_t step, const StepOutcome& outcome, double wall_seconds,
                                const std::vector<std::string>& stage_files,
                                std::vector<StepRecord>* records) {
  const int64_t tokens_per_step =
      int64_t{options_.config.training().batch_size()} * options_.config.model().seq_len();
  records->push_back(StepRecord{step + 1, (step + 1) * tokens_per_step, outcome.stats,
                                outcome.val_loss, wall_seconds});
  if (options_.hooks.on_step) options_.hooks.on_step(records->back());
  if (outcome.checkpointed) {
    policy_.CheckpointCompleted(step + 1);
    if (options_.hooks.on_checkpoint) {
      options_.hooks.on_checkpoint(step + 1, policy_.without_progress());
    }
  }
  if (outcome.final_checkpoint) return FinishFinalCheckpoint(step + 1, stage_files);
  return absl::OkStatus();
}

absl::StatusOr<RunSummary> Trainer::EndWell(const std::vector<StepRecord>& records, double val_loss,
                                            int64_t recoveries, double wall_seconds,
                                            std::optional<double> initial_val_loss) const {
  RESBM_RETURN_IF_ERROR(WriteLossCsv(records));
  RunSummary summary = Summarize(records, val_loss, recoveries, wall_seconds);
  summary.initial_val_loss = initial_val_loss;
  RESBM_RETURN_IF_ERROR(Report(summary));
  return summary;
}

absl::Status Trainer::EndEarly(const absl::Status& why, const std::vector<StepRecord>& records,
                               double val_loss, int64_t recoveries, double wall_seconds) const {
  RunSummary summary = Summarize(records, val_loss, recoveries, wall_seconds);
  summary.outcome = absl::IsCancelled(why) ? "cancelled" : "failed";
  summary.error = absl::StrCat(absl::StatusCodeToString(why.code()), ": ", why.message());
  // The record of a run that ended early is best effort: its own failure must not hide why.
  if (absl::Status written = WriteLossCsv(records); !written.ok() && options_.progress) {
    std::fprintf(options_.progress, "%s\n", written.ToString().c_str());
  }
  if (absl::Status reported = Report(summary); !reported.ok() && options_.progress) {
    std::fprintf(options_.progress, "%s\n", reported.ToString().c_str());
  }
  return why;
}

absl::Status Trainer::Report(const RunSummary& summary) const {
  if (options_.hooks.on_end) options_.hooks.on_end(summary);
  if (options_.summary_json_path.empty()) return absl::OkStatus();
  return summary.WriteJson(options_.summary_json_path);
}

RunSummary Trainer::Summarize(const std::vector<StepRecord>& records, double val_loss,
                              int64_t recoveries, double wall_seconds) const {
  const v1::JobConfig& config = options_.config;
  const int64_t steps = config.training().steps();
  const int64_t tokens_per_step =
      int64_t{config.training().batch_size()} * config.model().seq_len();
  RunSummary summary;
  summary.job_name = config.name();
  const CompressionOptions compression = ToCompressionOptions(config);
  summary.compression = CompressionKindName(compression.kind);
  summary.ratio = compression.ratio;
  summary.wire_dtype = WireDtypeName(compression.wire_dtype);
  summary.num_stages = backend_->num_stages();
  const int64_t done = static_cast<int64_t>(records.size());
  summary.steps = done;
  summary.recoveries = recoveries;
  summary.tokens = done * tokens_per_step;
  const size_t tail = std::min<size_t>(10, records.size());
  for (size_t i = records.size() - tail; i < records.size(); ++i) {
    summary.final_train_loss += records[i].stats.loss / static_cast<double>(tail);
  }
  summary.final_val_loss = val_loss;
  if (backend_->supports_checkpoints() && done == steps) {
    summary.final_checkpoint_step = steps;
    summary.final_checkpoint_manifest = options_.final_manifest_path;
  }
  summary.unigram_entropy_nats = unigram_entropy_nats_;
  summary.wall_seconds = wall_seconds;
  summary.tokens_per_second = summary.wall_seconds > 0 ? summary.tokens / summary.wall_seconds : 0;
  const std::vector<BoundaryTraffic> traffic = backend_->Traffic();
  for (size_t b = 0; b < traffic.size(); ++b) {
    BoundarySummary boundary;
    boundary.boundary = static_cast<int64_t>(b);
    boundary.traffic = traffic[b];
    boundary.bf16_reference_bytes = traffic[b].forward_tokens * config.model().d_model() * 2;
    summary.boundaries.push_back(boundary);
  }
  const std::vector<StageTiming> timing = backend_->Timing();
  for (size_t s = 0; s < timing.size(); ++s) {
    if (timing[s].steps == 0) continue;
    StageSummary stage;
    stage.stage = static_cast<int64_t>(s);
    stage.steps = timing[s].steps;
    const double microbatches = static_cast<double>(std::max<int64_t>(timing[s].microbatches, 1));
    stage.forward_seconds = timing[s].forward_seconds / microbatches;
    stage.backward_seconds = timing[s].backward_seconds / microbatches;
    stage.wait_seconds_per_step = timing[s].wait_seconds / static_cast<double>(timing[s].steps);
    stage.replica_bytes_sent = timing[s].replica_bytes_sent;
    stage.all_reduce_seconds_per_step =
        timing[s].all_reduce_seconds / static_cast<double>(timing[s].steps);
    summary.stages.push_back(stage);
  }
  return summary;
}

}  // namespace resbm
