// ExportModelReactor: one JobService.ExportModel stream. A thread of its own runs the
// export (stitching checkpoint files can take seconds, and reactions must not block), then
// sends an ExportInfo and the exported files in 1 MiB chunks, one write in flight, waiting
// for each write to finish; a cancelled call stops between chunks. Only that thread calls
// Finish, as its last act; OnDone frees the reactor.
#ifndef RESBM_SERVICES_COORDINATOR_EXPORT_MODEL_REACTOR_H_
#define RESBM_SERVICES_COORDINATOR_EXPORT_MODEL_REACTOR_H_

#include <grpcpp/grpcpp.h>

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/modelio/model_exporter.h"
#include "resbm/v1/job_service.grpc.pb.h"

namespace resbm {

// Exports a job's model (runs on the reactor's thread).
using ModelExportFn = std::function<absl::StatusOr<ExportResult>(const std::string& job_id)>;

class ExportModelReactor final : public grpc::ServerWriteReactor<v1::ExportModelChunk> {
 public:
  static constexpr size_t kChunkBytes = 1 << 20;

  // Starts the stream; `export_model` must stay callable until the stream ends. `on_done`
  // (may be empty) runs when the stream is over, just before the reactor is freed.
  static ExportModelReactor* Start(const ModelExportFn& export_model, const std::string& job_id,
                                   std::function<void()> on_done = nullptr);

  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  explicit ExportModelReactor(std::function<void()> on_done) : on_done_(std::move(on_done)) {}
  void Run(const ModelExportFn& export_model, const std::string& job_id);
  absl::Status Stream(const ExportResult& result);
  // Writes `chunk` and waits for OnWriteDone; CANCELLED when the call is gone.
  absl::Status WriteAndWait(v1::ExportModelChunk chunk);

  std::function<void()> on_done_;
  absl::Mutex mu_;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool write_ok_ ABSL_GUARDED_BY(mu_) = true;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  v1::ExportModelChunk in_flight_;  // Owned by the stream while writing_.
};

}  // namespace resbm

#endif  // RESBM_SERVICES_COORDINATOR_EXPORT_MODEL_REACTOR_H_
