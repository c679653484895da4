#include "services/coordinator/coordinator.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>

#include <filesystem>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/modelio/checkpoint_manifest_file.h"
#include "common/modelio/model_source.h"
#include "common/status/status_macros.h"
#include "common/train/job_dataset.h"
#include "common/train/trainer.h"
#include "common/transport/grpc_settings.h"
#include "services/coordinator/distributed_backend.h"

namespace resbm {

absl::StatusOr<std::unique_ptr<Coordinator>> Coordinator::Start(const CoordinatorOptions& options) {
  grpc::EnableDefaultHealthCheckService(true);
  // Reflection would describe the job API to anyone who completes a TLS handshake: only for
  // plaintext runs (one machine, a trusted network).
  if (options.security.plaintext()) grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  if (!options.security.plaintext() && !options.tokens.has_value()) {
    return absl::InvalidArgumentError(
        "auth_tokens_file: empty; a coordinator with TLS needs the job API's bearer tokens");
  }
  std::unique_ptr<Coordinator> coordinator(new Coordinator(options));
  Coordinator* c = coordinator.get();
  JobManagerOptions manager_options;
  manager_options.limits = options.job_start_limits;
  manager_options.metrics = &c->metrics_;
  // A cancelled job stops waiting for workers at once.
  manager_options.on_stop = [c] { c->registry_.WakeWaiters(); };
  RESBM_ASSIGN_OR_RETURN(c->jobs_,
                         JobManager::Open(
                             options.data_dir, [c](const JobRun& run) { return c->RunJob(run); },
                             &c->registry_, std::move(manager_options)));
  c->job_service_ = std::make_unique<JobService>(
      c->jobs_.get(), &c->registry_, options.tokens ? &*c->options_.tokens : nullptr, &c->limiter_,
      JobServicePolicy{options.max_queued_jobs, options.max_unfinished_jobs_per_user,
                       options.admin_users},
      [c](const std::string& job_id) { return c->ExportJob(job_id); });
  grpc::ServerBuilder builder;
  // Workers present certificates (the Control service insists), users bearer tokens.
  builder.AddListeningPort(
      options.listen_address,
      options.security.ServerCredentials(TransportSecurity::ClientCertificates::kVerifyIfPresented),
      &c->port_);
  builder.RegisterService(&c->control_);
  builder.RegisterService(c->job_service_.get());
  RESBM_ASSIGN_OR_RETURN(c->server_, StartServer(builder, options.listen_address, c->port_));
  if (!options.metrics_address.empty()) {
    RESBM_ASSIGN_OR_RETURN(c->metrics_server_,
                           MetricsServer::Start(options.metrics_address, c->metrics_.registry(),
                                                [c] { c->RefreshMetrics(); }));
  }
  return coordinator;
}

Coordinator::Coordinator(const CoordinatorOptions& options)
    : options_(options),
      registry_(options.heartbeat_timeout),
      control_(&registry_, options.heartbeat_interval,
               /*require_certificate=*/!options.security.plaintext()),
      metrics_(std::make_shared<prometheus::Registry>()),
      limiter_(options.max_submits_per_minute) {
  if (options_.checkpoint_dir.empty()) options_.checkpoint_dir = options_.data_dir + "/checkpoints";
  // Workers get these paths: independent of their working directory.
  options_.checkpoint_dir =
      std::filesystem::absolute(options_.checkpoint_dir).lexically_normal().string();
}

Coordinator::~Coordinator() { Shutdown(absl::Now() + absl::Seconds(1)); }

void Coordinator::RefreshMetrics() {
  std::map<std::string, int64_t> states;
  for (int state = v1::JOB_STATE_QUEUED; state <= v1::JOB_STATE_CANCELLED; ++state) {
    states[absl::AsciiStrToLower(v1::JobState_Name(static_cast<v1::JobState>(state)).substr(10))] =
        0;
  }
  if (auto jobs = jobs_->List(); jobs.ok()) {
    for (const auto& job : *jobs)
      ++states[absl::AsciiStrToLower(v1::JobState_Name(job.state()).substr(10))];
  }
  metrics_.SetJobs(states);
  int64_t healthy = 0, lost = 0;
  for (const auto& worker : registry_.All()) ++(registry_.IsHealthy(worker) ? healthy : lost);
  metrics_.SetWorkers(healthy, lost);
}

absl::StatusOr<RunSummary> Coordinator::RunJob(const JobRun& run) {
  const std::string& job_id = run.job.job_id();
  DistributedBackendOptions backend_options;
  backend_options.job_id = job_id;
  backend_options.config = run.job.config();
  backend_options.checkpoint_dir = options_.checkpoint_dir;
  backend_options.step_timeout = options_.step_timeout;
  backend_options.cancelled = run.stop_requested;
  backend_options.on_assigned = run.on_assigned;
  backend_options.metrics = &metrics_;
  backend_options.credentials = options_.security.ChannelCredentials();
  backend_options.resuming = run.resume.has_value();
  backend_options.worker_wait = options_.worker_wait;
  backend_options.find_workers =
      [this, &run, job_id](int64_t count,
                           absl::Time deadline) -> absl::StatusOr<std::vector<StageEndpoint>> {
    RESBM_ASSIGN_OR_RETURN(
        const auto leased,
        registry_.Acquire(job_id, count, deadline, run.stop_requested, [&](int64_t have) {
          run.on_status(absl::StrCat("waiting for ", count, " workers (", have,
                                     " healthy and free for this job)"));
        }));
    std::vector<StageEndpoint> workers;
    for (const auto& worker : leased) {
      workers.push_back(StageEndpoint{worker.address, worker.exchange_address});
    }
    return workers;
  };
  backend_options.suspect = [this](const std::string& address) { registry_.Suspect(address); };
  backend_options.want_workers = [this, job_id](int64_t total) { registry_.Want(job_id, total); };
  backend_options.liveness = [this](const std::string& address) {
    return registry_.LapsesAt(address);
  };
  absl::StatusOr<std::unique_ptr<DistributedBackend>> backend =
      DistributedBackend::Create(backend_options);
  RESBM_RETURN_IF_ERROR(backend.status());
  if (options_.progress != nullptr) {
    std::fprintf(options_.progress,
                 "coordinator: %s: %lld stages assigned (%lld parameters):", job_id.c_str(),
                 static_cast<long long>((*backend)->num_stages()),
                 static_cast<long long>((*backend)->parameters()));
    // Slot r * P + s: "s=address" with one replica, "s/r=address" with several.
    const size_t stages = static_cast<size_t>((*backend)->num_stages());
    const bool replicas = (*backend)->addresses().size() > stages;
    for (size_t slot = 0; slot < (*backend)->addresses().size(); ++slot) {
      const std::string name =
          replicas ? absl::StrCat(slot % stages, "/", slot / stages) : absl::StrCat(slot);
      std::fprintf(options_.progress, " %s=%s", name.c_str(),
                   (*backend)->addresses()[slot].c_str());
    }
    std::fprintf(options_.progress, "\n");
    std::fflush(options_.progress);
  }
  TrainerOptions trainer_options;
  trainer_options.config = run.job.config();
  trainer_options.summary_json_path = run.output_dir + "/summary.json";
  trainer_options.loss_csv_path = run.output_dir + "/losses.csv";
  trainer_options.progress = options_.progress;
  trainer_options.stop_requested = run.stop_requested;
  trainer_options.hooks = run.hooks;
  trainer_options.resume = run.resume;
  trainer_options.recorded_data = FromDataRecord(run.job.data());
  trainer_options.job_id = job_id;
  trainer_options.final_manifest_path = FinalManifestPath(options_.checkpoint_dir, job_id);
  DistributedBackend* pipeline = backend->get();  // Owned by the trainer from here.
  RESBM_ASSIGN_OR_RETURN(auto trainer, Trainer::Create(trainer_options, std::move(*backend)));
  absl::StatusOr<RunSummary> summary = trainer->Run();
  // The final checkpoint is recorded (on_final_checkpoint ran): the others can go.
  if (summary.ok()) pipeline->RetireAllButLast();
  return summary;
}

absl::StatusOr<std::string> Coordinator::ExportManifest(const v1::Job& job) {
  if (job.has_final_checkpoint_step()) return job.final_checkpoint_manifest();
  if (!job.progress().has_checkpoint_step()) {
    return absl::FailedPreconditionError(
        absl::StrCat("job_id: ", job.job_id(), " ended (", v1::JobState_Name(job.state()),
                     ") before its first complete checkpoint; nothing to export"));
  }
  // A failed or cancelled job: its last complete checkpoint, described by a manifest of its
  // own beside the stage files.
  const int64_t step = static_cast<int64_t>(job.progress().checkpoint_step());
  v1::CheckpointManifest manifest;
  manifest.set_format_version(CheckpointManifestFile::kFormatVersion);
  manifest.set_job_id(job.job_id());
  manifest.set_step(static_cast<uint64_t>(step));
  *manifest.mutable_config() = job.config();
  for (uint32_t s = 0; s < job.config().stages().num_stages(); ++s) {
    manifest.add_stage_files(
        std::filesystem::path(CheckpointPath(options_.checkpoint_dir, job.job_id(), step, s))
            .filename()
            .string());
  }
  const std::string path =
      absl::StrCat(options_.checkpoint_dir, "/", job.job_id(), "-step-", step, ".json");
  RESBM_RETURN_IF_ERROR(CheckpointManifestFile::Write(path, manifest));
  return path;
}

absl::StatusOr<ExportResult> Coordinator::ExportJob(const std::string& job_id) {
  {
    absl::MutexLock lock(&export_count_mu_);
    if (exports_closed_) return absl::UnavailableError("coordinator: shutting down");
    ++exports_running_;
  }
  auto done = absl::MakeCleanup([this] {
    absl::MutexLock lock(&export_count_mu_);
    --exports_running_;
  });
  RESBM_ASSIGN_OR_RETURN(const v1::Job job, jobs_->Get(job_id));
  if (job.state() == v1::JOB_STATE_QUEUED || job.state() == v1::JOB_STATE_RUNNING) {
    return absl::FailedPreconditionError(absl::StrCat("job_id: ", job_id, " is ",
                                                      v1::JobState_Name(job.state()),
                                                      "; its model can be exported once it ends"));
  }
  absl::MutexLock lock(&export_mu_);  // One stitching at a time; the next reuses its result.
  RESBM_ASSIGN_OR_RETURN(const std::string manifest, ExportManifest(job));
  const std::string dir = job.output_dir() + "/model";
  const int64_t step = job.has_final_checkpoint_step()
                           ? static_cast<int64_t>(job.final_checkpoint_step())
                           : static_cast<int64_t>(job.progress().checkpoint_step());
  if (auto existing = ModelSource::OpenModel(dir); existing.ok() && (*existing)->step() == step) {
    std::error_code error;
    ExportResult result;
    result.dir = dir;
    result.step = step;
    result.tensors = static_cast<int64_t>((*existing)->shapes().size());
    for (const NamedShape& shape : (*existing)->shapes()) {
      int64_t n = 1;
      for (int64_t d : shape.shape) n *= d;
      result.parameters += n;
    }
    for (const char* name : {ModelExporter::kModelFile, ModelExporter::kConfigFile}) {
      result.files.emplace_back(
          name, static_cast<int64_t>(std::filesystem::file_size(dir + "/" + name, error)));
    }
    if (!error) return result;
  }
  return ModelExporter::Export(manifest, dir);
}

void Coordinator::Shutdown(absl::Time deadline) {
  if (shut_down_) return;
  shut_down_ = true;
  {
    // Exports call into this object from their own threads: let them end first.
    absl::MutexLock lock(&export_count_mu_);
    exports_closed_ = true;
    export_count_mu_.Await(absl::Condition(
        +[](int64_t* running) { return *running == 0; }, &exports_running_));
  }
  if (jobs_) jobs_->Shutdown();
  metrics_server_.reset();
  if (server_ == nullptr) return;
  server_->GetHealthCheckService()->Shutdown();
  server_->Shutdown(absl::ToChronoTime(deadline));
}

}  // namespace resbm
