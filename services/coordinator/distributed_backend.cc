#include "services/coordinator/distributed_backend.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/config/job_config.h"
#include "common/modelio/stage_checkpoint_path.h"
#include "common/status/failure_cause.h"
#include "common/status/status_macros.h"

namespace resbm {

std::string CheckpointPath(const std::string& checkpoint_dir, const std::string& job_id,
                           int64_t steps_done, int64_t stage) {
  // The coordinator names its jobs "job-N", which the layout always accepts.
  return StageCheckpointPath(checkpoint_dir, job_id, steps_done, stage).value_or("");
}

std::string FinalManifestPath(const std::string& checkpoint_dir, const std::string& job_id) {
  return absl::StrCat(checkpoint_dir, "/", job_id, "-final.json");
}

absl::StatusOr<std::unique_ptr<DistributedBackend>> DistributedBackend::Create(
    const DistributedBackendOptions& options) {
  std::unique_ptr<DistributedBackend> backend(new DistributedBackend(options));
  RESBM_RETURN_IF_ERROR(backend->Build(absl::Now() + options.worker_wait));
  return backend;
}

DistributedBackend::DistributedBackend(const DistributedBackendOptions& options)
    : options_(options),
      num_stages_(options.config.stages().num_stages()),
      num_workers_(JobWorkerCount(options.config)),
      traffic_(num_stages_ - 1),
      timing_(num_stages_) {}

DistributedBackend::~DistributedBackend() {
  if (driver_) driver_->Release();
}

absl::Status DistributedBackend::Build(absl::Time deadline) {
  if (driver_) {
    driver_->Release();  // The workers that are not chosen again are free for others.
    driver_.reset();
  }
  v1::JobConfig config = options_.config;
  if (checkpoint_step_ >= 0 || options_.resuming) config.clear_init();
  while (true) {
    RESBM_ASSIGN_OR_RETURN(auto workers, options_.find_workers(num_workers_, deadline));
    workers.resize(num_workers_);
    RESBM_ASSIGN_OR_RETURN(auto driver, PipelineDriver::Create(options_.job_id, config, workers,
                                                               options_.credentials));
    driver->set_step_timeout(options_.step_timeout);
    driver->set_liveness(options_.liveness);
    absl::StatusOr<int64_t> parameters = driver->Assign();
    if (parameters.ok()) {
      parameters_ = *parameters;
      driver_ = std::move(driver);
      break;
    }
    // A worker that died since its last heartbeat: take another (or the same one when it is
    // heard from again) instead of failing.
    if (!SuspectUnreachable(*driver) || absl::Now() >= deadline) return parameters.status();
    driver->Release();
  }
  timed_step_ = false;
  if (options_.want_workers) options_.want_workers(0);  // Every pipeline in, if any was out.
  if (options_.on_assigned) options_.on_assigned(driver_->addresses());
  return absl::OkStatus();
}

bool DistributedBackend::SuspectUnreachable(const PipelineDriver& driver) {
  if (driver.unreachable().empty()) return false;
  for (const std::string& address : driver.unreachable()) {
    if (options_.suspect) options_.suspect(address);
  }
  return true;
}

absl::StatusOr<StepStats> DistributedBackend::TrainStep(int64_t step,
                                                        const std::vector<int64_t>& inputs,
                                                        const std::vector<int64_t>& targets) {
  // Pipelines out of the job since a loss come back at a step boundary once workers are free.
  if (!driver_->dropped().empty()) {
    if (absl::Status restored = RestorePipelines(); !restored.ok()) {
      failed_train_step_ = step;  // Mended in place like a failed step.
      return restored;
    }
  }
  absl::StatusOr<PipelineStepResult> stepped = driver_->TrainStep(step, inputs, targets);
  failed_train_step_ = stepped.ok() ? -1 : step;
  RESBM_ASSIGN_OR_RETURN(PipelineStepResult result, std::move(stepped));
  if (options_.metrics != nullptr)
    options_.metrics->WaitedOn(options_.job_id, result.waited_on_stage);
  const int64_t tokens = static_cast<int64_t>(inputs.size());
  // A pipeline's first step opens the links; timing it would blur the stages' steady state.
  // Slot r * P + s is pipeline r's stage s: a stage's means are over its replicas' steps.
  if (timed_step_) {
    for (int64_t slot = 0; slot < num_workers_; ++slot) {
      if (!driver_->active(static_cast<size_t>(slot))) continue;
      StageTiming& timing = timing_[slot % num_stages_];
      const v1::RunStepResponse& stage = result.stages[slot];
      ++timing.steps;
      timing.wait_seconds += stage.wait_seconds();
      timing.all_reduce_seconds += stage.all_reduce_seconds();
      for (const auto& mb : stage.microbatches()) {
        ++timing.microbatches;
        timing.forward_seconds += mb.forward_seconds();
        timing.backward_seconds += mb.backward_seconds();
      }
    }
  }
  timed_step_ = true;
  CountReplicaBytes();
  // Boundary b: what stage b sent down and what stage b + 1 sent back up.
  for (int64_t first = 0; first < num_workers_; first += num_stages_) {
    if (!driver_->active(static_cast<size_t>(first))) continue;
    for (int64_t b = 0; b + 1 < num_stages_; ++b) {
      const v1::RunStepResponse& up = result.stages[first + b];
      const v1::RunStepResponse& down = result.stages[first + b + 1];
      traffic_[b].forward_bytes += static_cast<int64_t>(up.activation_bytes_sent());
      traffic_[b].backward_bytes += static_cast<int64_t>(down.gradient_bytes_sent());
      traffic_[b].framing_overhead_bytes += static_cast<int64_t>(
          up.activation_overhead_bytes_sent() + down.gradient_overhead_bytes_sent());
      traffic_[b].token_id_bytes += static_cast<int64_t>(down.token_id_bytes_received());
    }
  }
  for (int64_t b = 0; b + 1 < num_stages_; ++b) {
    traffic_[b].forward_tokens += tokens;
    traffic_[b].backward_tokens += tokens;
  }
  return result.stats;
}

absl::StatusOr<double> DistributedBackend::Evaluate(int64_t round,
                                                    const std::vector<int64_t>& inputs,
                                                    const std::vector<int64_t>& targets) {
  failed_train_step_ = -1;
  absl::StatusOr<double> loss = driver_->Evaluate(round, inputs, targets);
  CountReplicaBytes();  // An evaluation may carry a synchronisation.
  return loss;
}

void DistributedBackend::CountReplicaBytes() {
  const std::vector<int64_t> bytes = driver_->TakeReplicaBytes();
  for (size_t s = 0; s < bytes.size() && s < timing_.size(); ++s) {
    timing_[s].replica_bytes_sent += bytes[s];
  }
}

absl::StatusOr<std::vector<std::string>> DistributedBackend::Checkpoint(int64_t steps_done) {
  failed_train_step_ = -1;
  if (options_.checkpoint_dir.empty()) {
    return absl::FailedPreconditionError("checkpoint_dir: empty; checkpoints need a directory");
  }
  std::error_code error;
  std::filesystem::create_directories(options_.checkpoint_dir, error);
  std::vector<std::string> paths;
  for (int64_t s = 0; s < num_stages_; ++s) {
    paths.push_back(CheckpointPath(options_.checkpoint_dir, options_.job_id, steps_done, s));
  }
  const absl::Time start = absl::Now();
  RESBM_ASSIGN_OR_RETURN(const int64_t bytes, driver_->SaveCheckpoints(steps_done));
  for (size_t s = 0; s < paths.size(); ++s) {
    if (!std::filesystem::exists(paths[s], error)) {
      // Not a fault to recover from: the deployment does not share the directory.
      return absl::FailedPreconditionError(absl::StrCat(
          "checkpoint of stage ", s, ": written by its worker but not found at ", paths[s],
          "; expected workers' --checkpoint-dir to be the coordinator's (a shared volume)"));
    }
  }
  if (options_.metrics != nullptr) {
    options_.metrics->Checkpointed(absl::ToDoubleSeconds(absl::Now() - start), bytes);
  }
  // Complete: every stage acknowledged. Keep the last training.keep_checkpoints (at least
  // the previous one stays until whoever records checkpoints durably, the job store, has
  // seen this one); a final checkpoint retires the others once the job has ended well
  // (RetireAllButLast).
  kept_checkpoints_.push_back(paths);
  const size_t keep = std::max<size_t>(2, options_.config.training().keep_checkpoints());
  while (kept_checkpoints_.size() > keep) {
    for (const auto& old : kept_checkpoints_.front()) std::filesystem::remove(old, error);
    kept_checkpoints_.pop_front();
  }
  checkpoint_step_ = steps_done;
  checkpoint_paths_ = paths;
  return paths;
}

void DistributedBackend::RetireAllButLast() {
  std::error_code error;
  while (kept_checkpoints_.size() > 1) {
    for (const auto& old : kept_checkpoints_.front()) std::filesystem::remove(old, error);
    kept_checkpoints_.pop_front();
  }
}

absl::StatusOr<int64_t> DistributedBackend::Recover(const absl::Status& failure) {
  if (num_workers_ > num_stages_ && failed_train_step_ >= 0) {
    absl::StatusOr<int64_t> redo = ReplaceLostReplicas();
    failed_train_step_ = -1;
    if (redo.ok()) return redo;
    std::fprintf(stderr, "coordinator: %s: replicas not mended in place (%s): the checkpoint\n",
                 options_.job_id.c_str(), redo.status().ToString().c_str());
    // A whole stage lost, no replacement, or a replacement that failed: the checkpoint.
  }
  if (checkpoint_step_ < 0) return failure;  // Nothing to go back to.
  return RebuildFromCheckpoint(failure);
}

absl::Status DistributedBackend::Restore(int64_t steps_done) {
  checkpoint_step_ = steps_done;
  checkpoint_paths_.clear();
  for (int64_t s = 0; s < num_stages_; ++s) {
    checkpoint_paths_.push_back(
        CheckpointPath(options_.checkpoint_dir, options_.job_id, steps_done, s));
  }
  kept_checkpoints_ = {checkpoint_paths_};  // Retired like the ones this run writes.
  auto step = driver_->LoadCheckpoints(steps_done);
  // A worker may have gone since the stages were assigned: the same way back as a recovery.
  if (!step.ok() && SuspectUnreachable(*driver_)) step = RebuildFromCheckpoint(step.status());
  RESBM_RETURN_IF_ERROR(step.status());
  if (*step != steps_done) {
    return absl::DataLossError(
        absl::StrCat("checkpoint after step ", steps_done, " holds step ", *step));
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> DistributedBackend::ReplaceLostReplicas() {
  const int64_t step = failed_train_step_;
  const std::vector<size_t> gone = driver_->Unresponsive(absl::Seconds(3));
  // A refused replica's worker is fine, its state is not: it takes its stage's again.
  std::map<size_t, StageEndpoint> replacements;
  for (size_t slot : driver_->refused()) {
    replacements[slot] = driver_->endpoint(slot);
  }
  if (options_.metrics != nullptr && !driver_->refused().empty()) {
    options_.metrics->ReplicasRefused(static_cast<int64_t>(driver_->refused().size()));
  }
  std::set<std::string> in_use;
  for (size_t slot = 0; slot < driver_->addresses().size(); ++slot) {
    in_use.insert(driver_->addresses()[slot]);
  }
  for (size_t slot : gone) {
    if (options_.suspect) options_.suspect(driver_->addresses()[slot]);
  }
  if (!gone.empty()) {
    absl::StatusOr<std::vector<StageEndpoint>> found =
        options_.find_workers(num_workers_, absl::Now());
    std::set<int64_t> broken;
    for (size_t slot : gone) broken.insert(static_cast<int64_t>(slot) / num_stages_);
    if (!found.ok() && replacements.empty() && driver_->CanDrop(broken)) {
      // No idle worker now: the pipelines left take the broken ones' microbatches at once,
      // and the broken ones come back when workers do (RestorePipelines).
      RESBM_RETURN_IF_ERROR(
          Annotate(driver_->DropPipelines(broken), "going on without pipelines: "));
      if (options_.want_workers) options_.want_workers(num_workers_);
      timed_step_ = false;
      if (options_.on_assigned) options_.on_assigned(AssignedAddresses());
      return step;
    }
    if (!found.ok()) {
      found = options_.find_workers(num_workers_, absl::Now() + options_.recovery_timeout);
    }
    // A kept worker whose heartbeat lapsed is not in `healthy` but stays the job's (the
    // registry keeps an unhealthy worker's lease).
    RESBM_ASSIGN_OR_RETURN(std::vector<StageEndpoint> healthy, std::move(found));
    auto next = healthy.begin();
    for (size_t slot : gone) {
      while (next != healthy.end() && in_use.count(next->address) != 0) ++next;
      if (next == healthy.end()) {
        return absl::UnavailableError(
            absl::StrCat("replicas: no idle worker to replace ", driver_->addresses()[slot]));
      }
      replacements[slot] = *next++;
    }
  }
  RESBM_RETURN_IF_ERROR(Annotate(driver_->Replace(replacements).status(),
                                 absl::StrCat("replacing ", replacements.size(), " replicas (",
                                              driver_->dropped().size(), " pipelines out): ")));
  if (!replacements.empty() && options_.on_assigned) options_.on_assigned(AssignedAddresses());
  return step;
}

std::vector<std::string> DistributedBackend::AssignedAddresses() const {
  std::vector<std::string> addresses = driver_->addresses();
  for (size_t slot = 0; slot < addresses.size(); ++slot) {
    if (!driver_->active(slot)) addresses[slot].clear();
  }
  return addresses;
}

absl::Status DistributedBackend::RestorePipelines() {
  // Without waiting: the job goes on with the pipelines it has until enough workers are free.
  absl::StatusOr<std::vector<StageEndpoint>> leased =
      options_.find_workers(num_workers_, absl::Now());
  if (!leased.ok()) return absl::OkStatus();
  std::set<std::string> in_use;
  for (size_t slot = 0; slot < driver_->addresses().size(); ++slot) {
    if (driver_->active(slot)) in_use.insert(driver_->addresses()[slot]);
  }
  std::map<size_t, StageEndpoint> slots;  // Every slot of the pipelines out of the job.
  std::vector<size_t> unfilled;
  for (int64_t r : driver_->dropped()) {
    for (int64_t s = 0; s < num_stages_; ++s) {
      const size_t slot = static_cast<size_t>(r * num_stages_ + s);
      // A worker of the pipeline that stayed healthy serves its slot again (fresh state).
      const std::string& address = driver_->addresses()[slot];
      auto worker = std::find_if(leased->begin(), leased->end(),
                                 [&](const StageEndpoint& w) { return w.address == address; });
      if (worker != leased->end() && in_use.insert(address).second) {
        slots[slot] = *worker;  // Its exchange address as it registered last.
      } else {
        unfilled.push_back(slot);
      }
    }
  }
  auto next = leased->begin();
  for (size_t slot : unfilled) {
    while (next != leased->end() && in_use.count(next->address) != 0) ++next;
    if (next == leased->end()) return absl::OkStatus();  // Not yet.
    in_use.insert(next->address);
    slots[slot] = *next++;
  }
  const std::set<int64_t> restoring = driver_->dropped();
  if (absl::Status replaced = driver_->Replace(slots).status(); !replaced.ok()) {
    // Half back (some rings rewired with them): take them out again, so the live pipelines'
    // rings close over themselves, and go on; a failure there is the step's.
    RESBM_RETURN_IF_ERROR(Annotate(driver_->DropPipelines(restoring),
                                   absl::StrCat("after '", replaced.message(), "': ")));
    std::fprintf(stderr, "coordinator: %s: pipelines not back yet (%s)\n", options_.job_id.c_str(),
                 replaced.ToString().c_str());
  } else if (options_.want_workers) {
    options_.want_workers(0);  // Whole again.
  }
  timed_step_ = false;  // New links: the next step is not steady state.
  if (options_.on_assigned) options_.on_assigned(AssignedAddresses());
  return absl::OkStatus();
}

absl::StatusOr<int64_t> DistributedBackend::RebuildFromCheckpoint(const absl::Status& failure) {
  const absl::Time deadline = absl::Now() + options_.recovery_timeout;
  absl::Status last = failure;
  while (true) {
    if (options_.cancelled && options_.cancelled()) {
      return absl::CancelledError(
          absl::StrCat("cancelled while recovering from '", failure.message(), "'"));
    }
    last = Build(deadline);
    if (last.ok()) {
      auto step = driver_->LoadCheckpoints(checkpoint_step_);
      if (step.ok()) return *step;
      last = step.status();
      // A worker lost while restoring: build again without it. Anything else (a checkpoint
      // that does not load) would fail the same way again.
      if (!SuspectUnreachable(*driver_)) break;
    } else {
      break;
    }
    if (absl::Now() >= deadline) break;
  }
  return Annotate(last, absl::StrCat("recovery from '", failure.message(), "' gave up: "));
}

}  // namespace resbm
