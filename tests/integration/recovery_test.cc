// A stage worker killed with SIGKILL in the middle of a job: the coordinator notices, takes a
// spare worker, restores the last complete checkpoint on every stage, replays the same
// batches, and the job ends with exactly the losses of an uninterrupted run.
#include <signal.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "common/runtime/child_process.h"
#include "gtest/gtest.h"
#include "tests/testing/binaries.h"

namespace resbm {
namespace {

using ::resbm::testing::BinaryPath;

std::vector<double> TrainLosses(const std::string& csv) {
  std::ifstream in(csv);
  std::string line;
  std::getline(in, line);
  std::vector<double> losses;
  while (std::getline(in, line)) {
    std::stringstream row(line);
    std::string cell;
    for (int i = 0; i < 3; ++i) std::getline(row, cell, ',');
    losses.push_back(std::stod(cell));
  }
  return losses;
}

bool WaitFor(const std::function<bool()>& condition, absl::Duration timeout) {
  const absl::Time end = absl::Now() + timeout;
  while (absl::Now() < end) {
    if (condition()) return true;
    absl::SleepFor(absl::Milliseconds(50));
  }
  return false;
}

TEST(RecoveryTest, KilledWorkerIsReplacedAndTheLossesAreThoseOfAnUninterruptedRun) {
  const std::string dir = ::testing::TempDir() + "/resbm_recovery_" + std::to_string(::getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir + "/checkpoints");
  const std::string config = dir + "/job.json";
  std::ofstream(config) << R"({"model": {"d_model": 64, "n_layers": 4, "n_heads": 2,
      "mlp_hidden": 128, "seq_len": 32},
    "stages": {"num_stages": 2},
    "compression": {"ratio": 8, "wire_dtype": "WIRE_DTYPE_FP32"},
    "training": {"steps": 300, "batch_size": 8, "microbatches": 2, "eval_every": 0,
                 "eval_batches": 1, "seed": 21, "checkpoint_every": 10}})";

  // The reference: the same job, uninterrupted, in one process.
  auto reference = ChildProcess::Start(
      {BinaryPath("resbm-train"), "--config=" + config, "--threads=1",
       "--summary-json=" + dir + "/reference.json", "--loss-csv=" + dir + "/reference.csv"},
      dir + "/reference.log");
  ASSERT_TRUE(reference.ok());
  ASSERT_EQ(DescribeWaitStatus((*reference)->Wait(absl::Seconds(240)).value_or(-1)), "exit 0")
      << (*reference)->Log();

  const std::string port_file = dir + "/coordinator.port";
  auto coordinator = ChildProcess::Start(
      {BinaryPath("resbm-coordinator"), "--listen=127.0.0.1:0", "--config=" + config,
       "--port-file=" + port_file, "--checkpoint-dir=" + dir + "/checkpoints",
       "--summary-json=" + dir + "/cluster.json", "--loss-csv=" + dir + "/cluster.csv"},
      dir + "/coordinator.log");
  ASSERT_TRUE(coordinator.ok());
  const std::string port = WaitForFileLine(port_file, absl::Seconds(30));
  ASSERT_FALSE(port.empty()) << (*coordinator)->Log();
  // Two stages, three workers: one spare.
  std::vector<std::unique_ptr<ChildProcess>> workers;
  for (int i = 0; i < 3; ++i) {
    auto worker =
        ChildProcess::Start({BinaryPath("resbm-worker"), "--listen=127.0.0.1:0",
                             "--coordinator=127.0.0.1:" + port, "--threads=1", "--drain-seconds=1"},
                            dir + "/worker-" + std::to_string(i) + ".log");
    ASSERT_TRUE(worker.ok());
    workers.push_back(std::move(*worker));
  }
  // Kill the worker holding stage 1 once a few checkpoints are complete.
  std::smatch match;
  std::string log;
  ASSERT_TRUE(WaitFor(
      [&] {
        log = (*coordinator)->Log();
        return std::regex_search(log, match, std::regex(" 1=(127\\.0\\.0\\.1:[0-9]+)"));
      },
      absl::Seconds(60)))
      << log;
  const std::string victim_address = match[1];
  ASSERT_TRUE(WaitFor(
      [&] {
        return std::filesystem::exists(dir + "/checkpoints/job-1-step-50-stage-1.ckpt") ||
               std::filesystem::exists(dir + "/checkpoints/job-1-step-60-stage-1.ckpt");
      },
      absl::Seconds(120)))
      << (*coordinator)->Log();
  int victim = -1;
  for (int i = 0; i < 3; ++i) {
    if (workers[i]->Log().find("serving on " + victim_address) != std::string::npos) victim = i;
  }
  ASSERT_GE(victim, 0) << victim_address;
  workers[victim]->Signal(SIGKILL);

  auto status = (*coordinator)->Wait(absl::Seconds(180));
  ASSERT_TRUE(status.has_value()) << (*coordinator)->Log();
  EXPECT_EQ(DescribeWaitStatus(*status), "exit 0") << (*coordinator)->Log();
  EXPECT_NE((*coordinator)->Log().find("recovered from"), std::string::npos)
      << (*coordinator)->Log();

  const auto expected = TrainLosses(dir + "/reference.csv");
  const auto actual = TrainLosses(dir + "/cluster.csv");
  ASSERT_EQ(expected.size(), 300u);
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_LT(std::abs(actual[i] - expected[i]), 1e-5 * expected[i])
        << "step " << i + 1 << ": " << actual[i] << " vs " << expected[i];
  }
  for (auto& worker : workers) worker->Stop(absl::Seconds(10));
  std::filesystem::remove_all(dir);
}

int CountOf(const std::string& text, const std::string& needle) {
  int count = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) {
    ++count;
  }
  return count;
}

// Five SIGKILLs of a random worker at random moments (each killed worker is restarted, as
// an orchestrator would): the job still completes every step with the uninterrupted losses.
TEST(RecoveryTest, FiveRandomKillsStillGiveTheUninterruptedLosses) {
  const std::string dir = ::testing::TempDir() + "/resbm_recovery5_" + std::to_string(::getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir + "/checkpoints");
  const std::string config = dir + "/job.json";
  std::ofstream(config) << R"({"model": {"d_model": 64, "n_layers": 4, "n_heads": 2,
      "mlp_hidden": 128, "seq_len": 32},
    "stages": {"num_stages": 2},
    "compression": {"ratio": 8, "wire_dtype": "WIRE_DTYPE_FP32"},
    "training": {"steps": 400, "batch_size": 8, "microbatches": 2, "eval_every": 100,
                 "eval_batches": 1, "seed": 5, "checkpoint_every": 10}})";
  auto reference = ChildProcess::Start(
      {BinaryPath("resbm-train"), "--config=" + config, "--threads=1",
       "--summary-json=" + dir + "/reference.json", "--loss-csv=" + dir + "/reference.csv"},
      dir + "/reference.log");
  ASSERT_TRUE(reference.ok());
  ASSERT_EQ(DescribeWaitStatus((*reference)->Wait(absl::Seconds(240)).value_or(-1)), "exit 0")
      << (*reference)->Log();

  const std::string port_file = dir + "/coordinator.port";
  auto coordinator = ChildProcess::Start(
      {BinaryPath("resbm-coordinator"), "--listen=127.0.0.1:0", "--config=" + config,
       "--port-file=" + port_file, "--checkpoint-dir=" + dir + "/checkpoints",
       "--summary-json=" + dir + "/cluster.json", "--loss-csv=" + dir + "/cluster.csv"},
      dir + "/coordinator.log");
  ASSERT_TRUE(coordinator.ok());
  const std::string port = WaitForFileLine(port_file, absl::Seconds(30));
  ASSERT_FALSE(port.empty()) << (*coordinator)->Log();
  int started = 0;
  auto start_worker = [&]() {
    auto worker =
        ChildProcess::Start({BinaryPath("resbm-worker"), "--listen=127.0.0.1:0",
                             "--coordinator=127.0.0.1:" + port, "--threads=1", "--drain-seconds=1"},
                            dir + "/worker-" + std::to_string(started++) + ".log");
    EXPECT_TRUE(worker.ok());
    return std::move(*worker);
  };
  std::vector<std::unique_ptr<ChildProcess>> workers;
  workers.push_back(start_worker());
  workers.push_back(start_worker());
  ASSERT_TRUE(WaitFor([&] { return (*coordinator)->Log().find("assigned") != std::string::npos; },
                      absl::Seconds(60)))
      << (*coordinator)->Log();

  std::mt19937 rng(1234);  // Fixed: the same kill moments every run.
  for (int kill = 0; kill < 5; ++kill) {
    // After the previous recovery, let it train for a random moment, then kill.
    ASSERT_TRUE(WaitFor([&] { return CountOf((*coordinator)->Log(), "recovered from") >= kill; },
                        absl::Seconds(120)))
        << "kill " << kill << "\n"
        << (*coordinator)->Log();
    absl::SleepFor(absl::Milliseconds(300 + rng() % 1500));
    if (!(*coordinator)->Running()) break;
    const size_t victim = rng() % workers.size();
    workers[victim]->Signal(SIGKILL);
    workers[victim]->Wait(absl::Seconds(10));
    workers[victim] = start_worker();
  }
  auto status = (*coordinator)->Wait(absl::Seconds(300));
  ASSERT_TRUE(status.has_value()) << (*coordinator)->Log();
  EXPECT_EQ(DescribeWaitStatus(*status), "exit 0") << (*coordinator)->Log();
  EXPECT_EQ(CountOf((*coordinator)->Log(), "recovered from"), 5) << (*coordinator)->Log();

  const auto expected = TrainLosses(dir + "/reference.csv");
  const auto actual = TrainLosses(dir + "/cluster.csv");
  ASSERT_EQ(expected.size(), 400u);
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_LT(std::abs(actual[i] - expected[i]), 1e-5 * expected[i])
        << "step " << i + 1 << ": " << actual[i] << " vs " << expected[i];
  }
  for (auto& worker : workers) worker->Stop(absl::Seconds(10));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace resbm
