// ReducePeerService: a StageWorker service that answers ReduceChunk alone, into a
// ReduceInbox: a ring replica without a stage, for benchmarks and tests of GradientRing over
// real gRPC. ServeReduceChunk is the handler, the worker's StageWorkerService's too: the
// request arrives as raw bytes, and its values stay in the slices gRPC read them into.
// Thread-safe.
#ifndef RESBM_SERVICES_STAGE_WORKER_REDUCE_PEER_SERVICE_H_
#define RESBM_SERVICES_STAGE_WORKER_REDUCE_PEER_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <utility>

#include "services/stage_worker/raw_stage_worker_service.h"
#include "services/stage_worker/reduce_inbox.h"

namespace resbm {

// Parses `request` (a ReduceChunkRequest) and delivers it to `inbox`; the reactor finishes
// with the inbox's answer (INVALID_ARGUMENT for bytes that are not such a request).
// `response` becomes an empty ReduceChunkResponse (zero bytes, but a valid buffer).
grpc::ServerUnaryReactor* ServeReduceChunk(grpc::CallbackServerContext* context,
                                           const grpc::ByteBuffer* request,
                                           grpc::ByteBuffer* response, ReduceInbox* inbox);

class ReducePeerService final : public RawStageWorkerService {
 public:
  explicit ReducePeerService(std::shared_ptr<ReduceInbox> inbox) : inbox_(std::move(inbox)) {}

  grpc::ServerUnaryReactor* ReduceChunk(grpc::CallbackServerContext* context,
                                        const grpc::ByteBuffer* request,
                                        grpc::ByteBuffer* response) override {
    return ServeReduceChunk(context, request, response, inbox_.get());
  }
  // Not a stage: no boundary stream (a raw method's default would be no reactor at all).
  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* Exchange(
      grpc::CallbackServerContext* context) override;

 private:
  const std::shared_ptr<ReduceInbox> inbox_;
};

}  // namespace resbm

#endif  // RESBM_SERVICES_STAGE_WORKER_REDUCE_PEER_SERVICE_H_
