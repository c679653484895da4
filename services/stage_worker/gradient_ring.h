// GradientRing: the all-reduce of one stage's gradients over its replicas, directly between
// the workers (never through the coordinator). A ring: the values are cut into R chunks;
// in R - 1 rounds each replica sends one chunk to the next replica and adds the one it
// receives from the previous (reduce-scatter), then in R - 1 more rounds passes the finished
// sums on (all-gather). Each chunk's sum is made once, by one replica, in one order, and the
// others copy it: every replica ends with the same bits, so they apply the same update.
// Each worker sends 2 (R - 1) / R of the gradients and receives as much. Used by one
// executor thread; the sends run on gRPC's callback stub.
#ifndef RESBM_SERVICES_STAGE_WORKER_GRADIENT_RING_H_
#define RESBM_SERVICES_STAGE_WORKER_GRADIENT_RING_H_

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/runtime/cancellation.h"
#include "resbm/v1/stage_worker.grpc.pb.h"
#include "services/stage_worker/reduce_inbox.h"

namespace resbm {

// What replica `replica` of `replicas` does in ring round `round` (0 .. 2 (R - 1) - 1).
struct RingRound {
  int64_t send_chunk = 0;
  int64_t receive_chunk = 0;
  bool add = false;  // Reduce-scatter (add what arrives) or all-gather (copy it).
};
RingRound PlanRingRound(int64_t replica, int64_t replicas, int64_t round);
// Chunk `chunk` of `count` values cut into `replicas` chunks: [begin, end).
std::pair<int64_t, int64_t> RingChunk(int64_t count, int64_t replicas, int64_t chunk);

// Bytes one replica sends in one all-reduce of `count` fp32 values.
int64_t RingBytesSent(int64_t count, int64_t replicas);

class GradientRing {
 public:
  struct Options {
    std::string job_id;
    int64_t stage = 0;
    int64_t replica = 0;
    int64_t replicas = 1;
    std::string next_address;  // The next replica's worker (replica + 1 mod R).
    std::shared_ptr<grpc::ChannelCredentials> credentials;  // Null: plaintext.
    // A round's chunk travels in pieces of at most this many values (4 MiB).
    int64_t piece_values = int64_t{1} << 20;
  };
  // `inbox` receives the previous replica's chunks (the service delivers them).
  GradientRing(Options options, std::shared_ptr<ReduceInbox> inbox);
  GradientRing(const GradientRing&) = delete;
  GradientRing& operator=(const GradientRing&) = delete;

  // Replaces `values` by their sum over every replica (each passes its own). Every send has
  // ended when it returns; the first failure (a send, a wait) is its error, and leaves
  // `values` unspecified. The values are sent from where they are, never copied.
  absl::Status AllReduce(int64_t step, std::vector<float>* values, absl::Time deadline,
                         const Cancellation* cancel);

  // Every replica's `mine` (all of the same size), by replica index, forwarded around the
  // ring unchanged in R - 1 rounds: each replica sends (R - 1) times its size. What an outer
  // optimizer's encoded changes take, so every replica sums the very same bytes.
  absl::Status AllGather(int64_t step, std::string mine, std::vector<std::string>* by_replica,
                         absl::Time deadline, const Cancellation* cancel);

  int64_t replicas() const { return options_.replicas; }
  int64_t piece_values() const { return options_.piece_values; }

 private:
  // The sends in flight, and the first of their failures.
  struct Sends;
  // The values an all-reduce sends, pinned while gRPC holds them.
  struct Pins;
  // Sends `values` (their slices, not a copy) as one piece.
  void Send(int64_t step, int64_t round, int64_t piece, const BulkBytes& values,
            absl::Time deadline, const std::shared_ptr<Sends>& sends);
  // Takes a piece, values [begin, end), from the previous replica: added, or copied.
  absl::Status Receive(int64_t step, int64_t round, int64_t piece, bool add, int64_t begin,
                       int64_t end, float* values, absl::Time deadline, const Cancellation* cancel);

  // The sends of one collective, tripped by the step's token too.
  std::shared_ptr<Sends> StartSends(const Cancellation* cancel) const;
  // Waits for every send of `sends` (cancelling them after a failure); the first cause.
  static absl::Status EndSends(const std::shared_ptr<Sends>& sends, absl::Status status);

  const Options options_;
  const std::shared_ptr<ReduceInbox> inbox_;
  // ReduceChunk as raw bytes: the values go out without protobuf copying them.
  std::unique_ptr<grpc::GenericStub> next_;
};

}  // namespace resbm

#endif  // RESBM_SERVICES_STAGE_WORKER_GRADIENT_RING_H_
