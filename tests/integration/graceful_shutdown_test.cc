// Every service binary stops cleanly on SIGTERM and SIGINT: it drains, exits 0 and says so.
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>

#include "common/config/job_config.h"
#include "common/runtime/child_process.h"
#include "gtest/gtest.h"
#include "resbm/v1/stage_worker.grpc.pb.h"
#include "tests/testing/binaries.h"
#include "tests/testing/wait_for.h"
#include "tools/resbmctl/job_client.h"

namespace resbm {
namespace {

using ::resbm::testing::BinaryPath;

class GracefulShutdownTest : public ::testing::TestWithParam<int> {};

TEST_P(GracefulShutdownTest, WorkerExitsZeroOnSignal) {
  const std::string dir = ::testing::TempDir();
  const std::string port_file = dir + "/resbm_worker_port_" + std::to_string(::getpid());
  std::remove(port_file.c_str());
  auto started = ChildProcess::Start(
      {BinaryPath("resbm-worker"), "--listen=127.0.0.1:0", "--port-file=" + port_file,
       "--threads=1", "--drain-seconds=1", "--plaintext"},
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

// Processes whose command line contains `needle` (to see that a launcher left none behind).
int CountProcessesWith(const std::string& needle) {
  int count = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    std::ifstream in(entry.path() / "cmdline", std::ios::binary);
    std::string cmdline((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (cmdline.find(needle) != std::string::npos) ++count;
  }
  return count;
}

std::string WaitForLog(ChildProcess& process, const std::string& text, absl::Duration timeout) {
  testing::WaitFor([&] { return process.Log().find(text) != std::string::npos; }, timeout);
  return process.Log();
}

// With a job waiting for workers that never come: the signal ends the wait and the process.
TEST_P(GracefulShutdownTest, CoordinatorExitsZeroOnSignalWhileAJobWaitsForWorkers) {
  const std::string dir = ::testing::TempDir();
  const std::string tag = std::to_string(::getpid()) + "_" + std::to_string(GetParam());
  const std::string port_file = dir + "/resbm_coord_port_" + tag;
  std::remove(port_file.c_str());
  auto started = ChildProcess::Start(
      {BinaryPath("resbm-coordinator"), "--listen=127.0.0.1:0", "--port-file=" + port_file,
       "--data-dir=" + dir + "/resbm_coord_data_" + tag, "--plaintext"},
      dir + "/resbm_coord_log_" + tag);
  ASSERT_TRUE(started.ok()) << started.status();
  ChildProcess& coordinator = **started;
  const std::string port = WaitForFileLine(port_file, absl::Seconds(30));
  ASSERT_FALSE(port.empty()) << coordinator.Log();
  JobClient client("127.0.0.1:" + port);
  v1::JobConfig config = DefaultJobConfig();
  config.mutable_stages()->set_num_stages(2);
  auto job = client.Submit(config);
  ASSERT_TRUE(job.ok()) << job.status();
  testing::WaitFor(
      [&] {
        return client.Get(job->job_id()).value_or(v1::Job()).message().find("needs 2 workers") !=
               std::string::npos;
      },
      absl::Seconds(30));
  // Queued: the scheduler starts it once 2 workers are idle.
  EXPECT_EQ(client.Get(job->job_id())->message(), "needs 2 workers, 0 idle (0 healthy)");
  EXPECT_EQ(client.Get(job->job_id())->state(), v1::JOB_STATE_QUEUED);
  coordinator.Signal(GetParam());
  auto status = coordinator.Wait(absl::Seconds(15));
  ASSERT_TRUE(status.has_value()) << coordinator.Log();
  EXPECT_EQ(DescribeWaitStatus(*status), "exit 0") << coordinator.Log();
  EXPECT_NE(coordinator.Log().find("resbm-coordinator: stopped"), std::string::npos)
      << coordinator.Log();
  std::remove(port_file.c_str());
  std::filesystem::remove_all(dir + "/resbm_coord_data_" + tag);
}

std::string LongDebugJob(const std::string& dir) {
  const char* root = std::getenv("RESBM_SOURCE_DIR");
  return std::string("--config=") + (root ? root : ".") + "/configs/debug.json";
}

TEST_P(GracefulShutdownTest, TrainerStopsBetweenStepsAndKeepsTheLossCurve) {
  const std::string dir = ::testing::TempDir();
  const std::string tag = std::to_string(::getpid()) + "_" + std::to_string(GetParam());
  const std::string csv = dir + "/resbm_train_loss_" + tag + ".csv";
  auto started = ChildProcess::Start(
      {BinaryPath("resbm-train"), LongDebugJob(dir), "--steps=100000", "--threads=1",
       "--summary-json=" + dir + "/resbm_train_summary_" + tag + ".json", "--loss-csv=" + csv,
       "--checkpoint-dir=" + dir + "/resbm_train_checkpoint_" + tag},
      dir + "/resbm_train_log_" + tag);
  ASSERT_TRUE(started.ok()) << started.status();
  ChildProcess& trainer = **started;
  ASSERT_NE(WaitForLog(trainer, "step 1/", absl::Seconds(60)).find("step 1/"), std::string::npos)
      << trainer.Log();
  trainer.Signal(GetParam());
  auto status = trainer.Wait(absl::Seconds(15));
  ASSERT_TRUE(status.has_value()) << trainer.Log();
  EXPECT_EQ(DescribeWaitStatus(*status), "exit 130") << trainer.Log();
  EXPECT_NE(trainer.Log().find("stopped before step"), std::string::npos) << trainer.Log();
  std::ifstream in(csv);
  std::string header, first;
  std::getline(in, header);
  EXPECT_EQ(header, "step,tokens,train_loss,val_loss,grad_norm,seconds,clip_factor");
  EXPECT_TRUE(std::getline(in, first) && first.rfind("1,", 0) == 0) << first;
}

// `resbmctl local` running a long job on two workers, and the coordinator's port.
struct LongLocalCluster {
  std::unique_ptr<ChildProcess> launcher;
  std::string log_dir;
  std::string port;
};

void StartLongLocalCluster(const std::string& tag, LongLocalCluster* cluster) {
  const std::string dir = ::testing::TempDir();
  cluster->log_dir = dir + "/resbm_cluster_" + tag;
  auto started = ChildProcess::Start(
      {BinaryPath("resbmctl"), "local", LongDebugJob(dir), "--steps=100000",
       "--log-dir=" + cluster->log_dir, "--summary-json=" + cluster->log_dir + "/summary.json",
       "--loss-csv=" + cluster->log_dir + "/loss.csv"},
      dir + "/resbmctl_log_" + tag);
  ASSERT_TRUE(started.ok()) << started.status();
  cluster->launcher = std::move(*started);
  ASSERT_NE(WaitForLog(*cluster->launcher, "step 1/", absl::Seconds(60)).find("step 1/"),
            std::string::npos)
      << cluster->launcher->Log();
  cluster->port = WaitForFileLine(cluster->log_dir + "/coordinator.port", absl::Seconds(1));
  ASSERT_FALSE(cluster->port.empty());
  ASSERT_EQ(CountProcessesWith("--coordinator=127.0.0.1:" + cluster->port), 2);  // Two stages.
}

// Processes of that cluster still running: its workers and its coordinator.
int ProcessesLeft(const LongLocalCluster& cluster) {
  return CountProcessesWith("--coordinator=127.0.0.1:" + cluster.port) +
         CountProcessesWith(cluster.log_dir + "/coordinator.port");
}

TEST_P(GracefulShutdownTest, LocalClusterStopsEveryProcess) {
  LongLocalCluster cluster;
  ASSERT_NO_FATAL_FAILURE(StartLongLocalCluster(
      std::to_string(::getpid()) + "_" + std::to_string(GetParam()), &cluster));
  cluster.launcher->Signal(GetParam());
  auto status = cluster.launcher->Wait(absl::Seconds(30));
  ASSERT_TRUE(status.has_value()) << cluster.launcher->Log();
  EXPECT_EQ(DescribeWaitStatus(*status), "exit 130") << cluster.launcher->Log();
  EXPECT_EQ(ProcessesLeft(cluster), 0);
  std::filesystem::remove_all(cluster.log_dir);
}

// The launcher killed outright (SIGKILL: it can clean nothing up): its children notice
// and stop on their own instead of living on as orphans holding a job.
TEST(OrphanTest, LocalClusterProcessesStopWhenTheLauncherIsKilled) {
  LongLocalCluster cluster;
  ASSERT_NO_FATAL_FAILURE(StartLongLocalCluster(std::to_string(::getpid()) + "_kill", &cluster));
  cluster.launcher->Signal(SIGKILL);
  cluster.launcher->Wait(absl::Seconds(10));
  testing::WaitFor([&] { return ProcessesLeft(cluster) == 0; }, absl::Seconds(20));
  EXPECT_EQ(ProcessesLeft(cluster), 0);
  std::filesystem::remove_all(cluster.log_dir);
}

INSTANTIATE_TEST_SUITE_P(Signals, GracefulShutdownTest, ::testing::Values(SIGTERM, SIGINT));

}  // namespace
}  // namespace resbm
