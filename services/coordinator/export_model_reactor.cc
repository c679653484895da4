#include "services/coordinator/export_model_reactor.h"

#include <fstream>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status/grpc_status.h"
#include "common/status/status_macros.h"

namespace resbm {

ExportModelReactor* ExportModelReactor::Start(const ModelExportFn& export_model,
                                              const std::string& job_id,
                                              std::function<void()> on_done) {
  auto* reactor = new ExportModelReactor(std::move(on_done));  // Freed in OnDone.
  // Detached: the thread's last act is Finish, after which OnDone may free the reactor.
  std::thread([reactor, export_model, job_id] { reactor->Run(export_model, job_id); }).detach();
  return reactor;
}

void ExportModelReactor::Run(const ModelExportFn& export_model, const std::string& job_id) {
  absl::StatusOr<ExportResult> result = export_model(job_id);
  const absl::Status status = result.ok() ? Stream(*result) : result.status();
  Finish(ToGrpcStatus(status));
}

absl::Status ExportModelReactor::Stream(const ExportResult& result) {
  v1::ExportModelChunk info_chunk;
  v1::ExportInfo* info = info_chunk.mutable_info();
  info->set_step(static_cast<uint64_t>(result.step));
  info->set_tensors(static_cast<uint32_t>(result.tensors));
  info->set_parameters(static_cast<uint64_t>(result.parameters));
  for (const auto& [name, size] : result.files) {
    auto* file = info->add_files();
    file->set_name(name);
    file->set_size(static_cast<uint64_t>(size));
  }
  RESBM_RETURN_IF_ERROR(WriteAndWait(std::move(info_chunk)));
  for (const auto& [name, size] : result.files) {
    const std::string path = absl::StrCat(result.dir, "/", name);
    std::ifstream in(path, std::ios::binary);
    if (!in) return absl::InternalError(absl::StrCat("export ", path, ": cannot open"));
    uint64_t offset = 0;
    std::string buffer(kChunkBytes, '\0');
    while (offset < static_cast<uint64_t>(size)) {
      in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
      const std::streamsize got = in.gcount();
      if (got <= 0) {
        return absl::DataLossError(absl::StrCat("export ", path, ": ends at byte ", offset, " of ",
                                                size, " (changed while sending?)"));
      }
      v1::ExportModelChunk chunk;
      chunk.mutable_chunk()->set_file(name);
      chunk.mutable_chunk()->set_offset(offset);
      chunk.mutable_chunk()->set_data(buffer.data(), static_cast<size_t>(got));
      RESBM_RETURN_IF_ERROR(WriteAndWait(std::move(chunk)));
      offset += static_cast<uint64_t>(got);
    }
  }
  return absl::OkStatus();
}

absl::Status ExportModelReactor::WriteAndWait(v1::ExportModelChunk chunk) {
  absl::MutexLock lock(&mu_);
  if (cancelled_) return absl::CancelledError("export: the client went away");
  in_flight_ = std::move(chunk);
  writing_ = true;
  StartWrite(&in_flight_);
  mu_.Await(absl::Condition(
      +[](ExportModelReactor* r) ABSL_NO_THREAD_SAFETY_ANALYSIS { return !r->writing_; }, this));
  if (!write_ok_ || cancelled_) return absl::CancelledError("export: the client went away");
  return absl::OkStatus();
}

void ExportModelReactor::OnWriteDone(bool ok) {
  absl::MutexLock lock(&mu_);
  write_ok_ = ok;
  writing_ = false;
}

void ExportModelReactor::OnCancel() {
  absl::MutexLock lock(&mu_);
  cancelled_ = true;
}

void ExportModelReactor::OnDone() {
  if (on_done_) on_done_();
  delete this;
}

}  // namespace resbm
