// GradientRing and ReduceInbox: the ring's plan leaves every replica with the same sums (a
// simulation, and three rings over real gRPC on port 0); the inbox refuses what is not its
// stage's, and its waits end on arrival, deadline or cancellation.
#include "services/stage_worker/gradient_ring.h"

#include <grpcpp/grpcpp.h>

#include <cstring>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "services/stage_worker/reduce_inbox.h"
#include "services/stage_worker/reduce_peer_service.h"

namespace resbm {
namespace {

std::vector<std::vector<float>> RandomReplicas(int64_t replicas, int64_t count, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> value(-1.0f, 1.0f);
  std::vector<std::vector<float>> data(replicas, std::vector<float>(count));
  for (auto& replica : data) {
    for (float& v : replica) v = value(rng);
  }
  return data;
}

TEST(GradientRingPlanTest, EveryReplicaEndsWithTheSameSums) {
  for (int64_t n = 1; n <= 6; ++n) {
    for (int64_t count : {0, 1, 5, 17, 100}) {
      std::vector<std::vector<float>> data = RandomReplicas(n, count, 7 * n + count);
      std::vector<double> expected(count, 0.0);
      for (const auto& replica : data) {
        for (int64_t i = 0; i < count; ++i) expected[i] += replica[i];
      }
      for (int64_t round = 0; round < 2 * (n - 1); ++round) {
        std::vector<std::vector<float>> sent(n);
        for (int64_t r = 0; r < n; ++r) {
          const auto [begin, end] = RingChunk(count, n, PlanRingRound(r, n, round).send_chunk);
          sent[r].assign(data[r].begin() + begin, data[r].begin() + end);
        }
        for (int64_t r = 0; r < n; ++r) {
          const RingRound plan = PlanRingRound(r, n, round);
          // What the previous replica sent is the chunk this one receives.
          EXPECT_EQ(plan.receive_chunk, PlanRingRound((r + n - 1) % n, n, round).send_chunk);
          const auto [begin, end] = RingChunk(count, n, plan.receive_chunk);
          const std::vector<float>& in = sent[(r + n - 1) % n];
          ASSERT_EQ(static_cast<int64_t>(in.size()), end - begin);
          for (int64_t i = begin; i < end; ++i) {
            data[r][i] = plan.add ? data[r][i] + in[i - begin] : in[i - begin];
          }
        }
      }
      for (int64_t r = 0; r < n; ++r) {
        EXPECT_EQ(std::memcmp(data[r].data(), data[0].data(), count * sizeof(float)), 0)
            << "replica " << r << " of " << n << ", " << count << " values";
        for (int64_t i = 0; i < count; ++i) EXPECT_NEAR(data[r][i], expected[i], 1e-5);
      }
    }
  }
}

TEST(GradientRingPlanTest, EachReplicaSendsTwoRMinusOneOverROfTheValues) {
  EXPECT_EQ(RingBytesSent(12, 1), 0);
  EXPECT_EQ(RingBytesSent(12, 2), 12 * 4);     // 2 rounds of 6 values.
  EXPECT_EQ(RingBytesSent(12, 3), 4 * 4 * 4);  // 4 rounds of 4 values.
  EXPECT_EQ(RingBytesSent(12, 4), 6 * 3 * 4);  // 6 rounds of 3 values.
}

struct Peer {
  std::shared_ptr<ReduceInbox> inbox = std::make_shared<ReduceInbox>();
  std::unique_ptr<ReducePeerService> service;
  std::unique_ptr<grpc::Server> server;
  int port = 0;
};

std::vector<Peer> StartPeers(int n) {
  std::vector<Peer> peers(n);
  for (int i = 0; i < n; ++i) {
    Peer& peer = peers[i];
    peer.inbox->Expect("job-ring", 1, (i + n - 1) % n);
    peer.service = std::make_unique<ReducePeerService>(peer.inbox);
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &peer.port);
    builder.RegisterService(peer.service.get());
    peer.server = builder.BuildAndStart();
    EXPECT_NE(peer.port, 0);
  }
  return peers;
}

std::unique_ptr<GradientRing> RingOf(const std::vector<Peer>& peers, int r) {
  GradientRing::Options options;
  options.job_id = "job-ring";
  options.stage = 1;
  options.replica = r;
  options.replicas = static_cast<int64_t>(peers.size());
  options.next_address = "127.0.0.1:" + std::to_string(peers[(r + 1) % peers.size()].port);
  options.piece_values = 64;  // A round's chunk of ~333 values travels in 6 pieces.
  return std::make_unique<GradientRing>(options, peers[r].inbox);
}

TEST(GradientRingTest, ThreeReplicasOverGrpcHoldTheSameSumsAfterEveryStep) {
  constexpr int kReplicas = 3;
  std::vector<Peer> peers = StartPeers(kReplicas);
  std::vector<std::unique_ptr<GradientRing>> rings;
  for (int r = 0; r < kReplicas; ++r) rings.push_back(RingOf(peers, r));
  for (int64_t step = 0; step < 3; ++step) {
    std::vector<std::vector<float>> data = RandomReplicas(kReplicas, 1000 + step, step);
    std::vector<double> expected(data[0].size(), 0.0);
    for (const auto& replica : data) {
      for (size_t i = 0; i < replica.size(); ++i) expected[i] += replica[i];
    }
    std::vector<absl::Status> statuses(kReplicas);
    std::vector<std::thread> threads;
    for (int r = 0; r < kReplicas; ++r) {
      threads.emplace_back([&, r] {
        statuses[r] = rings[r]->AllReduce(step, &data[r], absl::Now() + absl::Seconds(30), nullptr);
      });
    }
    for (auto& thread : threads) thread.join();
    for (int r = 0; r < kReplicas; ++r) {
      ASSERT_TRUE(statuses[r].ok()) << statuses[r];
      EXPECT_EQ(data[r], data[0]) << "replica " << r << " step " << step;
    }
    for (size_t i = 0; i < expected.size(); ++i) EXPECT_NEAR(data[0][i], expected[i], 1e-5);
  }
  for (Peer& peer : peers) peer.server->Shutdown();
}

// What arrives is added or copied from gRPC's slices where they are, and gRPC cuts them
// anywhere: here inside values, as a stand-in for replica 1 delivers them.
TEST(GradientRingTest, AddsAndCopiesValuesThatStraddleSlices) {
  std::vector<Peer> peers = StartPeers(2);  // Replica 1 only takes what replica 0 sends.
  auto ring = RingOf(peers, 0);
  auto odd_cuts = [](const std::vector<float>& values) {
    const std::string bytes(reinterpret_cast<const char*>(values.data()),
                            values.size() * sizeof(float));
    std::vector<grpc::Slice> slices;
    size_t begin = 0;
    for (const size_t cut : {size_t{1}, size_t{6}, size_t{7}, size_t{13}, bytes.size()}) {
      slices.emplace_back(bytes.data() + begin, cut - begin);
      begin = cut;
    }
    return BulkBytes(std::move(slices));
  };
  v1::ReduceChunkRequest chunk;
  chunk.set_job_id("job-ring");
  chunk.set_stage_index(1);
  chunk.set_from_replica(1);
  chunk.set_round(0);  // Reduce-scatter: replica 0 adds chunk 1, values [5, 10).
  ASSERT_TRUE(peers[0].inbox->Deliver(chunk, odd_cuts({100, 200, 300, 400, 500})).ok());
  chunk.set_round(1);  // All-gather: replica 0 copies chunk 0's sums, values [0, 5).
  ASSERT_TRUE(peers[0].inbox->Deliver(chunk, odd_cuts({-1, -2, -3, -4, -5})).ok());
  std::vector<float> values = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  const absl::Status status =
      ring->AllReduce(0, &values, absl::Now() + absl::Seconds(30), /*cancel=*/nullptr);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(values, (std::vector<float>{-1, -2, -3, -4, -5, 105, 206, 307, 408, 509}));
  // What replica 0 sent: its chunk 0 as it was, then its sums of chunk 1.
  auto sent = peers[1].inbox->Take(0, 0, 0, absl::Now() + absl::Seconds(30), nullptr);
  ASSERT_TRUE(sent.ok()) << sent.status();
  std::vector<float> first(5);
  sent->CopyTo(reinterpret_cast<char*>(first.data()));
  EXPECT_EQ(first, (std::vector<float>{0, 1, 2, 3, 4}));
  sent = peers[1].inbox->Take(0, 1, 0, absl::Now() + absl::Seconds(30), nullptr);
  ASSERT_TRUE(sent.ok()) << sent.status();
  std::vector<float> second(5);
  sent->CopyTo(reinterpret_cast<char*>(second.data()));
  EXPECT_EQ(second, (std::vector<float>{105, 206, 307, 408, 509}));
  for (Peer& peer : peers) peer.server->Shutdown();
}

TEST(GradientRingTest, AGoneReplicaEndsTheAllReduceWithAnError) {
  std::vector<Peer> peers = StartPeers(2);
  auto ring = RingOf(peers, 0);
  peers[1].server->Shutdown();  // The next replica is gone; the previous sends nothing.
  std::vector<float> values(10, 1.0f);
  auto cancel = std::make_shared<Cancellation>();
  std::thread canceller([&] {
    // The wait for the previous replica's chunk would last to the deadline: the step's token
    // (a failed peer, in the worker) ends it.
    cancel->Cancel(absl::CancelledError("the step was cancelled"));
  });
  const absl::Status status =
      ring->AllReduce(0, &values, absl::Now() + absl::Seconds(60), cancel.get());
  canceller.join();
  EXPECT_FALSE(status.ok());
  EXPECT_TRUE(absl::IsCancelled(status) || absl::IsUnavailable(status)) << status;
  peers[0].server->Shutdown();
}

TEST(GradientRingTest, ARefusedChunkEndsTheWaitForThePreviousReplicaAtOnce) {
  std::vector<Peer> peers = StartPeers(2);
  peers[1].inbox->Expect("another-job", 1, 0);  // Refuses job-ring's chunks.
  auto ring = RingOf(peers, 0);
  std::vector<float> values(10, 1.0f);
  // Nobody sends to replica 0: without the refusal ending it, the wait would last the minute.
  const absl::Time start = absl::Now();
  const absl::Status status =
      ring->AllReduce(0, &values, absl::Now() + absl::Seconds(60), /*cancel=*/nullptr);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_NE(status.message().find("all-reduce round 0 to 127.0.0.1:"), std::string::npos) << status;
  EXPECT_LT(absl::Now() - start, absl::Seconds(30));
  for (Peer& peer : peers) peer.server->Shutdown();
}

TEST(ReduceInboxTest, RefusesOtherStagesAndDuplicatesAndDropsFinishedSteps) {
  ReduceInbox inbox;
  v1::ReduceChunkRequest chunk;
  chunk.set_job_id("job-1");
  chunk.set_stage_index(2);
  chunk.set_step(4);
  chunk.set_round(0);
  const BulkBytes values = BulkBytes::Own("abcd");
  EXPECT_EQ(inbox.Deliver(chunk, values).code(),
            absl::StatusCode::kFailedPrecondition);  // Nothing yet.
  inbox.Expect("job-1", 3, 0);
  const absl::Status other = inbox.Deliver(chunk, values);
  EXPECT_EQ(other.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(other.message().find("job 'job-1' stage 3"), std::string::npos) << other;
  inbox.Expect("job-1", 2, 1);  // Replica 1's chunks only.
  EXPECT_EQ(inbox.Deliver(chunk, values).code(), absl::StatusCode::kFailedPrecondition);
  chunk.set_from_replica(1);
  ASSERT_TRUE(inbox.Deliver(chunk, values).ok());
  EXPECT_EQ(inbox.Deliver(chunk, values).code(), absl::StatusCode::kAlreadyExists);
  auto taken = inbox.Take(4, 0, 0, absl::Now() + absl::Seconds(10), nullptr);
  ASSERT_TRUE(taken.ok()) << taken.status();
  EXPECT_EQ(taken->ToString(), "abcd");
  // A chunk of a step before the one being taken is dropped, not held.
  chunk.set_step(3);
  EXPECT_TRUE(inbox.Deliver(chunk, values).ok());
  EXPECT_EQ(inbox.Take(3, 0, 0, absl::Now(), nullptr).status().code(),
            absl::StatusCode::kDeadlineExceeded);
}

TEST(ReduceInboxTest, AWaitEndsWhenTheChunkArrivesOrTheTokenTrips) {
  ReduceInbox inbox;
  inbox.Expect("job-1", 0, 0);
  absl::Notification waiting;
  std::thread deliverer([&] {
    waiting.WaitForNotification();
    v1::ReduceChunkRequest chunk;
    chunk.set_job_id("job-1");
    chunk.set_step(1);
    chunk.set_round(2);
    EXPECT_TRUE(inbox.Deliver(chunk, BulkBytes::Own("xy")).ok());
  });
  waiting.Notify();
  auto taken = inbox.Take(1, 2, 0, absl::Now() + absl::Seconds(60), nullptr);
  deliverer.join();
  ASSERT_TRUE(taken.ok()) << taken.status();
  EXPECT_EQ(taken->ToString(), "xy");

  Cancellation cancel;
  std::thread canceller([&] { cancel.Cancel(absl::UnavailableError("a peer failed")); });
  auto cancelled = inbox.Take(1, 3, 0, absl::Now() + absl::Seconds(60), &cancel);
  canceller.join();
  EXPECT_EQ(cancelled.status().code(), absl::StatusCode::kUnavailable) << cancelled.status();
}

}  // namespace
}  // namespace resbm
