// ExchangeClientReactor: the upstream end of a boundary stream (stage s calling stage s + 1):
// writes the activation frames the executor queues and reads gradient frames into its
// FrameLink's mailbox. One read and at most one write in flight. While the mailbox is at its
// byte budget no read is outstanding; the mailbox resumes it from the thread that frees room,
// and a hold keeps the call alive until the read flow ends. The executor ends the stream
// normally with the link's FinishWrites (a WritesDone). Owns itself until OnDone. Reactions
// never block.
#ifndef RESBM_SERVICES_STAGE_WORKER_EXCHANGE_CLIENT_REACTOR_H_
#define RESBM_SERVICES_STAGE_WORKER_EXCHANGE_CLIENT_REACTOR_H_

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <memory>

#include "common/transport/frame_link.h"
#include "resbm/v1/stage_worker.grpc.pb.h"

namespace resbm {

class ExchangeClientReactor : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>,
                              public FrameWriter {
 public:
  // Starts StageWorker/Exchange on `stub` (must outlive the call), its frames as raw
  // messages (FrameMessage). The caller keeps `context` to end the stream from its side with
  // TryCancel (an aborted step, shutdown).
  static void Start(grpc::GenericStub* stub, std::shared_ptr<FrameLink> link,
                    std::shared_ptr<grpc::ClientContext> context);

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnDone(const grpc::Status& status) override;
  void StartFrameWrite(const grpc::ByteBuffer* message) override;
  void StartFrameWritesDone() override;

 private:
  ExchangeClientReactor(std::shared_ptr<FrameLink> link,
                        std::shared_ptr<grpc::ClientContext> context);
  // The mailbox has room again: read on (the read flow's hold keeps the call alive).
  void Resume();

  std::shared_ptr<grpc::ClientContext> context_;
  std::shared_ptr<FrameLink> link_;
  grpc::ByteBuffer incoming_;
  std::shared_ptr<ExchangeClientReactor> self_;  // Dropped in OnDone.
};

}  // namespace resbm

#endif  // RESBM_SERVICES_STAGE_WORKER_EXCHANGE_CLIENT_REACTOR_H_
