// Every service binary stops cleanly on SIGTERM and SIGINT: it drains, exits 0 and says so.
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <chrono>
#include <cstdio>

#include "gtest/gtest.h"
#include "resbm/v1/stage_worker.grpc.pb.h"
#include "tests/testing/subprocess.h"

namespace resbm {
namespace {

using ::resbm::testing::BinaryPath;
using ::resbm::testing::Subprocess;
using ::resbm::testing::WaitForFile;

class GracefulShutdownTest : public ::testing::TestWithParam<int> {};

TEST_P(GracefulShutdownTest, WorkerExitsZeroOnSignal) {
  const std::string dir = ::testing::TempDir();
  const std::string port_file = dir + "/resbm_worker_port_" + std::to_string(::getpid());
  std::remove(port_file.c_str());
  Subprocess worker({BinaryPath("resbm-worker"), "--listen=127.0.0.1:0", "--port-file=" + port_file,
                     "--threads=1", "--drain-seconds=1"},
                    dir + "/resbm_worker_log_" + std::to_string(::getpid()));
  const std::string port = WaitForFile(port_file, std::chrono::seconds(30));
  ASSERT_FALSE(port.empty()) << worker.Log();
  // It answers RPCs: an unassigned worker refuses a step with FAILED_PRECONDITION.
  auto stub = v1::StageWorker::NewStub(
      grpc::CreateChannel("127.0.0.1:" + port, grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::RunStepResponse response;
  EXPECT_EQ(stub->RunStep(&context, v1::RunStepRequest(), &response).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);

  const auto signalled = std::chrono::steady_clock::now();
  worker.Signal(GetParam());
  auto status = worker.Wait(std::chrono::seconds(15));
  std::printf("exited %.2f s after the signal\n",
              std::chrono::duration<double>(std::chrono::steady_clock::now() - signalled).count());
  ASSERT_TRUE(status.has_value()) << "still running after the signal:\n" << worker.Log();
  EXPECT_TRUE(WIFEXITED(*status)) << worker.Log();
  EXPECT_EQ(WEXITSTATUS(*status), 0) << worker.Log();
  EXPECT_NE(worker.Log().find("resbm-worker: stopped"), std::string::npos) << worker.Log();
  std::remove(port_file.c_str());
}

INSTANTIATE_TEST_SUITE_P(Signals, GracefulShutdownTest, ::testing::Values(SIGTERM, SIGINT));

}  // namespace
}  // namespace resbm
