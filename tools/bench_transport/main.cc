// bench_transport: how much of loopback TCP's throughput the project's frame path keeps. In one
// run, for frames of 64 KiB to 4 MiB, the same byte budget goes through (a) a plain TCP
// socket pair and (b) resbm.v1.StageWorker/Exchange carrying TensorFrames, with the stage
// worker's channel and server arguments; it prints MiB/s of each and the ratio gRPC / TCP.
// With --link_mbit every connection crosses an emulated long fat link instead (ShapedRelay),
// which shows whether HTTP/2's windows keep a stream and the ring at the link's rate.
#include <arpa/inet.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "common/base/hash.h"
#include "common/runtime/bulk_allocator.h"
#include "common/runtime/flag_parser.h"
#include "common/status/grpc_status.h"
#include "common/status/status_macros.h"
#include "common/transport/frame_link.h"
#include "common/transport/grpc_settings.h"
#include "resbm/v1/stage_worker.grpc.pb.h"
#include "resbm/v1/tensor_frame.pb.h"
#include "services/stage_worker/exchange_client_reactor.h"
#include "services/stage_worker/gradient_ring.h"
#include "services/stage_worker/raw_stage_worker_service.h"
#include "services/stage_worker/reduce_inbox.h"
#include "services/stage_worker/reduce_peer_service.h"
#include "tools/bench_transport/shaped_relay.h"

namespace {

using resbm::v1::TensorFrame;

constexpr int64_t kKiB = int64_t{1} << 10;
constexpr int64_t kMiB = int64_t{1} << 20;
// The default job's frames are ~2 KiB (ResBM 128x) and 256 KiB (uncompressed bf16); 1 MiB
// and 4 MiB stand for wider models (the paper's uncompressed frames are 32 MiB). Below 64 KiB
// per-frame costs dominate and say little about the link.
constexpr int64_t kFrameSizes[] = {64 * kKiB, 256 * kKiB, 1 * kMiB, 4 * kMiB};

// How every connection of the run goes: straight over loopback, or through a ShapedRelay of
// its own (the same link for raw TCP and gRPC); `grpc_args` are added to the Exchange stream's
// channel and server on top of the workers' own (to try flow-control settings).
struct Route {
  std::optional<resbm::ShapedRelay::Link> link;
  std::vector<std::pair<std::string, int>> grpc_args;
};

// One timed transfer of `frames` frames.
struct Measurement {
  int64_t frames = 0;
  int64_t bytes = 0;  // Bytes written (TCP) or payload bytes (gRPC: headers not counted).
  double seconds = 0.0;

  double MiBPerSecond() const { return static_cast<double>(bytes) / kMiB / seconds; }
  double GbitPerSecond() const { return static_cast<double>(bytes) * 8.0 / 1e9 / seconds; }
};

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

std::string SizeName(int64_t bytes) {
  return bytes % kMiB == 0 ? absl::StrCat(bytes / kMiB, " MiB")
                           : absl::StrCat(bytes / kKiB, " KiB");
}

// Pseudo-random bytes (seeded), so nothing on either path could compress them.
std::string Payload(int64_t size) {
  std::string payload(static_cast<size_t>(size), '\0');
  for (int64_t i = 0; i < size; ++i) {
    payload[i] = static_cast<char>(resbm::SplitMix64(static_cast<uint64_t>(i)));
  }
  return payload;
}

// ---------------------------------------------------------------------------------------------
// Raw TCP.

absl::Status ErrnoError(const std::string& what) {
  return absl::UnavailableError(absl::StrCat(what, ": ", std::strerror(errno)));
}

// Owns a file descriptor and closes it once.
class ScopedFd {
 public:
  explicit ScopedFd(int fd) : fd_(fd) {}
  ScopedFd(ScopedFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;
  ScopedFd& operator=(ScopedFd&&) = delete;
  ~ScopedFd() {
    if (fd_ >= 0) close(fd_);
  }

  int get() const { return fd_; }

 private:
  int fd_;
};

// A connected loopback pair: `sender` is the connecting end, `receiver` the accepted one;
// through `relay` where the route has a link (declared first: it outlives both ends).
struct SocketPair {
  std::unique_ptr<resbm::ShapedRelay> relay;
  ScopedFd sender;
  ScopedFd receiver;
};

absl::StatusOr<SocketPair> ConnectLoopback(const Route& route) {
  ScopedFd listener(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (listener.get() < 0) return ErrnoError("socket");
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;  // The kernel picks a free port; getsockname reads it back.
  socklen_t length = sizeof(address);
  auto* generic = reinterpret_cast<sockaddr*>(&address);
  if (bind(listener.get(), generic, sizeof(address)) != 0) return ErrnoError("bind 127.0.0.1:0");
  if (listen(listener.get(), 1) != 0) return ErrnoError("listen");
  if (getsockname(listener.get(), generic, &length) != 0) return ErrnoError("getsockname");
  std::unique_ptr<resbm::ShapedRelay> relay;
  if (route.link) {
    RESBM_ASSIGN_OR_RETURN(relay, resbm::ShapedRelay::Start(ntohs(address.sin_port), *route.link));
    address.sin_port = htons(static_cast<uint16_t>(relay->port()));
  }
  ScopedFd sender(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (sender.get() < 0) return ErrnoError("socket");
  // The kernel completes a loopback handshake into the backlog, so connect returns before
  // accept and one thread can do both (the relay's own connect lands in the backlog too).
  if (connect(sender.get(), generic, sizeof(address)) != 0) {
    return ErrnoError(absl::StrCat("connect 127.0.0.1:", ntohs(address.sin_port)));
  }
  ScopedFd receiver(accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  if (receiver.get() < 0) return ErrnoError("accept");
  return SocketPair{std::move(relay), std::move(sender), std::move(receiver)};
}

// Writes all `size` bytes, retrying short writes and EINTR. MSG_NOSIGNAL: a vanished peer is
// an error to report, not a SIGPIPE.
absl::Status WriteAll(int fd, const char* data, size_t size) {
  while (size > 0) {
    const ssize_t n = send(fd, data, size, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("send");
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::Status AwaitAck(int fd) {
  char ack = 0;
  while (true) {
    const ssize_t n = read(fd, &ack, 1);
    if (n == 1) return absl::OkStatus();
    if (n == 0) return absl::UnavailableError("receiver closed the socket before acking");
    if (errno != EINTR) return ErrnoError("read ack");
  }
}

// The receiving end: reads each phase's bytes into a scratch buffer, then sends one ack byte.
// The sender's clock stops at the ack, i.e. when every byte has arrived; the last write
// returning would only mean the kernel had buffered it.
absl::Status Receive(int fd, const std::vector<int64_t>& phase_bytes) {
  std::vector<char> buffer(kMiB);
  for (const int64_t phase : phase_bytes) {
    int64_t left = phase;
    while (left > 0) {
      const ssize_t n = read(fd, buffer.data(), static_cast<size_t>(std::min<int64_t>(left, kMiB)));
      if (n < 0) {
        if (errno == EINTR) continue;
        return ErrnoError("read");
      }
      if (n == 0) {
        return absl::UnavailableError(
            absl::StrCat("sender closed the socket with ", left, " bytes still expected"));
      }
      left -= n;
    }
    const char ack = 1;
    RESBM_RETURN_IF_ERROR(WriteAll(fd, &ack, 1));
  }
  return absl::OkStatus();
}

// `warmup_frames` untimed, then `frames` timed: one write() of the whole frame each.
absl::StatusOr<Measurement> MeasureTcp(const std::string& payload, int64_t frames,
                                       int64_t warmup_frames, const Route& route) {
  RESBM_ASSIGN_OR_RETURN(SocketPair pair, ConnectLoopback(route));
  const int64_t frame_bytes = static_cast<int64_t>(payload.size());
  absl::Status received;
  std::thread receiver([&] {
    received = Receive(pair.receiver.get(), {warmup_frames * frame_bytes, frames * frame_bytes});
    // Wakes a sender blocked on a full socket or on the ack.
    if (!received.ok()) shutdown(pair.receiver.get(), SHUT_RDWR);
  });
  auto send_phase = [&](int64_t count) {
    for (int64_t i = 0; i < count; ++i) {
      RESBM_RETURN_IF_ERROR(WriteAll(pair.sender.get(), payload.data(), payload.size()));
    }
    return AwaitAck(pair.sender.get());
  };
  absl::Status sent = send_phase(warmup_frames);
  const auto start = std::chrono::steady_clock::now();
  if (sent.ok()) sent = send_phase(frames);
  const double seconds = SecondsSince(start);
  if (!sent.ok()) shutdown(pair.sender.get(), SHUT_RDWR);  // Wakes a receiver blocked in read.
  receiver.join();
  RESBM_RETURN_IF_ERROR(received);
  RESBM_RETURN_IF_ERROR(sent);
  return Measurement{frames, frames * frame_bytes, seconds};
}

// Reads exactly `size` bytes into `data`.
absl::Status ReadAll(int fd, char* data, size_t size) {
  while (size > 0) {
    const ssize_t n = read(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("read");
    }
    if (n == 0) return absl::UnavailableError("ring: the previous replica closed its socket");
    data += n;
    size -= static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

// One replica of GradientRing's all-reduce over plain sockets: the same plan (PlanRingRound,
// RingChunk), the same adds and copies. Its sends run on a thread of their own, as
// GradientRing's run on gRPC's; a round's chunk goes once the previous round's arrived, and
// an all-gather round overwrites a chunk only once its reduce-scatter send is written. What
// arrives is read into a scratch piece and added (reduce-scatter) or read straight into place
// (all-gather): the fewest copies plain sockets allow.
absl::Status TcpRingReplica(int out, int in, int64_t replica, int64_t replicas,
                            int64_t piece_values, std::vector<float>* values) {
  const int64_t n = replicas, rounds = 2 * (replicas - 1);
  const int64_t count = static_cast<int64_t>(values->size());
  std::mutex mu;
  std::condition_variable progressed;
  int64_t received = 0, sent = 0;
  bool failed = false;
  absl::Status send_status;
  std::thread sender([&] {
    for (int64_t round = 0; round < rounds; ++round) {
      {
        std::unique_lock<std::mutex> lock(mu);
        progressed.wait(lock, [&] { return received >= round || failed; });
        if (failed) return;
      }
      const auto [begin, end] =
          resbm::RingChunk(count, n, resbm::PlanRingRound(replica, n, round).send_chunk);
      send_status = WriteAll(out, reinterpret_cast<const char*>(values->data() + begin),
                             static_cast<size_t>(end - begin) * sizeof(float));
      std::lock_guard<std::mutex> lock(mu);
      failed = failed || !send_status.ok();
      ++sent;
      progressed.notify_all();
      if (failed) return;
    }
  });
  std::vector<float> scratch(static_cast<size_t>(piece_values));
  absl::Status status;
  for (int64_t round = 0; round < rounds && status.ok(); ++round) {
    const resbm::RingRound plan = resbm::PlanRingRound(replica, n, round);
    if (!plan.add) {
      std::unique_lock<std::mutex> lock(mu);
      progressed.wait(lock, [&] { return sent > round - (n - 1) || failed; });
      if (failed) break;
    }
    const auto [chunk_begin, chunk_end] = resbm::RingChunk(count, n, plan.receive_chunk);
    for (int64_t begin = chunk_begin; begin < chunk_end && status.ok(); begin += piece_values) {
      const int64_t size = std::min(chunk_end, begin + piece_values) - begin;
      float* into = plan.add ? scratch.data() : values->data() + begin;
      status =
          ReadAll(in, reinterpret_cast<char*>(into), static_cast<size_t>(size) * sizeof(float));
      if (status.ok() && plan.add) {
        for (int64_t i = 0; i < size; ++i) (*values)[begin + i] += scratch[i];
      }
    }
    std::lock_guard<std::mutex> lock(mu);
    failed = failed || !status.ok();
    ++received;
    progressed.notify_all();
  }
  if (!status.ok()) shutdown(out, SHUT_RDWR);  // Wakes a sender blocked on a full socket.
  sender.join();
  return status.ok() ? send_status : status;
}

// ---------------------------------------------------------------------------------------------
// gRPC: the project's Exchange RPC.

// The downstream end of a boundary stream without the executor: parses each message as the
// worker's reactor does (ParseFrameMessage: the payload copied once, out of gRPC's slices),
// counts its payload bytes and drops the frame. One read in flight; finishes once; freed in
// OnDone.
class CountingExchangeReactor : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  // The counters are the service's, which outlives every call of its server.
  CountingExchangeReactor(std::atomic<int64_t>* bytes, std::atomic<int64_t>* frames)
      : bytes_(bytes), frames_(frames) {
    StartRead(&incoming_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      FinishOnce(grpc::Status::OK);  // The client called WritesDone (or the call broke).
      return;
    }
    absl::StatusOr<TensorFrame> frame = resbm::ParseFrameMessage(incoming_);
    incoming_.Clear();
    if (!frame.ok()) {
      FinishOnce(resbm::ToGrpcStatus(frame.status()));
      return;
    }
    bytes_->fetch_add(static_cast<int64_t>(frame->payload().size()));
    frames_->fetch_add(1);
    StartRead(&incoming_);
  }

  void OnCancel() override { FinishOnce(grpc::Status::CANCELLED); }
  void OnDone() override { delete this; }

 private:
  void FinishOnce(const grpc::Status& status) {
    if (!finished_.exchange(true)) Finish(status);
  }

  std::atomic<int64_t>* bytes_;
  std::atomic<int64_t>* frames_;
  grpc::ByteBuffer incoming_;
  std::atomic<bool> finished_{false};
};

// StageWorker with only Exchange implemented, raw as the worker's (the other RPCs answer
// UNIMPLEMENTED; ReduceChunk is not called).
class CountingStageWorker final : public resbm::RawStageWorkerService {
 public:
  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* Exchange(
      grpc::CallbackServerContext* context) override {
    return new CountingExchangeReactor(&bytes_, &frames_);  // Freed in its OnDone.
  }

  // Payload bytes and frames received so far, over all calls.
  int64_t bytes() const { return bytes_.load(); }
  int64_t frames() const { return frames_.load(); }

 private:
  std::atomic<int64_t> bytes_{0};
  std::atomic<int64_t> frames_{0};
};

// A CountingStageWorker server on 127.0.0.1:0 and a channel to it, both configured as the
// stage worker configures its own (see Start); frames go out as the worker sends them, through
// a FrameLink and its ExchangeClientReactor. Measure is not thread-safe.
class GrpcLoopback {
 public:
  GrpcLoopback(const GrpcLoopback&) = delete;
  GrpcLoopback& operator=(const GrpcLoopback&) = delete;
  ~GrpcLoopback() { server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1)); }

  static absl::StatusOr<std::unique_ptr<GrpcLoopback>> Start(const Route& route) {
    std::unique_ptr<GrpcLoopback> loopback(new GrpcLoopback());
    // The stage worker's own server and channel settings, so the benchmark measures them.
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &loopback->port_);
    builder.RegisterService(&loopback->service_);
    builder.SetMaxReceiveMessageSize(resbm::kMaxWorkerMessageBytes);
    grpc::ChannelArguments args = resbm::PeerChannelArguments();
    for (const auto& [name, value] : route.grpc_args) {
      builder.AddChannelArgument(name, value);
      args.SetInt(name, value);
    }
    auto server = resbm::StartServer(builder, "127.0.0.1:0", loopback->port_);
    if (!server.ok()) return server.status();
    loopback->server_ = std::move(*server);
    int port = loopback->port_;
    if (route.link) {
      RESBM_ASSIGN_OR_RETURN(loopback->relay_, resbm::ShapedRelay::Start(port, *route.link));
      port = loopback->relay_->port();
    }
    const std::string address = absl::StrCat("127.0.0.1:", port);
    loopback->channel_ =
        grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
    if (!loopback->channel_->WaitForConnected(std::chrono::system_clock::now() +
                                              std::chrono::seconds(5))) {
      return absl::UnavailableError(absl::StrCat("gRPC: ", address, " not reachable"));
    }
    loopback->stub_ = std::make_unique<grpc::GenericStub>(loopback->channel_);
    return loopback;
  }

  // `warmup_frames` on one stream, then `frames` timed on a fresh stream of the same channel,
  // as the worker keeps one channel per neighbour.
  absl::StatusOr<Measurement> Measure(const TensorFrame& frame, int64_t frames,
                                      int64_t warmup_frames) {
    const grpc::ByteBuffer message = resbm::FrameMessage(frame);  // Its payload: one copy.
    const int64_t payload = static_cast<int64_t>(frame.payload().size());
    if (warmup_frames > 0) {
      RESBM_RETURN_IF_ERROR(Stream(message, payload, warmup_frames, nullptr));
    }
    double seconds = 0.0;
    RESBM_RETURN_IF_ERROR(Stream(message, payload, frames, &seconds));
    return Measurement{frames, frames * payload, seconds};
  }

 private:
  GrpcLoopback() = default;

  // One Exchange call carrying `count` times `message` (its slices shared, as a stage's
  // frames are not copied on their way out). `seconds`, if not null, gets the time from the
  // first Send to the stream's end, after the server read the last frame.
  absl::Status Stream(const grpc::ByteBuffer& message, int64_t payload, int64_t count,
                      double* seconds) {
    const int64_t bytes_before = service_.bytes();
    auto link = std::make_shared<resbm::FrameLink>(/*max_queued=*/8, /*inbox_capacity=*/2);
    auto context = std::make_shared<grpc::ClientContext>();
    resbm::ExchangeClientReactor::Start(stub_.get(), link, context);
    const absl::Time deadline = absl::Now() + absl::Minutes(10);
    const auto start = std::chrono::steady_clock::now();
    absl::Status sent;
    for (int64_t i = 0; i < count && sent.ok(); ++i) sent = link->SendMessage(message, deadline);
    link->FinishWrites();
    if (!link->AwaitClosed(deadline)) {
      context->TryCancel();
      link->AwaitClosed(absl::InfiniteFuture());
      return absl::DeadlineExceededError("gRPC: the stream did not end in 10 minutes");
    }
    if (seconds != nullptr) *seconds = SecondsSince(start);
    RESBM_RETURN_IF_ERROR(sent);
    // The server finishes only after its last read, so its count is final once the stream
    // ended.
    const int64_t expected = count * payload;
    const int64_t received = service_.bytes() - bytes_before;
    if (received != expected) {
      return absl::DataLossError(
          absl::StrCat("gRPC: server counted ", received, " payload bytes, expected ", expected));
    }
    return absl::OkStatus();
  }

  // Declared before server_ so that it outlives the server's calls.
  CountingStageWorker service_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<resbm::ShapedRelay> relay_;  // Between channel_ and server_, if any.
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<grpc::GenericStub> stub_;
};

// A frame as stage s sends it downstream in the default job: bf16 (B, T, k) activations of a
// microbatch of 4 sequences of 128 tokens, k chosen so the payload is `payload.size()` bytes.
TensorFrame MakeFrame(const std::string& payload) {
  constexpr int64_t kSequences = 4, kTokens = 128, kBf16Bytes = 2;
  TensorFrame frame;
  frame.set_format_version(1);
  frame.set_job_id("bench-transport");
  frame.set_kind(resbm::v1::FRAME_KIND_ACTIVATION);
  frame.add_shape(kSequences);
  frame.add_shape(kTokens);
  frame.add_shape(static_cast<int64_t>(payload.size()) / (kSequences * kTokens * kBf16Bytes));
  frame.set_dtype(resbm::v1::WIRE_DTYPE_BF16);
  frame.set_payload(payload);
  frame.set_checksum(resbm::Fnv1a64(payload.data(), payload.size()));
  return frame;
}

// Best (shortest) of the repeats, per transport, for one frame size, and the worst throughput
// seen, so that a noisy machine shows in the output.
struct Row {
  int64_t frame_bytes = 0;
  Measurement tcp;
  Measurement grpc;
  double tcp_worst_mib_per_s = 0.0;
  double grpc_worst_mib_per_s = 0.0;
};

// R ring replicas on loopback, each with its own server (ReducePeerService) and
// GradientRing, all-reducing `values` fp32 values at once: the slowest replica's seconds.
struct AllReduceRow {
  int64_t replicas = 0;
  int64_t values = 0;
  int64_t bytes_sent = 0;  // By each replica (RingBytesSent).
  double seconds = 0;      // Best of the repeats.
  double tcp_seconds = 0;  // The same ring over plain sockets (MeasureTcpRing).
  double MiBPerSecond() const { return bytes_sent / seconds / kMiB; }
  double TcpMiBPerSecond() const { return bytes_sent / tcp_seconds / kMiB; }
};

// Every replica must end with the same bits, over either transport.
absl::Status CheckSameSums(const std::vector<std::vector<float>>& data, const char* transport) {
  for (size_t r = 1; r < data.size(); ++r) {
    if (data[r] != data[0]) {
      return absl::DataLossError(
          absl::StrCat(transport, " ring: replica ", r, " ended with other sums than replica 0"));
    }
  }
  return absl::OkStatus();
}

// The same all-reduce over R plain socket pairs (replica r writes to r + 1): the slowest
// replica's seconds, best of the repeats after one untimed.
absl::StatusOr<double> MeasureTcpRing(int64_t replicas, int64_t values, int64_t piece_values,
                                      int64_t repeats, const Route& route) {
  std::vector<SocketPair> links;  // links[r]: replica r's socket to replica r + 1.
  for (int64_t r = 0; r < replicas; ++r) {
    RESBM_ASSIGN_OR_RETURN(SocketPair pair, ConnectLoopback(route));
    links.push_back(std::move(pair));
  }
  std::vector<std::vector<float>> data(replicas, std::vector<float>(values, 1.0f));
  double best = 0.0;
  for (int64_t step = 0; step <= repeats; ++step) {
    std::vector<absl::Status> statuses(replicas);
    const auto start = std::chrono::steady_clock::now();
    std::vector<std::thread> threads;
    for (int64_t r = 0; r < replicas; ++r) {
      threads.emplace_back([&, r] {
        const int out = links[r].sender.get();
        const int in = links[(r + replicas - 1) % replicas].receiver.get();
        statuses[r] = TcpRingReplica(out, in, r, replicas, piece_values, &data[r]);
      });
    }
    for (auto& thread : threads) thread.join();
    const double seconds = SecondsSince(start);
    for (const absl::Status& status : statuses) RESBM_RETURN_IF_ERROR(status);
    RESBM_RETURN_IF_ERROR(CheckSameSums(data, "raw TCP"));
    if (step == 1 || (step > 1 && seconds < best)) best = seconds;
  }
  return best;
}

absl::StatusOr<AllReduceRow> MeasureAllReduce(int64_t replicas, int64_t values, int64_t repeats,
                                              const Route& route) {
  struct Peer {
    std::shared_ptr<resbm::ReduceInbox> inbox = std::make_shared<resbm::ReduceInbox>();
    std::unique_ptr<resbm::ReducePeerService> service;
    std::unique_ptr<grpc::Server> server;
    int port = 0;
    std::unique_ptr<resbm::ShapedRelay> relay;  // In front of the server, if the route has one.
    int reached_at = 0;                         // port, or the relay's.
  };
  std::vector<Peer> peers(replicas);
  for (int64_t r = 0; r < replicas; ++r) {
    peers[r].inbox->Expect("bench", 0, (r + replicas - 1) % replicas);
    peers[r].service = std::make_unique<resbm::ReducePeerService>(peers[r].inbox);
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &peers[r].port);
    builder.RegisterService(peers[r].service.get());
    builder.SetMaxReceiveMessageSize(resbm::kMaxWorkerMessageBytes);
    auto server = resbm::StartServer(builder, "127.0.0.1:0", peers[r].port);
    if (!server.ok()) return server.status();
    peers[r].server = std::move(*server);
    peers[r].reached_at = peers[r].port;
    if (route.link) {
      RESBM_ASSIGN_OR_RETURN(peers[r].relay, resbm::ShapedRelay::Start(peers[r].port, *route.link));
      peers[r].reached_at = peers[r].relay->port();
    }
  }
  std::vector<std::unique_ptr<resbm::GradientRing>> rings;
  for (int64_t r = 0; r < replicas; ++r) {
    resbm::GradientRing::Options options;
    options.job_id = "bench";
    options.replica = r;
    options.replicas = replicas;
    options.next_address = absl::StrCat("127.0.0.1:", peers[(r + 1) % replicas].reached_at);
    rings.push_back(std::make_unique<resbm::GradientRing>(options, peers[r].inbox));
  }
  AllReduceRow row{replicas, values, resbm::RingBytesSent(values, replicas), 0.0};
  std::vector<std::vector<float>> data(replicas, std::vector<float>(values, 1.0f));
  for (int64_t step = 0; step <= repeats; ++step) {  // Step 0 warms the channels up.
    std::vector<absl::Status> statuses(replicas);
    const auto start = std::chrono::steady_clock::now();
    std::vector<std::thread> threads;
    for (int64_t r = 0; r < replicas; ++r) {
      threads.emplace_back([&, r] {
        statuses[r] = rings[r]->AllReduce(step, &data[r], absl::Now() + absl::Minutes(10),
                                          /*cancel=*/nullptr);
      });
    }
    for (auto& thread : threads) thread.join();
    const double seconds = SecondsSince(start);
    for (const absl::Status& status : statuses) {
      if (!status.ok()) return status;
    }
    RESBM_RETURN_IF_ERROR(CheckSameSums(data, "gRPC"));
    if (step == 1 || (step > 1 && seconds < row.seconds)) row.seconds = seconds;
  }
  for (Peer& peer : peers) peer.server->Shutdown();
  RESBM_ASSIGN_OR_RETURN(
      row.tcp_seconds, MeasureTcpRing(replicas, values, rings[0]->piece_values(), repeats, route));
  return row;
}

void PrintMeasurement(const char* transport, const Measurement& m) {
  std::printf("  %-9s %8lld %8lld %8.3f %9.1f %7.2f\n", transport, static_cast<long long>(m.frames),
              static_cast<long long>(m.bytes / kMiB), m.seconds, m.MiBPerSecond(),
              m.GbitPerSecond());
}

absl::Status WriteJson(const std::string& path, const std::vector<Row>& rows,
                       const std::vector<AllReduceRow>& reduce_rows, int64_t repeats) {
  nlohmann::json all_reduce = nlohmann::json::array();
  for (const AllReduceRow& row : reduce_rows) {
    all_reduce.push_back({{"replicas", row.replicas},
                          {"bytes_sent", row.bytes_sent},
                          {"grpc_seconds", row.seconds},
                          {"tcp_seconds", row.tcp_seconds},
                          {"grpc_mib_per_s", row.MiBPerSecond()},
                          {"tcp_mib_per_s", row.TcpMiBPerSecond()},
                          {"ratio", row.MiBPerSecond() / row.TcpMiBPerSecond()}});
  }
  nlohmann::json results = nlohmann::json::array();
  for (const Row& row : rows) {
    results.push_back({{"frame_bytes", row.frame_bytes},
                       {"frames", row.tcp.frames},
                       {"mib", row.tcp.bytes / kMiB},
                       {"repeats", repeats},
                       {"tcp_seconds", row.tcp.seconds},
                       {"tcp_mib_per_s", row.tcp.MiBPerSecond()},
                       {"grpc_seconds", row.grpc.seconds},
                       {"tcp_worst_mib_per_s", row.tcp_worst_mib_per_s},
                       {"grpc_mib_per_s", row.grpc.MiBPerSecond()},
                       {"grpc_worst_mib_per_s", row.grpc_worst_mib_per_s},
                       {"ratio", row.grpc.MiBPerSecond() / row.tcp.MiBPerSecond()}});
  }
  std::ofstream out(path);
  out << nlohmann::json{{"streams", results}, {"all_reduce", all_reduce}}.dump(2) << "\n";
  out.close();
  if (!out) return absl::UnavailableError(absl::StrCat("--json: cannot write '", path, "'"));
  return absl::OkStatus();
}

absl::StatusOr<Route> MakeRoute(double link_mbit, double link_delay_ms,
                                const std::string& grpc_args) {
  Route route;
  if (link_mbit < 0.0 || link_delay_ms < 0.0 || (link_mbit == 0.0 && link_delay_ms > 0.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--link_mbit ", link_mbit, ", --link_delay_ms ", link_delay_ms,
                     ": expected a rate > 0 (or 0 for bare loopback) and a delay >= 0"));
  }
  if (link_mbit > 0.0) {
    route.link = resbm::ShapedRelay::Link{link_mbit, link_delay_ms};
    // The queue a link holds beyond its bandwidth-delay product: a quarter of a second at
    // its rate (a router's usual buffer), at least 256 KiB.
    route.link->queue_bytes = std::max<int64_t>(256 * kKiB, link_mbit * 1e6 / 8 / 4);
  }
  for (const absl::string_view item : absl::StrSplit(grpc_args, ',', absl::SkipEmpty())) {
    const std::pair<std::string, std::string> name_value = absl::StrSplit(item, '=');
    int value = 0;
    if (name_value.first.empty() || !absl::SimpleAtoi(name_value.second, &value)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--grpc_args: '", item, "'; expected NAME=INT"));
    }
    route.grpc_args.emplace_back(name_value.first, value);
  }
  return route;
}

std::string RouteName(const Route& route) {
  std::string name = route.link
                         ? absl::StrCat("link ", route.link->mbit_per_second, " Mbit/s x ",
                                        2 * route.link->delay_ms, " ms RTT (a relay on 127.0.0.1, ",
                                        route.link->queue_bytes / kKiB, " KiB queue)")
                         : std::string("loopback 127.0.0.1");
  for (const auto& [arg, value] : route.grpc_args) absl::StrAppend(&name, ", ", arg, "=", value);
  return name;
}

}  // namespace

int main(int argc, char** argv) {
  int64_t mib = 2048, repeats = 3, warmup_mib = 16;
  std::string json_path;
  resbm::FlagParser flags(
      "bench_transport",
      "loopback throughput of raw TCP vs the StageWorker/Exchange gRPC "
      "stream, for 64 KiB to 4 MiB frames, and the replicas' all-reduce over both.");
  flags.AddInt("mib", &mib, "MiB sent per measurement, for every frame size");
  flags.AddInt("repeats", &repeats, "timed repetitions of each measurement (best is reported)");
  flags.AddInt("warmup_mib", &warmup_mib, "untimed MiB sent before each timed transfer");
  flags.AddString("json", &json_path, "also write the results to this JSON file");
  int64_t all_reduce_mib = 256;
  flags.AddInt("all_reduce_mib", &all_reduce_mib,
               "MiB of fp32 values each replica all-reduces (replicas 2 and 3)");
  bool default_malloc = false;
  flags.AddBool("default_malloc", &default_malloc,
                "keep glibc's allocator defaults instead of the services' KeepBulkBuffersMapped");
  double link_mbit = 0.0, link_delay_ms = 0.0;
  flags.AddDouble("link_mbit", &link_mbit,
                  "> 0: every connection crosses a link of this rate (Mbit/s, each direction) "
                  "instead of bare loopback (a relay in this process; see --link_delay_ms)");
  flags.AddDouble("link_delay_ms", &link_delay_ms,
                  "the link's one-way delay (with --link_mbit); 50 gives a 100 ms round trip");
  std::string grpc_args_text;
  flags.AddString("grpc_args", &grpc_args_text,
                  "NAME=INT[,NAME=INT...]: channel arguments added to the Exchange stream's "
                  "channel and server (e.g. grpc.http2.lookahead_bytes=4194304)");
  // The upper bounds only keep byte counts far from int64 overflow.
  if (auto exit_code = flags.ParseCommandLine(argc, argv)) return *exit_code;
  auto route = MakeRoute(link_mbit, link_delay_ms, grpc_args_text);
  if (!route.ok()) {
    std::fprintf(stderr, "bench_transport: %s\n", route.status().ToString().c_str());
    return 2;
  }
  if (!default_malloc) resbm::KeepBulkBuffersMapped();  // As resbm-worker does.
  if (mib < 1 || mib > (1 << 20) || repeats < 1 || warmup_mib < 0 || warmup_mib > (1 << 20) ||
      all_reduce_mib < 1 || all_reduce_mib > 4096) {
    std::fprintf(stderr,
                 "bench_transport: --mib in [1, 1048576], --repeats >= 1, --warmup_mib in "
                 "[0, 1048576], --all_reduce_mib in [1, 4096]\n");
    return 2;
  }

  auto grpc_loopback = GrpcLoopback::Start(*route);
  if (!grpc_loopback.ok()) {
    std::fprintf(stderr, "bench_transport: %s\n", grpc_loopback.status().ToString().c_str());
    return 1;
  }
  std::printf(
      "bench_transport: %s, %u CPUs | %lld MiB per measurement after %lld MiB "
      "of warm-up | best of %lld repeats\n"
      "  raw TCP: one socket pair, one write() per frame; timed until the receiver acks the last "
      "byte\n"
      "  gRPC:    StageWorker/Exchange stream of TensorFrames as the worker sends and parses them "
      "(FrameLink, its callback reactor, raw messages, the worker's channel arguments); MiB "
      "counts payload only\n"
      "  allocator: %s\n",
      RouteName(*route).c_str(), std::thread::hardware_concurrency(), static_cast<long long>(mib),
      static_cast<long long>(warmup_mib), static_cast<long long>(repeats),
      default_malloc ? "glibc defaults (--default_malloc)"
                     : "the services' (KeepBulkBuffersMapped: 32 MiB mmap threshold, 2 arenas)");

  std::vector<Row> rows;
  for (const int64_t frame_bytes : kFrameSizes) {
    const std::string payload = Payload(frame_bytes);
    const TensorFrame frame = MakeFrame(payload);
    const int64_t frames = std::max<int64_t>(1, mib * kMiB / frame_bytes);
    const int64_t warmup_frames = warmup_mib * kMiB / frame_bytes;
    Row row;
    row.frame_bytes = frame_bytes;
    // Alternating the transports spreads slow drift (thermal, other load) over both.
    for (int64_t r = 0; r < repeats; ++r) {
      auto over_tcp = MeasureTcp(payload, frames, warmup_frames, *route);
      auto over_grpc = over_tcp.ok() ? (*grpc_loopback)->Measure(frame, frames, warmup_frames)
                                     : absl::StatusOr<Measurement>(over_tcp.status());
      if (!over_grpc.ok()) {
        std::fprintf(stderr, "bench_transport: %s frames: %s\n", SizeName(frame_bytes).c_str(),
                     over_grpc.status().ToString().c_str());
        return 1;
      }
      if (r == 0 || over_tcp->seconds < row.tcp.seconds) row.tcp = *over_tcp;
      if (r == 0 || over_grpc->seconds < row.grpc.seconds) row.grpc = *over_grpc;
      if (r == 0 || over_tcp->MiBPerSecond() < row.tcp_worst_mib_per_s) {
        row.tcp_worst_mib_per_s = over_tcp->MiBPerSecond();
      }
      if (r == 0 || over_grpc->MiBPerSecond() < row.grpc_worst_mib_per_s) {
        row.grpc_worst_mib_per_s = over_grpc->MiBPerSecond();
      }
    }
    std::printf("\nframe %s (%lld repeats, best shown)\n", SizeName(frame_bytes).c_str(),
                static_cast<long long>(repeats));
    std::printf("  %-9s %8s %8s %8s %9s %7s\n", "transport", "frames", "MiB", "seconds", "MiB/s",
                "Gbit/s");
    PrintMeasurement("raw TCP", row.tcp);
    PrintMeasurement("gRPC", row.grpc);
    std::printf("  gRPC / raw TCP = %.3f   (worst repeat: raw TCP %.1f MiB/s, gRPC %.1f MiB/s)\n",
                row.grpc.MiBPerSecond() / row.tcp.MiBPerSecond(), row.tcp_worst_mib_per_s,
                row.grpc_worst_mib_per_s);
    std::fflush(stdout);
    rows.push_back(row);
  }

  std::printf("\n%-10s | %10s | %13s | %10s\n", "frame size", "gRPC MiB/s", "raw TCP MiB/s",
              "gRPC / TCP");
  for (const Row& row : rows) {
    std::printf("%-10s | %10.1f | %13.1f | %10.3f\n", SizeName(row.frame_bytes).c_str(),
                row.grpc.MiBPerSecond(), row.tcp.MiBPerSecond(),
                row.grpc.MiBPerSecond() / row.tcp.MiBPerSecond());
  }
  // The all-reduce, against the raw TCP stream of the largest frames (the same run).
  const double tcp_mib_per_s = rows.back().tcp.MiBPerSecond();
  std::printf(
      "\ngradient all-reduce (%lld MiB of fp32 values per replica, 4 MiB pieces, best of %lld; "
      "every replica on this machine's %u CPUs)\n"
      "  gRPC:    GradientRing, the workers' ReduceChunk calls\n"
      "  raw TCP: the same ring plan, adds and copies over plain socket pairs\n",
      static_cast<long long>(all_reduce_mib), static_cast<long long>(repeats),
      std::thread::hardware_concurrency());
  std::printf("%-8s | %8s | %12s | %15s | %16s | %s\n", "replicas", "MiB sent", "gRPC MiB/s",
              "raw TCP MiB/s", "gRPC / TCP ring", "gRPC / TCP stream (1 MiB)");
  std::vector<AllReduceRow> reduce_rows;
  for (const int64_t replicas : {2, 3}) {
    auto reduced = MeasureAllReduce(replicas, all_reduce_mib * kMiB / 4, repeats, *route);
    if (!reduced.ok()) {
      std::fprintf(stderr, "bench_transport: all-reduce over %lld replicas: %s\n",
                   static_cast<long long>(replicas), reduced.status().ToString().c_str());
      return 1;
    }
    std::printf("%-8lld | %8.1f | %12.1f | %15.1f | %16.3f | %.3f\n",
                static_cast<long long>(replicas), static_cast<double>(reduced->bytes_sent) / kMiB,
                reduced->MiBPerSecond(), reduced->TcpMiBPerSecond(),
                reduced->MiBPerSecond() / reduced->TcpMiBPerSecond(),
                reduced->MiBPerSecond() / tcp_mib_per_s);
    reduce_rows.push_back(*reduced);
  }
  if (!json_path.empty()) {
    if (auto status = WriteJson(json_path, rows, reduce_rows, repeats); !status.ok()) {
      std::fprintf(stderr, "bench_transport: %s\n", status.ToString().c_str());
      return 1;
    }
    std::printf("wrote %s\n", json_path.c_str());
  }
  return 0;
}
