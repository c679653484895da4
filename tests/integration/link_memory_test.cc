// A receiving link's memory is bounded by its byte budget, measured on a real worker process:
// a peer floods the worker's Exchange stream with 1 MiB frames while no step takes them (a
// stalled stage), and the worker's resident memory stays within the budget plus one frame and
// the transport's buffers, because the worker stops reading and gRPC's flow control holds the
// sender back. Before the budget the worker held every frame (up to 8194 of them).
#include <grpcpp/grpcpp.h>

#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/config/job_config.h"
#include "common/runtime/child_process.h"
#include "gtest/gtest.h"
#include "resbm/v1/stage_worker.grpc.pb.h"
#include "tests/testing/binaries.h"
#include "tests/testing/scoped_temp_dir.h"

namespace resbm {
namespace {

constexpr int64_t kMiB = int64_t{1} << 20;
constexpr int kFloodFrames = 512;  // 512 MiB offered.

// Resident memory of `pid` in MiB (VmRSS), or -1.
double ResidentMiB(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  }
  return -1.0;
}

v1::AssignRequest LastStageOfTwo() {
  // Frames of 4 rows x 32 tokens x k = 8 fp32 values: 4 KiB; the budget is
  // (2 x 2 microbatches + 2) x (4 KiB + 1 KiB) = 30 KiB.
  auto config = ParseJobConfigJson(R"({
    "model": {"vocab_size": 256, "d_model": 64, "n_layers": 2, "n_heads": 2, "mlp_hidden": 128,
              "seq_len": 32},
    "stages": {"num_stages": 2},
    "compression": {"ratio": 8, "wire_dtype": "WIRE_DTYPE_FP32"},
    "training": {"batch_size": 8, "microbatches": 2}
  })");
  EXPECT_TRUE(config.ok()) << config.status();
  v1::AssignRequest request;
  auto* a = request.mutable_assignment();
  a->set_job_id("job");
  *a->mutable_config() = *config;
  a->set_stage_index(1);
  a->set_num_stages(2);
  a->set_first_layer(1);
  a->set_num_layers(1);
  return request;
}

// Counts the writes that completed; the test waits on it for the stream to stall.
class Flooder {
 public:
  explicit Flooder(v1::StageWorker::Stub* stub) : stream_(stub->Exchange(&context_)) {
    thread_ = std::thread([this] { Run(); });
  }
  ~Flooder() {
    context_.TryCancel();  // Ends a Write blocked on flow control.
    thread_.join();
  }

  // The completed writes once none has completed for `quiet` (or all of them did).
  int WaitForStall(absl::Duration quiet) {
    absl::MutexLock lock(&mu_);
    while (true) {
      const int before = written_;
      if (before == kFloodFrames || done_) return before;
      const bool timed_out = changed_.WaitWithTimeout(&mu_, quiet);
      if (timed_out && written_ == before) return before;
    }
  }

 private:
  void Run() {
    v1::TensorFrame frame;
    frame.set_job_id("job");
    frame.set_kind(v1::FRAME_KIND_ACTIVATION);
    frame.set_payload(std::string(kMiB, 'x'));
    for (int mb = 0; mb < kFloodFrames; ++mb) {
      frame.set_microbatch(static_cast<uint32_t>(mb));  // Distinct keys: all of them held.
      if (!stream_->Write(frame)) break;
      absl::MutexLock lock(&mu_);
      ++written_;
      changed_.Signal();
    }
    absl::MutexLock lock(&mu_);
    done_ = true;
    changed_.Signal();
  }

  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::TensorFrame, v1::TensorFrame>> stream_;
  absl::Mutex mu_;
  absl::CondVar changed_;
  int written_ ABSL_GUARDED_BY(mu_) = 0;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

TEST(LinkMemoryTest, AFloodedStalledStageStaysWithinItsBudget) {
  ScopedTempDir dir;
  const std::string port_file = dir.File("port");
  const std::vector<std::string> argv = {testing::BinaryPath("resbm-worker"),
                                         "--listen=127.0.0.1:0", "--plaintext", "--threads=1",
                                         "--port-file=" + port_file};
  auto worker = ChildProcess::Start(argv, dir.File("worker.log"));
  ASSERT_TRUE(worker.ok()) << worker.status();
  const std::string port = WaitForFileLine(port_file, absl::Seconds(30));
  ASSERT_FALSE(port.empty()) << (*worker)->Log();
  auto channel = grpc::CreateChannel("127.0.0.1:" + port, grpc::InsecureChannelCredentials());
  auto stub = v1::StageWorker::NewStub(channel);
  {
    grpc::ClientContext context;
    v1::AssignResponse response;
    const grpc::Status assigned = stub->Assign(&context, LastStageOfTwo(), &response);
    ASSERT_TRUE(assigned.ok()) << assigned.error_message();
  }
  const double before = ResidentMiB((*worker)->pid());
  ASSERT_GT(before, 0);

  int written = 0;
  double during = 0;
  {
    Flooder flooder(stub.get());
    // Generous on a loaded 2-core machine: a write that completes resets it.
    written = flooder.WaitForStall(absl::Seconds(3));
    during = ResidentMiB((*worker)->pid());
  }
  std::printf(
      "link memory: %d of %d 1 MiB frames written before the stream stalled; worker "
      "resident %.1f MiB before, %.1f MiB stalled (+%.1f)\n",
      written, kFloodFrames, before, during, during - before);
  // The budget (30 KiB) + the frame that crossed it + the one being parsed + HTTP/2 and socket
  // buffers: tens of MiB at most, against 512 MiB offered.
  EXPECT_LT(written, kFloodFrames / 4);
  EXPECT_LT(during - before, 64.0) << (*worker)->Log();
  EXPECT_TRUE((*worker)->Running()) << (*worker)->Log();

  // The worker still serves: a Release answers.
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::ReleaseRequest release;
  release.set_job_id("job");
  v1::ReleaseResponse released;
  const grpc::Status status = stub->Release(&context, release, &released);
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(released.released());
  (*worker)->Stop(absl::Seconds(10));
}

}  // namespace
}  // namespace resbm
