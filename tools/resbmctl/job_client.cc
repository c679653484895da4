#include "tools/resbmctl/job_client.h"

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status/grpc_status.h"
#include "common/status/status_macros.h"

namespace resbm {
namespace {

absl::Status WithAddress(const grpc::Status& status, const std::string& address) {
  if (status.ok()) return absl::OkStatus();
  absl::Status s = FromGrpcStatus(status);
  if (absl::IsUnavailable(s) || absl::IsDeadlineExceeded(s)) {
    return absl::Status(s.code(), absl::StrCat("coordinator at ", address, ": ", s.message()));
  }
  return s;
}

}  // namespace

bool JobEnded(const v1::Job& job) {
  return job.state() == v1::JOB_STATE_SUCCEEDED || job.state() == v1::JOB_STATE_FAILED ||
         job.state() == v1::JOB_STATE_CANCELLED;
}

JobClient::JobClient(const std::string& address, absl::Duration deadline, JobClientAuth auth)
    : address_(address), deadline_(deadline), token_(std::move(auth.token)) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 20000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000);
  stub_ = v1::JobService::NewStub(grpc::CreateCustomChannel(
      address, auth.credentials ? auth.credentials : grpc::InsecureChannelCredentials(), args));
}

void JobClient::Prepare(grpc::ClientContext* context, bool with_deadline) const {
  if (with_deadline) context->set_deadline(absl::ToChronoTime(absl::Now() + deadline_));
  if (!token_.empty()) context->AddMetadata("authorization", "Bearer " + token_);
}

template <typename Request, typename Response>
absl::StatusOr<Response> JobClient::Call(
    grpc::Status (v1::JobService::Stub::*method)(grpc::ClientContext*, const Request&, Response*),
    const Request& request) {
  grpc::ClientContext context;
  Prepare(&context, /*with_deadline=*/true);
  Response response;
  grpc::Status status = (stub_.get()->*method)(&context, request, &response);
  if (!status.ok()) return WithAddress(status, address_);
  return response;
}

absl::StatusOr<v1::Job> JobClient::Submit(const v1::JobConfig& config, int32_t priority) {
  v1::SubmitJobRequest request;
  *request.mutable_config() = config;
  request.set_priority(priority);
  return Call(&v1::JobService::Stub::SubmitJob, request);
}

absl::StatusOr<v1::Job> JobClient::Get(const std::string& job_id) {
  v1::GetJobRequest request;
  request.set_job_id(job_id);
  return Call(&v1::JobService::Stub::GetJob, request);
}

absl::StatusOr<std::vector<v1::Job>> JobClient::List() {
  RESBM_ASSIGN_OR_RETURN(auto response,
                         Call(&v1::JobService::Stub::ListJobs, v1::ListJobsRequest()));
  return std::vector<v1::Job>(response.jobs().begin(), response.jobs().end());
}

absl::StatusOr<v1::Job> JobClient::Cancel(const std::string& job_id) {
  v1::CancelJobRequest request;
  request.set_job_id(job_id);
  return Call(&v1::JobService::Stub::CancelJob, request);
}

absl::StatusOr<v1::ClusterStatus> JobClient::ClusterStatus() {
  return Call(&v1::JobService::Stub::GetClusterStatus, v1::GetClusterStatusRequest());
}

absl::StatusOr<v1::Job> JobClient::Watch(const std::string& job_id,
                                         const std::function<void(const v1::JobEvent&)>& on_event,
                                         const std::function<bool()>& stop) {
  grpc::ClientContext context;
  Prepare(&context, /*with_deadline=*/false);
  v1::WatchJobRequest request;
  request.set_job_id(job_id);
  std::atomic<bool> done{false};
  std::atomic<bool> stopped{false};
  std::thread watchdog;
  if (stop) {
    watchdog = std::thread([&] {
      while (!done) {
        if (stop()) {
          stopped = true;
          context.TryCancel();
          return;
        }
        absl::SleepFor(absl::Milliseconds(100));
      }
    });
  }
  auto reader = stub_->WatchJob(&context, request);
  v1::JobEvent event;
  v1::Job last;
  bool any = false;
  while (reader->Read(&event)) {
    on_event(event);
    last = event.job();
    any = true;
  }
  grpc::Status status = reader->Finish();
  done = true;
  if (watchdog.joinable()) watchdog.join();
  if (stopped) return absl::CancelledError("watch stopped");
  if (!status.ok()) return WithAddress(status, address_);
  if (!any || !JobEnded(last)) {
    return absl::UnavailableError(absl::StrCat("watch of ", job_id, " ended before the job"));
  }
  return last;
}

namespace {

// Where an ExportModel stream writes one file: a partial file renamed into place at the end.
struct IncomingFile {
  uint64_t size = 0;
  uint64_t received = 0;
  std::string partial;
  std::ofstream out;
};

absl::Status CheckExportChunk(const v1::ExportFileChunk& chunk,
                              std::map<std::string, IncomingFile>& files) {
  auto it = files.find(chunk.file());
  if (it == files.end()) {
    return absl::DataLossError(absl::StrCat("export: a chunk of '", chunk.file(),
                                            "', which the export info did not announce"));
  }
  IncomingFile& file = it->second;
  if (chunk.offset() != file.received || file.received + chunk.data().size() > file.size) {
    return absl::DataLossError(absl::StrCat(
        "export: ", chunk.file(), " chunk at offset ", chunk.offset(), " of ", chunk.data().size(),
        " bytes; expected offset ", file.received, " within ", file.size, " bytes"));
  }
  file.out.write(chunk.data().data(), static_cast<std::streamsize>(chunk.data().size()));
  file.received += chunk.data().size();
  return file.out
             ? absl::OkStatus()
             : absl::UnavailableError(absl::StrCat("export: writing ", file.partial, " failed"));
}

}  // namespace

absl::StatusOr<v1::ExportInfo> JobClient::ExportModel(const std::string& job_id,
                                                      const std::string& out_dir) {
  std::error_code error;
  std::filesystem::create_directories(out_dir, error);
  if (error) {
    return absl::InvalidArgumentError(absl::StrCat("--out: '", out_dir, "': ", error.message()));
  }
  grpc::ClientContext context;
  Prepare(&context, /*with_deadline=*/false);  // A large model takes as long as it takes.
  v1::ExportModelRequest request;
  request.set_job_id(job_id);
  auto reader = stub_->ExportModel(&context, request);
  v1::ExportModelChunk message;
  std::optional<v1::ExportInfo> info;
  std::map<std::string, IncomingFile> files;
  absl::Status status;
  while (status.ok() && reader->Read(&message)) {
    if (message.has_info() && !info.has_value()) {
      info = message.info();
      for (const v1::ExportedFile& f : info->files()) {
        // Names from the network: plain file names only.
        if (f.name().empty() || f.name().find('/') != std::string::npos || f.name()[0] == '.') {
          status = absl::DataLossError(absl::StrCat("export: file name '", f.name(), "'"));
          break;
        }
        IncomingFile& file = files[f.name()];
        file.size = f.size();
        file.partial = absl::StrCat(out_dir, "/.", f.name(), ".partial");
        file.out.open(file.partial, std::ios::binary | std::ios::trunc);
      }
    } else if (message.has_chunk() && info.has_value()) {
      status = CheckExportChunk(message.chunk(), files);
    } else {
      status = absl::DataLossError("export: expected one ExportInfo, then file chunks");
    }
  }
  if (!status.ok()) context.TryCancel();
  const grpc::Status finished = reader->Finish();
  if (status.ok() && !finished.ok()) status = WithAddress(finished, address_);
  if (status.ok() && !info.has_value()) status = absl::DataLossError("export: no ExportInfo");
  for (auto& [name, file] : files) {
    file.out.close();
    if (status.ok() && file.received != file.size) {
      status = absl::DataLossError(
          absl::StrCat("export: ", name, " ended at ", file.received, " of ", file.size, " bytes"));
    }
  }
  for (auto& [name, file] : files) {
    if (status.ok()) {
      std::filesystem::rename(file.partial, absl::StrCat(out_dir, "/", name), error);
      if (error) status = absl::UnavailableError(absl::StrCat(name, ": ", error.message()));
    }
    std::filesystem::remove(file.partial, error);
  }
  if (!status.ok()) return status;
  return *info;
}

absl::StatusOr<v1::Job> JobClient::WaitForEnd(const std::string& job_id, absl::Duration timeout) {
  const absl::Time end = absl::Now() + timeout;
  while (true) {
    auto job = Get(job_id);
    if (job.ok() && JobEnded(*job)) return job;
    if (!job.ok() && !absl::IsUnavailable(job.status())) return job.status();
    if (absl::Now() >= end) {
      return absl::DeadlineExceededError(
          absl::StrCat(job_id, ": not ended after ", absl::FormatDuration(timeout)));
    }
    absl::SleepFor(absl::Milliseconds(200));
  }
}

}  // namespace resbm
