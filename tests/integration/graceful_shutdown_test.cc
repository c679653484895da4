// Every service binary stops cleanly on SIGTERM and SIGINT: it drains, exits 0 and says so.
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>

#include "common/runtime/child_process.h"
#include "gtest/gtest.h"
#include "resbm/v1/stage_worker.grpc.pb.h"
#include "tests/testing/binaries.h"

namespace resbm {
namespace {

using ::resbm::testing::BinaryPath;

class GracefulShutdownTest : public ::testing::TestWithParam<int> {};

TEST_P(GracefulShutdownTest, WorkerExitsZeroOnSignal) {
  const std::string dir = ::testing::TempDir();
  const std::string port_file = dir + "/resbm_worker_port_" + std::to_string(::getpid());
  std::remove(port_file.c_str());
  auto started =
      ChildProcess::Start({BinaryPath("resbm-worker"), "--listen=127.0.0.1:0",
                           "--port-file=" + port_file, "--threads=1", "--drain-seconds=1"},
                          dir + "/resbm_worker_log_" + std::to_string(::getpid()));
  ASSERT_TRUE(started.ok()) << started.status();
  ChildProcess& worker = **started;
  const std::string port = WaitForFileLine(port_file, absl::Seconds(30));
  ASSERT_FALSE(port.empty()) << worker.Log();
  // It answers RPCs: an unassigned worker refuses a step with FAILED_PRECONDITION.
  auto stub = v1::StageWorker::NewStub(
      grpc::CreateChannel("127.0.0.1:" + port, grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::RunStepResponse response;
  EXPECT_EQ(stub->RunStep(&context, v1::RunStepRequest(), &response).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);

  worker.Signal(GetParam());
  auto status = worker.Wait(absl::Seconds(15));
  ASSERT_TRUE(status.has_value()) << "still running after the signal:\n" << worker.Log();
  EXPECT_EQ(DescribeWaitStatus(*status), "exit 0") << worker.Log();
  EXPECT_NE(worker.Log().find("resbm-worker: stopped"), std::string::npos) << worker.Log();
  std::remove(port_file.c_str());
}

TEST_P(GracefulShutdownTest, CoordinatorExitsZeroOnSignalWhileWaitingForWorkers) {
  const std::string dir = ::testing::TempDir();
  const std::string port_file = dir + "/resbm_coord_port_" + std::to_string(::getpid());
  std::remove(port_file.c_str());
  auto started = ChildProcess::Start(
      {BinaryPath("resbm-coordinator"), "--listen=127.0.0.1:0", "--port-file=" + port_file,
       "--summary-json=" + dir + "/unused.json", "--loss-csv=" + dir + "/unused.csv"},
      dir + "/resbm_coord_log_" + std::to_string(::getpid()));
  ASSERT_TRUE(started.ok()) << started.status();
  ChildProcess& coordinator = **started;
  ASSERT_FALSE(WaitForFileLine(port_file, absl::Seconds(30)).empty()) << coordinator.Log();
  coordinator.Signal(GetParam());
  auto status = coordinator.Wait(absl::Seconds(15));
  ASSERT_TRUE(status.has_value()) << coordinator.Log();
  EXPECT_EQ(DescribeWaitStatus(*status), "exit 0") << coordinator.Log();
  EXPECT_NE(coordinator.Log().find("resbm-coordinator: stopped"), std::string::npos)
      << coordinator.Log();
  std::remove(port_file.c_str());
}

INSTANTIATE_TEST_SUITE_P(Signals, GracefulShutdownTest, ::testing::Values(SIGTERM, SIGINT));

}  // namespace
}  // namespace resbm
