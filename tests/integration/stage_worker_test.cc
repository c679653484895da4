// A stage worker refuses bad frames with a clear status and keeps serving; it refuses work
// before an assignment and assignments that contradict the job's plan.
#include "services/stage_worker/stage_worker.h"

#include <grpcpp/grpcpp.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <thread>

#include "common/config/job_config.h"
#include "common/model/compute_device.h"
#include "common/runtime/child_process.h"
#include "common/status/failure_cause.h"
#include "common/status/grpc_status.h"
#include "common/wire/frame_codec.h"
#include "common/wire/wire_codec.h"
#include "gtest/gtest.h"
#include "tests/testing/binaries.h"
#include "tests/testing/http_get.h"
#include "tests/testing/wait_for.h"

namespace resbm {
namespace {

constexpr int kRows = 2, kSeq = 8, kWidth = 4;  // d 32 / ratio 8

v1::JobConfig TwoStageJob() {
  auto config = ParseJobConfigJson(R"({
    "model": {"vocab_size": 64, "d_model": 32, "n_layers": 2, "n_heads": 2, "mlp_hidden": 64,
              "seq_len": 8},
    "stages": {"num_stages": 2},
    "compression": {"ratio": 8, "wire_dtype": "WIRE_DTYPE_FP32",
                    "token_channel": "TOKEN_CHANNEL_NONE"},
    "training": {"batch_size": 2, "microbatches": 1},
    "data": {"token_shards": {"train_paths": ["unused.bin"], "val_paths": ["unused.bin"]}}
  })");
  EXPECT_TRUE(config.ok()) << config.status();
  return *config;
}

class StageWorkerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    torch::set_num_threads(1);
    StageWorkerOptions options;
    options.metrics_address = "127.0.0.1:0";
    checkpoint_dir_ = ::testing::TempDir() + "/resbm_sw_ck_" + std::to_string(::getpid());
    std::filesystem::remove_all(checkpoint_dir_);
    options.session.checkpoint_dir = checkpoint_dir_;
    auto worker = StageWorker::Start(options);
    ASSERT_TRUE(worker.ok()) << worker.status();
    worker_ = std::move(*worker);
    channel_ = grpc::CreateChannel(worker_->address(), grpc::InsecureChannelCredentials());
    stub_ = v1::StageWorker::NewStub(channel_);
  }

  grpc::Status AssignLastStage(uint32_t first_layer = 1, const std::string& job_id = "job") {
    v1::AssignRequest request;
    auto* a = request.mutable_assignment();
    a->set_job_id(job_id);
    *a->mutable_config() = TwoStageJob();
    a->set_stage_index(1);
    a->set_num_stages(2);
    a->set_first_layer(first_layer);
    a->set_num_layers(1);
    grpc::ClientContext context;
    v1::AssignResponse response;
    return stub_->Assign(&context, request, &response);
  }

  v1::RunStepRequest StepRequest(uint64_t step) {
    v1::RunStepRequest request;
    request.set_job_id("job");
    request.set_step(step);
    request.set_mode(v1::STEP_MODE_TRAIN);
    request.set_rows(kRows);
    request.set_seq_len(kSeq);
    request.set_microbatches(1);
    auto* forward = request.add_ops();
    forward->set_kind(v1::OP_KIND_FORWARD);
    auto* backward = request.add_ops();
    backward->set_kind(v1::OP_KIND_BACKWARD);
    auto* targets = request.add_targets();
    for (int i = 0; i < kRows * kSeq; ++i) targets->add_ids(i % 64);
    return request;
  }

  // Stage 0's activation frame of step `step` carrying `values` (kRows, kSeq, kWidth).
  v1::TensorFrame ActivationFrame(const at::Tensor& values, uint64_t step = 0) {
    auto wire = WireCodec::Encode(values, WireDtype::kFp32);
    EXPECT_TRUE(wire.ok());
    return FrameCodec::Encode(
        FrameHeader{"job", static_cast<int64_t>(step), 0, v1::FRAME_KIND_ACTIVATION},
        std::move(*wire));
  }

  v1::TensorFrame GoodFrame(uint64_t step) {
    return ActivationFrame(torch::randn({kRows, kSeq, kWidth}), step);
  }

  // Runs one step as the last stage while a fake stage 0 sends `frame` on an Exchange stream.
  // `apply` (may be null): the previous step's update, carried by this step.
  grpc::Status StepWithFrame(uint64_t step, const v1::TensorFrame& frame,
                             v1::RunStepResponse* response,
                             const v1::ApplyStepRequest* apply = nullptr) {
    v1::RunStepRequest request = StepRequest(step);
    if (apply != nullptr) *request.mutable_apply() = *apply;
    grpc::ClientContext stream_context;
    auto stream = stub_->Exchange(&stream_context);
    grpc::Status status;
    std::thread runner([&] {
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(3));
      status = stub_->RunStep(&context, request, response);
    });
    stream->Write(frame);
    runner.join();
    stream_context.TryCancel();
    stream->Finish();
    return status;
  }

  grpc::Status Save(const std::string& job_id, uint64_t step) {
    v1::SaveCheckpointRequest request;
    request.set_job_id(job_id);
    request.set_step(step);
    grpc::ClientContext context;
    v1::SaveCheckpointResponse response;
    return stub_->SaveCheckpoint(&context, request, &response);
  }

  grpc::Status Load(const std::string& job_id, uint64_t step) {
    v1::LoadCheckpointRequest request;
    request.set_job_id(job_id);
    request.set_step(step);
    grpc::ClientContext context;
    v1::LoadCheckpointResponse response;
    grpc::Status status = stub_->LoadCheckpoint(&context, request, &response);
    if (status.ok()) EXPECT_EQ(response.step(), step);
    return status;
  }

  std::string checkpoint_dir_;
  std::unique_ptr<StageWorker> worker_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::StageWorker::Stub> stub_;
};

TEST_F(StageWorkerTest, RefusesWorkBeforeAnAssignment) {
  grpc::ClientContext context;
  v1::RunStepResponse response;
  auto status = stub_->RunStep(&context, StepRequest(0), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(status.error_message().find("call Assign first"), std::string::npos);
  // The cause crosses the wire as a status detail: for the job, this worker is lost (it
  // restarted), which the coordinator recovers from, unlike other FAILED_PRECONDITIONs.
  EXPECT_EQ(CauseOf(FromGrpcStatus(status)), FailureCause::kWorkerLost);
}

// Checkpoints are the worker's: addressed by (job, step, stage) under its own directory; a
// job id that could leave it is refused, and nothing is written elsewhere.
TEST_F(StageWorkerTest, CheckpointsStayUnderTheWorkersDirectory) {
  ASSERT_TRUE(AssignLastStage().ok());
  ASSERT_TRUE(Save("job", 3).ok());
  EXPECT_TRUE(std::filesystem::exists(checkpoint_dir_ + "/job-step-3-stage-1.ckpt"));
  EXPECT_TRUE(Load("job", 3).ok());
  EXPECT_EQ(Load("job", 4).error_code(), grpc::StatusCode::NOT_FOUND);
  // Another job's checkpoint: this worker serves "job".
  EXPECT_EQ(Save("other", 3).error_code(), grpc::StatusCode::FAILED_PRECONDITION);

  const std::string escape = "../resbm_sw_escape_" + std::to_string(::getpid());
  ASSERT_TRUE(AssignLastStage(1, escape).ok());
  const grpc::Status refused = Save(escape, 3);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << refused.error_message();
  EXPECT_NE(refused.error_message().find("letters, digits"), std::string::npos);
  EXPECT_EQ(Load(escape, 3).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_FALSE(std::filesystem::exists(::testing::TempDir() + "/" + escape.substr(3) +
                                       "-step-3-stage-1.ckpt"));
}

TEST_F(StageWorkerTest, ADeterministicRefusalCarriesNoCause) {
  auto status = AssignLastStage(/*first_layer=*/0);
  ASSERT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(CauseOf(FromGrpcStatus(status)), std::nullopt);
}

TEST_F(StageWorkerTest, RefusesAnAssignmentThatContradictsThePlan) {
  auto status = AssignLastStage(/*first_layer=*/0);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(status.error_message().find("does not match the job's stage plan"), std::string::npos)
      << status.error_message();
}

// A released stage ends its stream to the next one normally: a WritesDone, which the next
// stage answers with OK, not a cancellation.
v1::ApplyStepRequest Apply(uint64_t step) {
  v1::ApplyStepRequest request;
  request.set_job_id("job");
  request.set_step(step);
  request.set_clip_factor(1.0);
  return request;
}

// One coordinator round trip a step: a RunStep (or SaveCheckpoint) carrying the previous
// step's update computes exactly what ApplyStep then RunStep do, and the update is not lost
// when that step fails.
TEST_F(StageWorkerTest, AStepCarriesThePreviousStepsUpdate) {
  torch::manual_seed(7);
  const at::Tensor values = torch::randn({kRows, kSeq, kWidth});
  auto second_loss = [&](bool carried) {
    EXPECT_TRUE(AssignLastStage().ok());  // Fresh, seeded weights every time.
    v1::RunStepResponse first, second;
    EXPECT_TRUE(StepWithFrame(0, ActivationFrame(values, 0), &first).ok());
    const v1::ApplyStepRequest apply = Apply(0);
    if (!carried) {
      grpc::ClientContext context;
      v1::ApplyStepResponse response;
      EXPECT_TRUE(stub_->ApplyStep(&context, apply, &response).ok());
    }
    const grpc::Status status =
        StepWithFrame(1, ActivationFrame(values, 1), &second, carried ? &apply : nullptr);
    EXPECT_TRUE(status.ok()) << status.error_message();
    EXPECT_NE(first.microbatches(0).loss(), second.microbatches(0).loss());
    return second.microbatches(0).loss();
  };
  EXPECT_EQ(second_loss(/*carried=*/false), second_loss(/*carried=*/true));

  // A step whose frame is refused (wrong width) still applied the update it carried: the
  // checkpoint it makes holds the same weights as one written after an explicit ApplyStep.
  auto checkpoint_bytes = [&](bool carried) {
    EXPECT_TRUE(AssignLastStage().ok());
    v1::RunStepResponse response;
    EXPECT_TRUE(StepWithFrame(0, ActivationFrame(values, 0), &response).ok());
    const v1::ApplyStepRequest apply = Apply(0);
    if (carried) {
      const v1::TensorFrame bad = ActivationFrame(torch::randn({kRows, kSeq, kWidth + 1}), 1);
      EXPECT_FALSE(StepWithFrame(1, bad, &response, &apply).ok());
    } else {
      grpc::ClientContext context;
      v1::ApplyStepResponse applied;
      EXPECT_TRUE(stub_->ApplyStep(&context, apply, &applied).ok());
    }
    EXPECT_TRUE(Save("job", 1).ok());
    const std::string path = checkpoint_dir_ + "/job-step-1-stage-1.ckpt";
    std::ifstream in(path, std::ios::binary);
    EXPECT_TRUE(in.good()) << path;
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  const std::string applied = checkpoint_bytes(/*carried=*/false);
  EXPECT_FALSE(applied.empty());
  // (Not EXPECT_EQ: a mismatch would print two binary files.)
  EXPECT_TRUE(checkpoint_bytes(/*carried=*/true) == applied)
      << "the checkpoint after a refused step that carried the update differs";
}

TEST_F(StageWorkerTest, AReleasedUpstreamStageEndsItsStreamWithWritesDone) {
  ASSERT_TRUE(AssignLastStage().ok());
  auto upstream = StageWorker::Start(StageWorkerOptions{});
  ASSERT_TRUE(upstream.ok()) << upstream.status();
  auto upstream_stub = v1::StageWorker::NewStub(
      grpc::CreateChannel((*upstream)->address(), grpc::InsecureChannelCredentials()));
  v1::AssignRequest request;
  auto* a = request.mutable_assignment();
  a->set_job_id("job");
  *a->mutable_config() = TwoStageJob();
  a->set_stage_index(0);
  a->set_num_stages(2);
  a->set_first_layer(0);
  a->set_num_layers(1);
  a->set_downstream_address(worker_->address());
  {
    grpc::ClientContext context;
    v1::AssignResponse response;
    const grpc::Status assigned = upstream_stub->Assign(&context, request, &response);
    ASSERT_TRUE(assigned.ok()) << assigned.error_message();
  }
  grpc::ClientContext context;
  v1::ReleaseRequest release;
  release.set_job_id("job");
  v1::ReleaseResponse released;
  ASSERT_TRUE(upstream_stub->Release(&context, release, &released).ok());
  ASSERT_TRUE(released.released());
  const std::string ended = "resbm_stage_exchange_streams_ended_total{how=\"writes_done\"}";
  std::string metrics;
  EXPECT_TRUE(testing::WaitFor(
      [&] {
        metrics = testing::HttpGet(worker_->metrics_port(), "/metrics").second;
        return testing::SampleValue(metrics, ended) == 1.0;
      },
      absl::Seconds(20)))
      << metrics;
  EXPECT_EQ(
      testing::SampleValue(metrics, "resbm_stage_exchange_streams_ended_total{how=\"cancelled\"}"),
      -1.0)
      << metrics;
  (*upstream)->Shutdown(absl::Now());
}

// A step waiting for a frame that never comes (stage 0 died after one microbatch) holds the
// executor; the Release of its job must end it at once, not queue behind it. The step's
// deadline is ten minutes away: only the cancellation can end it within the test's timeout.
TEST_F(StageWorkerTest, AReleaseEndsAStepWaitingOnALostNeighbour) {
  ASSERT_TRUE(AssignLastStage().ok());
  v1::RunStepRequest request;
  request.set_job_id("job");
  request.set_mode(v1::STEP_MODE_TRAIN);
  request.set_rows(1);
  request.set_seq_len(kSeq);
  request.set_microbatches(2);
  for (uint32_t mb : {0, 1}) {
    for (auto kind : {v1::OP_KIND_FORWARD, v1::OP_KIND_BACKWARD}) {
      auto* op = request.add_ops();
      op->set_kind(kind);
      op->set_microbatch(mb);
    }
    auto* targets = request.add_targets();
    for (int i = 0; i < kSeq; ++i) targets->add_ids(i);
  }
  grpc::ClientContext stream_context;
  auto stream = stub_->Exchange(&stream_context);
  grpc::Status step;
  std::thread runner([&] {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(10));
    v1::RunStepResponse response;
    step = stub_->RunStep(&context, request, &response);
  });
  auto wire = WireCodec::Encode(torch::randn({1, kSeq, kWidth}), WireDtype::kFp32);
  ASSERT_TRUE(wire.ok());
  ASSERT_TRUE(stream->Write(
      FrameCodec::Encode(FrameHeader{"job", 0, 0, v1::FRAME_KIND_ACTIVATION}, std::move(*wire))));
  // Microbatch 0's gradient coming back: the step runs, and waits for microbatch 1 next.
  v1::TensorFrame gradient;
  ASSERT_TRUE(stream->Read(&gradient));
  EXPECT_EQ(gradient.kind(), v1::FRAME_KIND_GRADIENT);
  grpc::ClientContext context;
  v1::ReleaseRequest release;
  release.set_job_id("job");
  v1::ReleaseResponse released;
  const grpc::Status status = stub_->Release(&context, release, &released);
  runner.join();
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(released.released());
  EXPECT_EQ(step.error_code(), grpc::StatusCode::CANCELLED) << step.error_message();
  EXPECT_NE(step.error_message().find("the job released this worker"), std::string::npos)
      << step.error_message();
  stream_context.TryCancel();
  stream->Finish();
}

TEST_F(StageWorkerTest, RefusesBadFramesAndKeepsServing) {
  ASSERT_TRUE(AssignLastStage().ok());
  struct Row {
    std::string name;
    std::function<void(v1::TensorFrame*)> corrupt;
    grpc::StatusCode code;
    std::string message;
  };
  std::vector<Row> rows = {
      {"wrong shape", [](v1::TensorFrame* f) { f->set_shape(2, 5); },
       grpc::StatusCode::INVALID_ARGUMENT, "frame.shape: [2,8,5]; expected [2,8,4]"},
      {"oversized", [](v1::TensorFrame* f) { f->set_shape(0, int64_t{1} << 40); },
       grpc::StatusCode::INVALID_ARGUMENT, "frame.shape"},
      {"bad checksum", [](v1::TensorFrame* f) { (*f->mutable_payload())[3] ^= 0x10; },
       grpc::StatusCode::DATA_LOSS, "frame.checksum"},
      {"wrong step", [](v1::TensorFrame* f) { f->set_step(7); },
       grpc::StatusCode::FAILED_PRECONDITION, "frame.step: 7; expected 0"},
      {"other job", [](v1::TensorFrame* f) { f->set_job_id("intruder"); },
       grpc::StatusCode::FAILED_PRECONDITION, "frame.job_id: 'intruder'"},
  };
  for (const Row& row : rows) {
    v1::TensorFrame frame = GoodFrame(0);
    row.corrupt(&frame);
    v1::RunStepResponse response;
    grpc::Status status = StepWithFrame(0, frame, &response);
    EXPECT_EQ(status.error_code(), row.code) << row.name << ": " << status.error_message();
    EXPECT_NE(status.error_message().find(row.message), std::string::npos)
        << row.name << ": " << status.error_message();
  }
  // NaN and Inf in an otherwise well-formed frame (valid checksum): the step stops naming
  // them, and the worker counts it.
  for (float bad : {std::nanf(""), INFINITY}) {
    at::Tensor values = torch::randn({kRows, kSeq, kWidth});
    values.index_put_({1, 2, 3}, bad);
    values.index_put_({0, 0, 0}, bad);
    v1::RunStepResponse response;
    grpc::Status status = StepWithFrame(0, ActivationFrame(values), &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::DATA_LOSS) << status.error_message();
    EXPECT_NE(status.error_message().find("non-finite values: 2 of 64 in the activation of "
                                          "microbatch 0 received from stage 0"),
              std::string::npos)
        << status.error_message();
  }
  // Finite activations that overflow inside the stage: the gradient it would send back is not
  // finite, and is refused before it leaves.
  {
    v1::RunStepResponse response;
    grpc::Status status =
        StepWithFrame(0, ActivationFrame(torch::full({kRows, kSeq, kWidth}, 3e38f)), &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::DATA_LOSS) << status.error_message();
    EXPECT_NE(status.error_message().find("non-finite values: 64 of 64 in the gradient of "
                                          "microbatch 0 computed by stage 1"),
              std::string::npos)
        << status.error_message();
  }
  const auto [code, metrics] = testing::HttpGet(worker_->metrics_port(), "/metrics");
  ASSERT_EQ(code, 200);
  EXPECT_EQ(
      testing::SampleValue(metrics, "resbm_stage_non_finite_total{where=\"received_activation\"}"),
      2.0)
      << metrics;
  EXPECT_EQ(testing::SampleValue(metrics, "resbm_stage_non_finite_total{where=\"sent_gradient\"}"),
            1.0)
      << metrics;
  // Still serving: a good frame trains.
  v1::RunStepResponse response;
  grpc::Status status = StepWithFrame(0, GoodFrame(0), &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.microbatches_size(), 1);
  EXPECT_GT(response.microbatches(0).loss(), 0.0);
  EXPECT_GT(response.grad_squared_norm(), 0.0);
  EXPECT_EQ(response.activation_bytes_received(), uint64_t{kRows * kSeq * kWidth * 4});
}

// A device the process cannot use is refused when the worker starts, not at its first step.
TEST(StageWorkerDeviceTest, RefusesADeviceItCannotUseAtStartup) {
  StageWorkerOptions options;
  options.session.device = "tpu";
  auto worker = StageWorker::Start(options);
  ASSERT_FALSE(worker.ok());
  EXPECT_EQ(worker.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(worker.status().message().find("--device: 'tpu'; expected cpu, cuda or cuda:N"),
            std::string::npos)
      << worker.status();
}

TEST(StageWorkerDeviceTest, TheWorkerBinaryExitsNamingAGpuItDoesNotHave) {
  // No machine this runs on has 64 GPUs: with CUDA or without, the index is past the last.
  const std::string log =
      ::testing::TempDir() + "/resbm_worker_device_" + std::to_string(::getpid()) + ".log";
  auto started = ChildProcess::Start({testing::BinaryPath("resbm-worker"), "--listen=127.0.0.1:0",
                                      "--plaintext", "--device=cuda:63"},
                                     log);
  ASSERT_TRUE(started.ok()) << started.status();
  const std::optional<int> code = (*started)->Wait(absl::Seconds(60));
  ASSERT_TRUE(code.has_value()) << "still running: " << (*started)->Log();
  EXPECT_NE(*code, 0);
  const std::string expected = CudaAvailable() ? "--device: 'cuda:63'; this process sees"
                                               : "--device: 'cuda:63'; no CUDA device";
  EXPECT_NE((*started)->Log().find(expected), std::string::npos) << (*started)->Log();
  std::remove(log.c_str());
}

}  // namespace
}  // namespace resbm
