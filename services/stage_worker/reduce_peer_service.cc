#include "services/stage_worker/reduce_peer_service.h"

#include "common/status/grpc_status.h"
#include "common/transport/bulk_message.h"

namespace resbm {

grpc::ServerUnaryReactor* ServeReduceChunk(grpc::CallbackServerContext* context,
                                           const grpc::ByteBuffer* request,
                                           grpc::ByteBuffer* response, ReduceInbox* inbox) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  v1::ReduceChunkRequest fields;
  BulkBytes values;
  absl::Status status =
      SplitBulkField(*request, v1::ReduceChunkRequest::kValuesFieldNumber, &fields, &values);
  if (status.ok()) status = inbox->Deliver(fields, std::move(values));
  grpc::Slice none;
  *response = grpc::ByteBuffer(&none, 1);
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* ReducePeerService::Exchange(
    grpc::CallbackServerContext* context) {
  // Finished at once: a reactor that only answers UNIMPLEMENTED, freed when the call is done.
  class Refusal : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
   public:
    Refusal() { Finish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "not a stage worker")); }
    void OnDone() override { delete this; }
  };
  return new Refusal;
}

}  // namespace resbm
