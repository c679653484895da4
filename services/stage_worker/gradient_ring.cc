#include "services/stage_worker/gradient_ring.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/status/failure_cause.h"
#include "common/status/grpc_status.h"
#include "common/status/status_macros.h"
#include "common/transport/bulk_message.h"
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

// Adds the fp32 values in `bytes` to `out`, value by value: the slices they arrived in need
// not be aligned for float, and a value may straddle two of them.
void AddFloats(const BulkBytes& bytes, float* out) {
  char carry[sizeof(float)];
  size_t carried = 0;
  bytes.ForEachSpan([&](const char* data, size_t size) {
    while (carried > 0 && size > 0) {  // Completes the value the last span began.
      carry[carried++] = *data++;
      --size;
      if (carried == sizeof(float)) {
        float in;
        std::memcpy(&in, carry, sizeof(float));
        *out++ += in;
        carried = 0;
      }
    }
    if (carried > 0) return;  // The span ended inside that value.
    const size_t whole = size / sizeof(float);
    for (size_t i = 0; i < whole; ++i) {
      float in;
      std::memcpy(&in, data + i * sizeof(float), sizeof(float));
      out[i] += in;
    }
    out += whole;
    carried = size - whole * sizeof(float);
    std::memcpy(carry, data + whole * sizeof(float), carried);
  });
}

}  // namespace

// The values of one AllReduce while gRPC may still read them: its sends pin them (no copy),
// counted per round, so that a chunk is not overwritten before the sends of it let go; the
// pins keep them alive past an all-reduce that failed while gRPC still held some.
struct GradientRing::Pins {
  Pins(std::vector<float> sums, int64_t rounds) : values(std::move(sums)), held(rounds, 0) {}

  // Pins values [begin, end), sent in `round`.
  static BulkBytes Pin(const std::shared_ptr<Pins>& pins, int64_t round, int64_t begin,
                       int64_t end) {
    {
      absl::MutexLock lock(&pins->mu);
      ++pins->held[round];
    }
    auto* ref = new std::pair<std::shared_ptr<Pins>, int64_t>(pins, round);
    return BulkBytes::Pin(reinterpret_cast<const char*>(pins->values.data() + begin),
                          static_cast<size_t>(end - begin) * sizeof(float), &Release, ref);
  }
  static void Release(void* context) {
    std::unique_ptr<std::pair<std::shared_ptr<Pins>, int64_t>> ref(
        static_cast<std::pair<std::shared_ptr<Pins>, int64_t>*>(context));
    absl::MutexLock lock(&ref->first->mu);
    --ref->first->held[ref->second];
    ref->first->released.SignalAll();
  }
  // Waits until gRPC let go of round `round`'s pins (every round's if negative).
  absl::Status AwaitReleased(int64_t round, absl::Time deadline) {
    absl::MutexLock lock(&mu);
    auto free = [&] {
      if (round >= 0) return held[round] == 0;
      return std::all_of(held.begin(), held.end(), [](int64_t h) { return h == 0; });
    };
    while (!free()) {
      if (released.WaitWithDeadline(&mu, deadline) && !free()) {
        return absl::DeadlineExceededError(
            "all-reduce: gRPC still held the values sent at the deadline");
      }
    }
    return absl::OkStatus();
  }

  std::vector<float> values;  // Written by the executor; its size never changes.
  absl::Mutex mu;
  absl::CondVar released;
  std::vector<int64_t> held ABSL_GUARDED_BY(mu);  // Live pins, by round.
};

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
                                   int64_t begin, int64_t end, float* values, absl::Time deadline,
                                   const Cancellation* cancel) {
  RESBM_ASSIGN_OR_RETURN(const BulkBytes got, inbox_->Take(step, round, piece, deadline, cancel));
  const size_t expected = static_cast<size_t>(end - begin) * sizeof(float);
  if (got.size() != expected) {
    return absl::DataLossError(absl::StrCat("all-reduce round ", round, " piece ", piece, ": ",
                                            got.size(),
                                            " bytes from the previous replica; "
                                            "expected ",
                                            expected));
  }
  if (add) {
    AddFloats(got, values + begin);
  } else {
    got.CopyTo(reinterpret_cast<char*>(values + begin));
  }
  return absl::OkStatus();
}

void GradientRing::Send(int64_t step, int64_t round, int64_t piece, const BulkBytes& values,
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
  call->request = JoinBulkField(fields, v1::ReduceChunkRequest::kValuesFieldNumber, values);
  {
    absl::MutexLock lock(&sends->mu);
    ++sends->in_flight;
    sends->calls.push_back(call);
  }
  const std::string to = options_.next_address;
  next_->UnaryCall(
      &call->context, "/resbm.v1.StageWorker/ReduceChunk", grpc::StubOptions(), &call->request,
      &call->response, [call, sends, to, round](grpc::Status s) {
        call->request.Clear();  // Lets go of the values it pinned: gRPC is done with them.
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
  auto pins = std::make_shared<Pins>(std::move(*values), 2 * (n - 1));  // Moved, not copied.
  float* sums = pins->values.data();
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
      Send(step, round, piece, Pins::Pin(pins, round, begin, end), deadline, sends);
    }
    // All-gather round j overwrites the chunk reduce-scatter round j sent.
    if (!plan.add) status = pins->AwaitReleased(round - (n - 1), deadline);
    const auto [receive_begin, receive_end] = RingChunk(count, n, plan.receive_chunk);
    for (int64_t piece = 0;
         status.ok() && receive_begin + piece * options_.piece_values < receive_end; ++piece) {
      const int64_t begin = receive_begin + piece * options_.piece_values;
      const int64_t end = std::min(receive_end, begin + options_.piece_values);
      status = Receive(step, round, piece, plan.add, begin, end, sums, deadline, &sends->failed);
    }
  }
  status = EndSends(sends, std::move(status));
  if (status.ok()) status = pins->AwaitReleased(-1, deadline);
  // After a failure gRPC may still hold pins: the sums stay theirs, and the caller's go.
  if (status.ok()) *values = std::move(pins->values);
  return status;
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
      // Copied: the caller's strings need not outlive what gRPC holds.
      Send(step, round, piece,
           BulkBytes::Own(out.substr(std::min(size, begin),
                                     std::min(piece_bytes, size - std::min(size, begin)))),
           deadline, sends);
    }
    std::string& in = (*by_replica)[Mod(r - round - 1, n)];
    for (int64_t piece = 0; status.ok() && piece < pieces; ++piece) {
      absl::StatusOr<BulkBytes> got = inbox_->Take(step, round, piece, deadline, &sends->failed);
      if (!got.ok()) {
        status = got.status();
      } else {
        got->ForEachSpan([&in](const char* data, size_t size) { in.append(data, size); });
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
