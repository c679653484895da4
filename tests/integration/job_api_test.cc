// The job API against a real coordinator process: every malformed spec refused with the
// field named and nothing stored; unknown ids; the queue (a job waits for idle workers, and
// says so); priorities and --max-running-jobs; cancelling a queued and a running job (its
// workers drop its state and the next job runs); WatchJob's event stream; cluster status;
// gRPC health checking.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <future>
#include <string>
#include <thread>

#include "absl/cleanup/cleanup.h"
#include "common/config/job_config.h"
#include "common/train/run_summary.h"
#include "gtest/gtest.h"
#include "resbm/v1/stage_worker.grpc.pb.h"
#include "tests/testing/process_cluster.h"
#include "tests/testing/wait_for.h"

namespace resbm {
namespace {

using ::resbm::testing::ProcessCluster;
using ::resbm::testing::WaitFor;

v1::JobConfig TinyJob(int steps) {
  auto config = ParseJobConfigJson(R"({"model": {"d_model": 64, "n_layers": 4, "n_heads": 2,
      "mlp_hidden": 128, "seq_len": 32},
    "stages": {"num_stages": 2}, "compression": {"ratio": 8},
    "training": {"steps": 20, "batch_size": 8, "microbatches": 2, "eval_every": 10,
                 "eval_batches": 1, "seed": 3, "checkpoint_every": 10}})");
  EXPECT_TRUE(config.ok()) << config.status();
  config->mutable_training()->set_steps(steps);
  return *config;
}

class JobApiTest : public ::testing::Test {
 protected:
  JobApiTest()
      : cluster_(::testing::TempDir() + "/resbm_job_api_" + std::to_string(::getpid()) + "_" +
                 ::testing::UnitTest::GetInstance()->current_test_info()->name()) {}
  void SetUp() override { ASSERT_TRUE(cluster_.StartCoordinator().ok()) << cluster_.Logs(); }

  ProcessCluster cluster_;
};

TEST_F(JobApiTest, MalformedSpecsAreRefusedNamingFieldValueAndExpectation) {
  struct Case {
    std::function<void(v1::JobConfig*)> mutate;
    std::string message;
  };
  const std::vector<Case> cases = {
      {[](v1::JobConfig* c) { c->mutable_model()->set_d_model(65); },
       "model.n_heads: 2 does not divide model.d_model 65"},
      {[](v1::JobConfig* c) { c->mutable_compression()->set_ratio(3); }, "compression.ratio: 3"},
      {[](v1::JobConfig* c) { c->mutable_stages()->set_num_stages(9); }, "stages.num_stages: 9"},
      {[](v1::JobConfig* c) { c->mutable_training()->set_microbatches(3); },
       "training.microbatches: 3"},
      {[](v1::JobConfig* c) { c->mutable_optimizer()->mutable_adamw()->set_lr(-1); }, "lr: -1"},
      {[](v1::JobConfig* c) { c->mutable_model()->set_seq_len(100000); }, "model.seq_len: 100000"},
      {[](v1::JobConfig* c) {
         c->mutable_data()->mutable_byte_corpus()->clear_paths();
         c->mutable_data()->mutable_byte_corpus()->add_paths("/no/such/corpus.txt");
       },
       "data.byte_corpus.paths[0]: '/no/such/corpus.txt' does not exist on the coordinator"},
      {[](v1::JobConfig* c) { c->set_name(std::string(500, 'x')); }, "name:"},
  };
  for (const auto& c : cases) {
    v1::JobConfig config = TinyJob(10);
    c.mutate(&config);
    auto job = cluster_.client().Submit(config);
    ASSERT_FALSE(job.ok()) << c.message;
    EXPECT_EQ(job.status().code(), absl::StatusCode::kInvalidArgument) << job.status();
    EXPECT_NE(job.status().message().find(c.message), std::string::npos)
        << job.status() << "\nexpected: " << c.message;
    EXPECT_NE(job.status().message().find("expected"), std::string::npos) << job.status();
  }
  auto jobs = cluster_.client().List();
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  EXPECT_TRUE(jobs->empty()) << "a refused spec was stored";
  EXPECT_TRUE(cluster_.coordinator().Running()) << cluster_.Logs();
}

TEST_F(JobApiTest, UnknownAndEmptyJobIds) {
  EXPECT_EQ(cluster_.client().Get("job-404").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(cluster_.client().Cancel("job-404").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(cluster_.client().Get("").status().code(), absl::StatusCode::kInvalidArgument);
  auto watched = cluster_.client().Watch("job-404", [](const v1::JobEvent&) {});
  EXPECT_EQ(watched.status().code(), absl::StatusCode::kNotFound) << watched.status();
}

TEST_F(JobApiTest, HealthCheckingServes) {
  auto channel = grpc::CreateChannel(cluster_.address(), grpc::InsecureChannelCredentials());
  grpc::GenericStub stub(channel);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  grpc::Slice empty("");  // HealthCheckRequest{service: ""} serializes to nothing.
  grpc::ByteBuffer request(&empty, 1), response;
  std::promise<grpc::Status> done;
  stub.UnaryCall(&context, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request, &response,
                 [&](grpc::Status status) { done.set_value(status); });
  grpc::Status status = done.get_future().get();
  ASSERT_TRUE(status.ok()) << status.error_message();
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(response.Dump(&slices).ok());
  std::string bytes;
  for (const auto& slice : slices)
    bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  EXPECT_EQ(bytes, std::string("\x08\x01", 2));  // status: SERVING
}

TEST_F(JobApiTest, QueueCancelAndWatch) {
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(cluster_.StartWorker().ok());
  // A: long enough to be cancelled while running. B, C wait behind it.
  auto a = cluster_.client().Submit(TinyJob(100000));
  auto b = cluster_.client().Submit(TinyJob(20));
  auto c = cluster_.client().Submit(TinyJob(20));
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(a->job_id(), "job-1");
  EXPECT_EQ(b->job_id(), "job-2");
  EXPECT_EQ(b->state(), v1::JOB_STATE_QUEUED);
  ASSERT_TRUE(WaitFor(
      [&] {
        auto job = cluster_.client().Get(a->job_id());
        return job.ok() && job->progress().step() >= 3;
      },
      absl::Seconds(60)))
      << cluster_.Logs();
  EXPECT_EQ(cluster_.client().Get(b->job_id())->state(), v1::JOB_STATE_QUEUED);

  auto status = cluster_.client().ClusterStatus();
  ASSERT_TRUE(status.ok()) << status.status();
  ASSERT_EQ(status->jobs_size(), 3);
  EXPECT_EQ(status->jobs(0).job_id(), a->job_id());
  EXPECT_EQ(status->jobs(0).state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(status->jobs(0).workers_held(), 2u);
  // B waits for A's workers, and says so.
  EXPECT_EQ(status->jobs(1).job_id(), b->job_id());
  EXPECT_EQ(status->jobs(1).message(), "needs 2 workers, 0 idle");
  EXPECT_EQ(status->queued_jobs(), 2u);
  EXPECT_EQ(status->idle_workers(), 0u);
  ASSERT_EQ(status->workers_size(), 2);
  std::set<uint32_t> stages;
  for (const auto& worker : status->workers()) {
    EXPECT_TRUE(worker.healthy());
    EXPECT_EQ(worker.job_id(), a->job_id());
    stages.insert(worker.stage());
  }
  EXPECT_EQ(stages, (std::set<uint32_t>{0, 1}));

  // A queued job is cancelled at once.
  auto cancelled_c = cluster_.client().Cancel(c->job_id());
  ASSERT_TRUE(cancelled_c.ok()) << cancelled_c.status();
  EXPECT_EQ(cancelled_c->state(), v1::JOB_STATE_CANCELLED);

  // The running one stops, and its workers drop its state.
  const v1::Job running = *cluster_.client().Get(a->job_id());
  const std::vector<std::string> a_stages(running.stage_addresses().begin(),
                                          running.stage_addresses().end());
  ASSERT_EQ(a_stages.size(), 2u);
  // B starts right after A ends: watch it from before, on its own client and thread.
  std::vector<v1::JobEvent> events;
  absl::StatusOr<v1::Job> ended_b = absl::UnknownError("not watched");
  JobClient watcher(cluster_.address());
  std::thread watch([&] {
    ended_b =
        watcher.Watch(b->job_id(), [&](const v1::JobEvent& event) { events.push_back(event); });
  });
  auto join_watch = absl::MakeCleanup([&] {
    if (watch.joinable()) watch.join();
  });
  auto cancelling = cluster_.client().Cancel(a->job_id());
  ASSERT_TRUE(cancelling.ok()) << cancelling.status();
  auto ended_a = cluster_.client().WaitForEnd(a->job_id(), absl::Seconds(60));
  ASSERT_TRUE(ended_a.ok()) << ended_a.status();
  EXPECT_EQ(ended_a->state(), v1::JOB_STATE_CANCELLED);
  EXPECT_LT(ended_a->progress().step(), 100000u);
  // A cancelled job keeps its record: the steps it completed, the outcome and why.
  EXPECT_EQ(ended_a->summary().outcome(), "cancelled");
  EXPECT_EQ(ended_a->summary().steps(), ended_a->progress().step());
  for (const auto& address : a_stages) {
    auto stub =
        v1::StageWorker::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    v1::ApplyStepRequest request;
    request.set_job_id(a->job_id());
    v1::ApplyStepResponse response;
    grpc::Status applied = stub->ApplyStep(&context, request, &response);
    // Idle ("no stage assigned") or already on job-2: either way job-1 is gone.
    EXPECT_EQ(applied.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
        << address << ": " << applied.error_message();
  }
  EXPECT_EQ(cluster_.client().Cancel(a->job_id()).status().code(),
            absl::StatusCode::kFailedPrecondition);

  std::move(join_watch).Invoke();
  ASSERT_TRUE(ended_b.ok()) << ended_b.status() << cluster_.Logs();
  EXPECT_EQ(ended_b->state(), v1::JOB_STATE_SUCCEEDED) << ended_b->message();
  ASSERT_GE(events.size(), 2u);
  EXPECT_EQ(events.front().kind(), v1::JOB_EVENT_KIND_SNAPSHOT);
  EXPECT_EQ(events.front().job().state(), v1::JOB_STATE_QUEUED);
  EXPECT_EQ(events.back().kind(), v1::JOB_EVENT_KIND_STATE);
  EXPECT_EQ(events.back().job().progress().step(), 20u);
  int64_t last_step = -1;
  for (const auto& event : events) {
    if (event.kind() != v1::JOB_EVENT_KIND_STEP) continue;
    EXPECT_GT(static_cast<int64_t>(event.job().progress().step()), last_step);
    last_step = static_cast<int64_t>(event.job().progress().step());
  }
  EXPECT_GT(last_step, 0);
  EXPECT_TRUE(ended_b->progress().has_val_loss());
  EXPECT_EQ(ended_b->summary().steps(), 20u);
  EXPECT_EQ(ended_b->summary().outcome(), "succeeded");

  auto jobs = cluster_.client().List();
  ASSERT_TRUE(jobs.ok());
  ASSERT_EQ(jobs->size(), 3u);
  EXPECT_EQ((*jobs)[0].state(), v1::JOB_STATE_CANCELLED);
  EXPECT_EQ((*jobs)[1].state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ((*jobs)[2].state(), v1::JOB_STATE_CANCELLED);
}

// With --max-running-jobs=1 and workers to spare, the limit is why jobs wait; a higher
// priority starts first, whatever the submission order.
TEST(JobSchedulingTest, PriorityAndTheRunningJobLimitDecideWhoStarts) {
  ProcessCluster cluster(::testing::TempDir() + "/resbm_job_priority_" +
                         std::to_string(::getpid()));
  ASSERT_TRUE(cluster.StartCoordinator({"--max-running-jobs=1"}).ok()) << cluster.Logs();
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(cluster.StartWorker().ok());
  // All four registered (a worker loads LibTorch first): the idle count below counts them.
  ASSERT_TRUE(cluster.WaitForCluster(
      [](const v1::ClusterStatus& status) { return status.workers_size() == 4; },
      absl::Seconds(60)))
      << cluster.Logs();
  auto a = cluster.client().Submit(TinyJob(100000));
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(cluster.WaitForJob(
      a->job_id(), [](const v1::Job& job) { return job.progress().step() >= 1; },
      absl::Seconds(60)))
      << cluster.Logs();
  auto b = cluster.client().Submit(TinyJob(20));
  auto c = cluster.client().Submit(TinyJob(20), /*priority=*/5);
  ASSERT_TRUE(b.ok() && c.ok()) << b.status() << c.status();
  EXPECT_EQ(c->priority(), 5);
  const std::string limited = "1 jobs running, the most at once (--max-running-jobs 1)";
  for (const std::string& id : {b->job_id(), c->job_id()}) {
    ASSERT_TRUE(cluster.WaitForJob(
        id, [&](const v1::Job& job) { return job.message() == limited; }, absl::Seconds(30)))
        << cluster.client().Get(id)->message();
  }
  auto status = cluster.client().ClusterStatus();
  ASSERT_TRUE(status.ok()) << status.status();
  ASSERT_EQ(status->jobs_size(), 3);
  EXPECT_EQ(status->jobs(0).job_id(), a->job_id());
  EXPECT_EQ(status->jobs(1).job_id(), c->job_id());  // Priority 5 before 0.
  EXPECT_EQ(status->jobs(2).job_id(), b->job_id());
  EXPECT_EQ(status->idle_workers(), 2u);

  ASSERT_TRUE(cluster.client().Cancel(a->job_id()).ok());
  auto ended_b = cluster.client().WaitForEnd(b->job_id(), absl::Seconds(120));
  auto ended_c = cluster.client().Get(c->job_id());
  ASSERT_TRUE(ended_b.ok() && ended_c.ok()) << ended_b.status() << cluster.Logs();
  EXPECT_EQ(ended_b->state(), v1::JOB_STATE_SUCCEEDED) << ended_b->message();
  EXPECT_EQ(ended_c->state(), v1::JOB_STATE_SUCCEEDED) << ended_c->message();
  // One at a time: c ran first, and b only once c had ended.
  EXPECT_GE(ended_b->started_unix_ms(), ended_c->finished_unix_ms());
}

}  // namespace
}  // namespace resbm
