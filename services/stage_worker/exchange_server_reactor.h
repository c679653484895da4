// ExchangeServerReactor: the downstream end of a boundary stream (stage s + 1 serving
// stage s): reads activation frames into its FrameLink's mailbox and writes the gradient
// frames the executor queues. One read and at most one write in flight; finishes once;
// deleted in OnDone, the only place it is freed. Reactions never block.
#ifndef RESBM_SERVICES_STAGE_WORKER_EXCHANGE_SERVER_REACTOR_H_
#define RESBM_SERVICES_STAGE_WORKER_EXCHANGE_SERVER_REACTOR_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <memory>

#include "common/transport/frame_link.h"
#include "resbm/v1/tensor_frame.pb.h"

namespace resbm {

class ExchangeServerReactor : public grpc::ServerBidiReactor<v1::TensorFrame, v1::TensorFrame>,
                              public FrameWriter {
 public:
  // `link` is shared with the worker, which takes frames from it and sends through it.
  explicit ExchangeServerReactor(std::shared_ptr<FrameLink> link);

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;
  void StartFrameWrite(const v1::TensorFrame* frame) override;

 private:
  void FinishOnce(const grpc::Status& status);

  std::shared_ptr<FrameLink> link_;
  v1::TensorFrame incoming_;
  std::atomic<bool> finished_{false};
};

}  // namespace resbm

#endif  // RESBM_SERVICES_STAGE_WORKER_EXCHANGE_SERVER_REACTOR_H_
