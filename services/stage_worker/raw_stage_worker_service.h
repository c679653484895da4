// RawStageWorkerService: StageWorker's callback service with its two bulk methods, Exchange
// and ReduceChunk, on raw messages (grpc::ByteBuffer): their payloads reach gRPC's slices and
// come back out of them without protobuf copying them (FrameMessage, JoinBulkField). The
// generated CallbackService cannot have a method made raw on top of it, so the list is spelt
// out: a new RPC in stage_worker.proto is added here too.
#ifndef RESBM_SERVICES_STAGE_WORKER_RAW_STAGE_WORKER_SERVICE_H_
#define RESBM_SERVICES_STAGE_WORKER_RAW_STAGE_WORKER_SERVICE_H_

#include "resbm/v1/stage_worker.grpc.pb.h"

namespace resbm {

using RawStageWorkerService = v1::StageWorker::WithCallbackMethod_Assign<
    v1::StageWorker::WithCallbackMethod_RunStep<v1::StageWorker::WithCallbackMethod_ApplyStep<
        v1::StageWorker::WithCallbackMethod_SaveCheckpoint<
            v1::StageWorker::WithCallbackMethod_LoadCheckpoint<
                v1::StageWorker::WithCallbackMethod_Release<
                    v1::StageWorker::WithRawCallbackMethod_Exchange<
                        v1::StageWorker::WithRawCallbackMethod_ReduceChunk<
                            v1::StageWorker::WithCallbackMethod_FetchState<
                                v1::StageWorker::Service>>>>>>>>>;

}  // namespace resbm

#endif  // RESBM_SERVICES_STAGE_WORKER_RAW_STAGE_WORKER_SERVICE_H_
