#include "common/train/trainer.h"

#include <chrono>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/config/job_config.h"
#include "common/status/status_macros.h"
#include "common/train/job_dataset.h"
#include "common/train/progress_line.h"

namespace resbm {
namespace {

// Validation batches use their own stream, fixed for the whole run.
constexpr uint64_t kValidationSeedSalt = 0x76616c6964617465ULL;

}  // namespace

absl::StatusOr<std::unique_ptr<Trainer>> Trainer::Create(const TrainerOptions& options,
                                                         std::unique_ptr<TrainingBackend> backend) {
  RESBM_RETURN_IF_ERROR(ValidateJobConfig(options.config));
  if (backend == nullptr || backend->num_stages() != options.config.stages().num_stages()) {
    return absl::InvalidArgumentError("backend: expected one running the config's stages");
  }
  RESBM_ASSIGN_OR_RETURN(TokenDataset dataset, LoadJobDataset(options.config));
  return std::unique_ptr<Trainer>(new Trainer(options, std::move(dataset), std::move(backend)));
}

Trainer::Trainer(const TrainerOptions& options, TokenDataset dataset,
                 std::unique_ptr<TrainingBackend> backend)
    : options_(options),
      dataset_(std::move(dataset)),
      train_sampler_(&dataset_.train(), options.config.model().seq_len(),
                     options.config.training().seed()),
      val_sampler_(&dataset_.val(), options.config.model().seq_len(),
                   options.config.training().seed() ^ kValidationSeedSalt),
      backend_(std::move(backend)) {}

absl::StatusOr<double> Trainer::EvaluateValidation() {
  const auto& training = options_.config.training();
  double total = 0.0;
  for (uint32_t i = 0; i < training.eval_batches(); ++i) {
    std::vector<int64_t> inputs, targets;
    val_sampler_.Sample(i, 0, training.batch_size(), &inputs, &targets);
    RESBM_ASSIGN_OR_RETURN(double loss, backend_->Evaluate(eval_round_++, inputs, targets));
    total += loss;
  }
  return total / training.eval_batches();
}

absl::StatusOr<RunSummary> Trainer::Run() {
  const v1::JobConfig& config = options_.config;
  const auto& training = config.training();
  const int64_t steps = training.steps();
  const int64_t tokens_per_step = int64_t{training.batch_size()} * config.model().seq_len();

  for (const std::string& path : {options_.loss_csv_path, options_.summary_json_path}) {
    const auto parent = std::filesystem::path(path).parent_path();
    std::error_code error;
    if (!parent.empty()) std::filesystem::create_directories(parent, error);
  }
  if (!options_.loss_csv_path.empty() && !std::ofstream(options_.loss_csv_path, std::ios::trunc)) {
    // Found out now rather than after the whole run.
    return absl::UnavailableError(
        absl::StrCat("loss csv ", options_.loss_csv_path, ": cannot open for writing"));
  }
  std::unique_ptr<ProgressLine> progress;
  if (options_.progress != nullptr) {
    progress = std::make_unique<ProgressLine>(options_.progress, steps, 5.0);
  }
  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  // One row per completed step; a recovery drops the rows after its checkpoint, whose steps
  // are then replayed with the same batches.
  std::vector<std::string> rows;
  std::vector<double> losses;
  double val_loss = -1.0;
  int64_t recoveries = 0;
  const int64_t checkpoint_every =
      backend_->supports_recovery() ? int64_t{training.checkpoint_every()} : 0;
  if (checkpoint_every > 0) RESBM_RETURN_IF_ERROR(backend_->Checkpoint(0));

  int64_t step = 0;
  absl::Status stopped;
  while (step < steps) {
    if (options_.stop_requested && options_.stop_requested()) {
      stopped = absl::CancelledError(absl::StrCat("stopped before step ", step + 1, " of ", steps,
                                                  "; the loss curve so far is written"));
      break;
    }
    std::vector<int64_t> inputs, targets;
    train_sampler_.Sample(step, 0, training.batch_size(), &inputs, &targets);
    auto stats = backend_->TrainStep(step, inputs, targets);
    const bool last = step + 1 == steps;
    const bool eval_now =
        last || (training.eval_every() > 0 && (step + 1) % training.eval_every() == 0);
    absl::Status status = stats.status();
    double step_val_loss = val_loss;
    if (status.ok() && eval_now) {
      auto evaluated = EvaluateValidation();
      status = evaluated.status();
      if (evaluated.ok()) step_val_loss = *evaluated;
    }
    if (status.ok() && checkpoint_every > 0 && (step + 1) % checkpoint_every == 0 && !last) {
      status = backend_->Checkpoint(step + 1);
    }
    if (!status.ok()) {
      if (recoveries >= options_.max_recoveries) return status;
      if (progress) progress->Finish();
      auto resumed = backend_->Recover(status);
      if (!resumed.ok()) return resumed.status();
      ++recoveries;
      if (options_.progress != nullptr) {
        std::fprintf(options_.progress, "recovered from '%s': resuming after step %lld\n",
                     std::string(status.message()).c_str(), static_cast<long long>(*resumed));
        std::fflush(options_.progress);
      }
      step = *resumed;
      rows.resize(std::min<size_t>(rows.size(), step));
      losses.resize(std::min<size_t>(losses.size(), step));
      continue;
    }
    val_loss = step_val_loss;
    losses.push_back(stats->loss);
    const double seconds = elapsed();
    const double tokens_done = static_cast<double>((step + 1) * tokens_per_step);
    rows.push_back(absl::StrCat(
        step + 1, ",", static_cast<int64_t>(tokens_done), ",", absl::StrFormat("%.6f", stats->loss),
        ",", eval_now ? absl::StrFormat("%.6f", val_loss) : "", ",",
        absl::StrFormat("%.6f", stats->grad_norm), ",", absl::StrFormat("%.3f", seconds)));
    if (progress) {
      progress->Update(step + 1, stats->loss, val_loss, tokens_done / seconds, seconds,
                       /*force=*/eval_now);
    }
    ++step;
  }
  if (progress) progress->Finish();
  if (!options_.loss_csv_path.empty()) {
    std::ofstream csv(options_.loss_csv_path, std::ios::trunc);
    csv << "step,tokens,train_loss,val_loss,grad_norm,seconds\n";
    for (const auto& row : rows) csv << row << "\n";
    csv.close();
    if (!csv) {
      return absl::DataLossError(
          absl::StrCat("loss csv ", options_.loss_csv_path, ": write failed"));
    }
  }
  if (!stopped.ok()) return stopped;

  RunSummary summary;
  summary.job_name = config.name();
  const CompressionOptions compression = ToCompressionOptions(config);
  summary.compression = CompressionKindName(compression.kind);
  summary.ratio = compression.ratio;
  summary.wire_dtype = WireDtypeName(compression.wire_dtype);
  summary.num_stages = backend_->num_stages();
  summary.steps = steps;
  summary.recoveries = recoveries;
  summary.tokens = steps * tokens_per_step;
  const size_t tail = std::min<size_t>(10, losses.size());
  summary.final_train_loss =
      std::accumulate(losses.end() - tail, losses.end(), 0.0) / static_cast<double>(tail);
  summary.final_val_loss = val_loss;
  summary.unigram_entropy_nats = dataset_.UnigramEntropyNats();
  summary.wall_seconds = elapsed();
  summary.tokens_per_second = summary.tokens / summary.wall_seconds;
  const std::vector<BoundaryTraffic> traffic = backend_->Traffic();
  for (size_t b = 0; b < traffic.size(); ++b) {
    BoundarySummary boundary;
    boundary.boundary = static_cast<int64_t>(b);
    boundary.forward_bytes = traffic[b].forward_bytes;
    boundary.backward_bytes = traffic[b].backward_bytes;
    boundary.forward_tokens = traffic[b].forward_tokens;
    boundary.backward_tokens = traffic[b].backward_tokens;
    boundary.framing_overhead_bytes = traffic[b].framing_overhead_bytes;
    boundary.bf16_reference_bytes = traffic[b].forward_tokens * config.model().d_model() * 2;
    summary.boundaries.push_back(boundary);
  }
  if (!options_.summary_json_path.empty()) {
    RESBM_RETURN_IF_ERROR(summary.WriteJson(options_.summary_json_path));
  }
  return summary;
}

}  // namespace resbm
