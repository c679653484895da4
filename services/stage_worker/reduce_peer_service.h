// ReducePeerService: a StageWorker service that answers ReduceChunk alone, into a
// ReduceInbox: a ring replica without a stage, for benchmarks and tests of GradientRing over
// real gRPC (the worker's own StageWorkerService answers ReduceChunk the same way).
// Thread-safe.
#ifndef RESBM_SERVICES_STAGE_WORKER_REDUCE_PEER_SERVICE_H_
#define RESBM_SERVICES_STAGE_WORKER_REDUCE_PEER_SERVICE_H_

#include <memory>
#include <utility>

#include "common/status/grpc_status.h"
#include "resbm/v1/stage_worker.grpc.pb.h"
#include "services/stage_worker/reduce_inbox.h"

namespace resbm {

class ReducePeerService final : public v1::StageWorker::CallbackService {
 public:
  explicit ReducePeerService(std::shared_ptr<ReduceInbox> inbox) : inbox_(std::move(inbox)) {}

  grpc::ServerUnaryReactor* ReduceChunk(grpc::CallbackServerContext* context,
                                        const v1::ReduceChunkRequest* request,
                                        v1::ReduceChunkResponse* /*response*/) override {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(ToGrpcStatus(inbox_->Deliver(*request)));
    return reactor;
  }

 private:
  const std::shared_ptr<ReduceInbox> inbox_;
};

}  // namespace resbm

#endif  // RESBM_SERVICES_STAGE_WORKER_REDUCE_PEER_SERVICE_H_
