#include "services/stage_worker/gradient_ring.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/status/failure_cause.h"
#include "common/status/grpc_status.h"
#include "common/status/status_macros.h"
#include "common/transport/grpc_settings.h"

namespace resbm {
namespace {

int64_t Mod(int64_t a, int64_t n) { return ((a % n) + n) % n; }

}  // namespace

RingRound PlanRingRound(int64_t replica, int64_t replicas, int64_t round) {
  if (round < replicas - 1) {
    // Reduce-scatter: after round k, replica r holds k + 2 terms of chunk r - k - 1.
    return RingRound{Mod(replica - round, replicas), Mod(replica - round - 1, replicas), true};
  }
  // All-gather: replica r finished chunk r + 1 and passes the sums on.
  const int64_t j = round - (replicas - 1);
  return RingRound{Mod(replica + 1 - j, replicas), Mod(replica - j, replicas), false};
}

std::pair<int64_t, int64_t> RingChunk(int64_t count, int64_t replicas, int64_t chunk) {
  return {count * chunk / replicas, count * (chunk + 1) / replicas};
}

int64_t RingBytesSent(int64_t count, int64_t replicas) {
  int64_t values = 0;
  for (int64_t round = 0; round < 2 * (replicas - 1); ++round) {
    const auto [begin, end] =
        RingChunk(count, replicas, PlanRingRound(0, replicas, round).send_chunk);
    values += end - begin;
  }
  return values * static_cast<int64_t>(sizeof(float));
}

namespace {

struct ChunkCall {
  grpc::ClientContext context;
  grpc::ByteBuffer request;
  grpc::ByteBuffer response;  // An empty ReduceChunkResponse.
};

// A ReduceChunkRequest as the wire carries it, built without protobuf copying the payload
// into its output: the small fields serialized, then `values` as its tag, its length and the
// bytes in a slice of their own. Protobuf reads fields in any order, so the receiver parses
// an ordinary ReduceChunkRequest.
grpc::ByteBuffer ChunkMessage(const v1::ReduceChunkRequest& fields, const char* values,
                              size_t size) {
  std::string head = fields.SerializeAsString();
  head.push_back(static_cast<char>((v1::ReduceChunkRequest::kValuesFieldNumber << 3) | 2));
  for (uint64_t n = size;; n >>= 7) {  // The length as a varint.
    if (n < 0x80) {
      head.push_back(static_cast<char>(n));
      break;
    }
    head.push_back(static_cast<char>((n & 0x7f) | 0x80));
  }
  grpc::Slice slices[2] = {grpc::Slice(head), grpc::Slice(values, size)};
  return grpc::ByteBuffer(slices, 2);
}

}  // namespace

struct GradientRing::Sends {
  // Tripped by the first failed send: the waits for the previous replica end with it (a
  // refused chunk never reaches the replica after it, which would wait to the deadline).
  Cancellation failed;
  absl::Mutex mu;
  absl::CondVar ended;
  std::vector<std::shared_ptr<ChunkCall>> calls ABSL_GUARDED_BY(mu);
  int64_t in_flight ABSL_GUARDED_BY(mu) = 0;
};

GradientRing::GradientRing(Options options, std::shared_ptr<ReduceInbox> inbox)
    : options_(std::move(options)), inbox_(std::move(inbox)) {
  next_ = std::make_unique<grpc::GenericStub>(grpc::CreateCustomChannel(
      options_.next_address,
      options_.credentials ? options_.credentials : grpc::InsecureChannelCredentials(),
      PeerChannelArguments()));
}

absl::Status GradientRing::Receive(int64_t step, int64_t round, int64_t piece, bool add,
                                   int64_t begin, int64_t end, std::vector<float>* values,
                                   absl::Time deadline, const Cancellation* cancel) {
  RESBM_ASSIGN_OR_RETURN(const std::string got, inbox_->Take(step, round, piece, deadline, cancel));
  const size_t expected = static_cast<size_t>(end - begin) * sizeof(float);
  if (got.size() != expected) {
    return absl::DataLossError(absl::StrCat("all-reduce round ", round, " piece ", piece, ": ",
                                            got.size(),
                                            " bytes from the previous replica; "
                                            "expected ",
                                            expected));
  }
  if (!add) {
    std::memcpy(values->data() + begin, got.data(), got.size());
    return absl::OkStatus();
  }
  // Copied value by value: a string's bytes need not be aligned for float.
  for (int64_t i = begin; i < end; ++i) {
    float in;
    std::memcpy(&in, got.data() + (i - begin) * sizeof(float), sizeof(float));
    (*values)[i] += in;
  }
  return absl::OkStatus();
}

void GradientRing::Send(int64_t step, int64_t round, int64_t piece, const char* values, size_t size,
                        absl::Time deadline, const std::shared_ptr<Sends>& sends) {
  auto call = std::make_shared<ChunkCall>();
  call->context.set_deadline(absl::ToChronoTime(deadline));
  v1::ReduceChunkRequest fields;
  fields.set_job_id(options_.job_id);
  fields.set_step(static_cast<uint64_t>(step));
  fields.set_stage_index(static_cast<uint32_t>(options_.stage));
  fields.set_from_replica(static_cast<uint32_t>(options_.replica));
  fields.set_round(static_cast<uint32_t>(round));
  fields.set_piece(static_cast<uint32_t>(piece));
  call->request = ChunkMessage(fields, values, size);
  {
    absl::MutexLock lock(&sends->mu);
    ++sends->in_flight;
    sends->calls.push_back(call);
  }
  const std::string to = options_.next_address;
  next_->UnaryCall(
      &call->context, "/resbm.v1.StageWorker/ReduceChunk", grpc::StubOptions(), &call->request,
      &call->response, [call, sends, to, round](grpc::Status s) {
        if (!s.ok()) {
          // Unlocked: the token's wake-ups take the inbox's lock.
          sends->failed.Cancel(Annotate(
              FromGrpcStatus(s), absl::StrCat("all-reduce round ", round, " to ", to, ": ")));
        }
        absl::MutexLock lock(&sends->mu);
        --sends->in_flight;
        sends->ended.SignalAll();
      });
}

absl::Status GradientRing::AllReduce(int64_t step, std::vector<float>* values, absl::Time deadline,
                                     const Cancellation* cancel) {
  const int64_t r = options_.replica, n = options_.replicas;
  if (n <= 1) return absl::OkStatus();
  const int64_t count = static_cast<int64_t>(values->size());
  const std::shared_ptr<Sends> sends = StartSends(cancel);
  // The step's token trips the ring's too: one token for the waits to watch.
  const Cancellation::Subscription step_cancelled =
      Cancellation::Subscribe(cancel, [&sends, cancel] { sends->failed.Cancel(cancel->reason()); });
  absl::Status status;
  for (int64_t round = 0; round < 2 * (n - 1) && status.ok(); ++round) {
    const RingRound plan = PlanRingRound(r, n, round);
    const auto [send_begin, send_end] = RingChunk(count, n, plan.send_chunk);
    for (int64_t piece = 0; send_begin + piece * options_.piece_values < send_end; ++piece) {
      const int64_t begin = send_begin + piece * options_.piece_values;
      const int64_t end = std::min(send_end, begin + options_.piece_values);
      Send(step, round, piece, reinterpret_cast<const char*>(values->data() + begin),
           static_cast<size_t>(end - begin) * sizeof(float), deadline, sends);
    }
    const auto [receive_begin, receive_end] = RingChunk(count, n, plan.receive_chunk);
    for (int64_t piece = 0;
         status.ok() && receive_begin + piece * options_.piece_values < receive_end; ++piece) {
      const int64_t begin = receive_begin + piece * options_.piece_values;
      const int64_t end = std::min(receive_end, begin + options_.piece_values);
      status = Receive(step, round, piece, plan.add, begin, end, values, deadline, &sends->failed);
    }
  }
  return EndSends(sends, std::move(status));
}

std::shared_ptr<GradientRing::Sends> GradientRing::StartSends(const Cancellation* cancel) const {
  auto sends = std::make_shared<Sends>();
  if (cancel != nullptr && cancel->cancelled()) sends->failed.Cancel(cancel->reason());
  return sends;
}

absl::Status GradientRing::EndSends(const std::shared_ptr<Sends>& sends, absl::Status status) {
  // Every send ends before this returns (the calls must not outlive the ring); after a
  // failure nobody waits for them.
  std::vector<std::shared_ptr<ChunkCall>> calls;
  {
    absl::MutexLock lock(&sends->mu);
    calls = sends->calls;
  }
  if (!status.ok()) {
    for (const auto& call : calls) call->context.TryCancel();
  }
  absl::MutexLock lock(&sends->mu);
  while (sends->in_flight > 0) sends->ended.Wait(&sends->mu);
  // The ring's token carries the first cause: the step's cancellation or a failed send.
  if (sends->failed.cancelled()) status = sends->failed.reason();
  return status;
}

absl::Status GradientRing::AllGather(int64_t step, std::string mine,
                                     std::vector<std::string>* by_replica, absl::Time deadline,
                                     const Cancellation* cancel) {
  const int64_t r = options_.replica, n = options_.replicas;
  by_replica->assign(static_cast<size_t>(n), std::string());
  const size_t size = mine.size();
  (*by_replica)[r] = std::move(mine);
  if (n <= 1) return absl::OkStatus();
  const std::shared_ptr<Sends> sends = StartSends(cancel);
  const Cancellation::Subscription step_cancelled =
      Cancellation::Subscribe(cancel, [&sends, cancel] { sends->failed.Cancel(cancel->reason()); });
  const size_t piece_bytes = static_cast<size_t>(options_.piece_values) * sizeof(float);
  const int64_t pieces =
      static_cast<int64_t>(std::max<size_t>(1, (size + piece_bytes - 1) / piece_bytes));
  absl::Status status;
  // Round k: pass on replica r - k's bytes, take replica r - k - 1's from the previous one.
  for (int64_t round = 0; round < n - 1 && status.ok(); ++round) {
    const std::string& out = (*by_replica)[Mod(r - round, n)];
    for (int64_t piece = 0; piece < pieces; ++piece) {
      const size_t begin = static_cast<size_t>(piece) * piece_bytes;
      Send(step, round, piece, out.data() + std::min(size, begin),
           std::min(piece_bytes, size - std::min(size, begin)), deadline, sends);
    }
    std::string& in = (*by_replica)[Mod(r - round - 1, n)];
    for (int64_t piece = 0; status.ok() && piece < pieces; ++piece) {
      absl::StatusOr<std::string> got = inbox_->Take(step, round, piece, deadline, &sends->failed);
      if (!got.ok()) {
        status = got.status();
      } else {
        in += *got;
      }
    }
    if (status.ok() && in.size() != size) {
      status =
          absl::DataLossError(absl::StrCat("all-gather round ", round, ": ", in.size(),
                                           " bytes from the previous replica; expected ", size));
    }
  }
  return EndSends(sends, std::move(status));
}

}  // namespace resbm
