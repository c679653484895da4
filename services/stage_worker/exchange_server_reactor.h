// ExchangeServerReactor: the downstream end of a boundary stream (stage s + 1 serving
// stage s): reads activation frames into its FrameLink's mailbox and writes the gradient
// frames the executor queues. One read and at most one write in flight. While the mailbox is
// at its byte budget no read is outstanding (the sender is held back by flow control); the
// mailbox resumes it from the thread that frees room. Finishes once, never while such a
// resume is starting a read; owns itself until OnDone. Reactions never block.
#ifndef RESBM_SERVICES_STAGE_WORKER_EXCHANGE_SERVER_REACTOR_H_
#define RESBM_SERVICES_STAGE_WORKER_EXCHANGE_SERVER_REACTOR_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/transport/frame_link.h"
#include "resbm/v1/tensor_frame.pb.h"

namespace resbm {

class ExchangeServerReactor : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>,
                              public FrameWriter {
 public:
  // How a stream ended: "writes_done" (the upstream half-closed: the normal end) or
  // "cancelled".
  using OnEnd = std::function<void(const std::string& how)>;

  // Starts reading into `link` (shared with the worker, which takes frames from it and sends
  // through it). The reactor owns itself until OnDone. `on_end` may be empty.
  static ExchangeServerReactor* Start(std::shared_ptr<FrameLink> link, OnEnd on_end);

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;
  void StartFrameWrite(const grpc::ByteBuffer* message) override;

 private:
  ExchangeServerReactor(std::shared_ptr<FrameLink> link, OnEnd on_end);
  // The mailbox has room again: read on, from whichever thread freed it.
  void Resume();
  void FinishOnce(const grpc::Status& status);

  std::shared_ptr<FrameLink> link_;
  OnEnd on_end_;
  grpc::ByteBuffer incoming_;                    // A raw TensorFrame (ParseFrameMessage).
  std::shared_ptr<ExchangeServerReactor> self_;  // Dropped in OnDone.
  std::atomic<bool> cancelled_{false};
  absl::Mutex mu_;
  int resuming_ ABSL_GUARDED_BY(mu_) = 0;  // Resumes between their check and their StartRead.
  bool finish_requested_ ABSL_GUARDED_BY(mu_) = false;
  bool finish_called_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status finish_status_ ABSL_GUARDED_BY(mu_);
};

}  // namespace resbm

#endif  // RESBM_SERVICES_STAGE_WORKER_EXCHANGE_SERVER_REACTOR_H_
