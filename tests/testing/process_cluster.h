// ProcessCluster: a real coordinator process and stage-worker processes on loopback for the
// integration tests, with a JobClient to the coordinator. The coordinator can be killed and
// started again on the same port and data directory; workers can be killed and added.
// Logs() gathers every process's log for failure messages. Stops everything on destruction.
// Header-only; not thread-safe.
#ifndef RESBM_TESTS_TESTING_PROCESS_CLUSTER_H_
#define RESBM_TESTS_TESTING_PROCESS_CLUSTER_H_

#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/runtime/child_process.h"
#include "tests/testing/binaries.h"
#include "tests/testing/wait_for.h"
#include "tools/resbmctl/job_client.h"

namespace resbm::testing {

class ProcessCluster {
 public:
  // Everything goes under `dir` (created; left in place so a failure's logs stay readable).
  explicit ProcessCluster(std::string dir) : dir_(std::move(dir)) {
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  ~ProcessCluster() {
    for (auto& worker : workers_) worker->Stop(absl::Seconds(10));
    if (coordinator_) coordinator_->Stop(absl::Seconds(10));
  }
  ProcessCluster(const ProcessCluster&) = delete;
  ProcessCluster& operator=(const ProcessCluster&) = delete;

  // Starts the coordinator (again on the same port after the first start) with the data
  // directory `dir`/data and `flags`; waits until it serves.
  absl::Status StartCoordinator(const std::vector<std::string>& flags = {}) {
    const std::string port_file = absl::StrCat(dir_, "/coordinator-", starts_, ".port");
    std::vector<std::string> argv = {
        BinaryPath("resbm-coordinator"),
        absl::StrCat("--listen=", host_, ":", port_.empty() ? "0" : port_),
        "--port-file=" + port_file, "--data-dir=" + data_dir(), "--drain-seconds=1"};
    argv.insert(argv.end(), coordinator_security_.begin(), coordinator_security_.end());
    argv.insert(argv.end(), flags.begin(), flags.end());
    auto started =
        ChildProcess::Start(argv, absl::StrCat(dir_, "/coordinator-", starts_++, ".log"));
    if (!started.ok()) return started.status();
    coordinator_ = std::move(*started);
    const std::string port = WaitForFileLine(port_file, absl::Seconds(30));
    if (port.empty()) return absl::UnavailableError("coordinator did not serve:\n" + Logs());
    port_ = port;
    client_ = std::make_unique<JobClient>(address(), absl::Seconds(15), client_auth_);
    return absl::OkStatus();
  }

  // Flags every worker started from now on gets.
  void set_worker_flags(std::vector<std::string> flags) { worker_flags_ = std::move(flags); }

  // TLS for the processes started from now on (default: --plaintext everywhere) and how the
  // cluster's own JobClient authenticates.
  void set_security(std::vector<std::string> coordinator_flags,
                    std::vector<std::string> worker_flags, JobClientAuth client_auth) {
    coordinator_security_ = std::move(coordinator_flags);
    worker_security_ = std::move(worker_flags);
    client_auth_ = std::move(client_auth);
  }

  // The address the coordinator and the workers started from now on listen on (default
  // 127.0.0.1), e.g. a veth's address that a network namespace can reach.
  void set_host(std::string host) { host_ = std::move(host); }

  // Starts one more worker, which registers with the coordinator on its own (this does not
  // wait for that: a test that counts workers waits for them); returns its index. `prefix`
  // runs it through another command (e.g. {"ip", "netns", "exec", NS}); `host` (default: the
  // cluster's) is the address it listens on.
  absl::StatusOr<size_t> StartWorker(const std::vector<std::string>& prefix = {},
                                     const std::string& host = "") {
    auto started = LaunchWorker(prefix, host.empty() ? host_ : host);
    if (!started.ok()) return started.status();
    workers_.push_back(std::move(*started));
    return workers_.size() - 1;
  }

  // Replaces worker `i` with a fresh process (as an orchestrator restarts a dead pod).
  absl::Status ReplaceWorker(size_t i) {
    workers_[i]->Wait(absl::Seconds(10));
    auto started = LaunchWorker({}, host_);
    if (!started.ok()) return started.status();
    workers_[i] = std::move(*started);
    return absl::OkStatus();
  }

  // Index of the worker serving `address` ("127.0.0.1:port"), or -1 (also for "", a slot of
  // a pipeline out of its job).
  int WorkerAt(const std::string& address) {
    if (address.empty()) return -1;
    for (size_t i = 0; i < workers_.size(); ++i) {
      if (workers_[i]->Log().find("serving on " + address) != std::string::npos) {
        return static_cast<int>(i);
      }
    }
    return -1;
  }

  // Waits (reading the job every 50 ms) until `condition` holds for job `job_id`.
  bool WaitForJob(const std::string& job_id, const std::function<bool(const v1::Job&)>& condition,
                  absl::Duration timeout) {
    return WaitFor(
        [&] {
          auto job = client_->Get(job_id);
          return job.ok() && condition(*job);
        },
        timeout);
  }

  // Waits (reading the cluster's status every 50 ms) until `condition` holds for it.
  bool WaitForCluster(const std::function<bool(const v1::ClusterStatus&)>& condition,
                      absl::Duration timeout) {
    return WaitFor(
        [&] {
          auto status = client_->ClusterStatus();
          return status.ok() && condition(*status);
        },
        timeout);
  }

  ChildProcess& coordinator() { return *coordinator_; }
  ChildProcess& worker(size_t i) { return *workers_[i]; }
  size_t num_workers() const { return workers_.size(); }
  JobClient& client() { return *client_; }
  std::string address() const { return host_ + ":" + port_; }
  std::string data_dir() const { return dir_ + "/data"; }
  const std::string& dir() const { return dir_; }

  // Every log under `dir`, each headed by its name.
  std::string Logs() const {
    std::string all;
    for (const auto& entry : std::filesystem::directory_iterator(dir_)) {
      if (entry.path().extension() != ".log") continue;
      std::ifstream in(entry.path());
      std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      if (text.size() > 6000) text = "..." + text.substr(text.size() - 6000);
      absl::StrAppend(&all, "==== ", entry.path().filename().string(), "\n", text, "\n");
    }
    return all;
  }

 private:
  absl::StatusOr<std::unique_ptr<ChildProcess>> LaunchWorker(const std::vector<std::string>& prefix,
                                                             const std::string& host) {
    std::vector<std::string> argv = prefix;
    const std::vector<std::string> worker = {BinaryPath("resbm-worker"), "--listen=" + host + ":0",
                                             "--coordinator=" + address(), "--threads=1",
                                             "--drain-seconds=1",
                                             // The coordinator's default checkpoint directory.
                                             "--checkpoint-dir=" + data_dir() + "/checkpoints"};
    argv.insert(argv.end(), worker.begin(), worker.end());
    argv.insert(argv.end(), worker_security_.begin(), worker_security_.end());
    argv.insert(argv.end(), worker_flags_.begin(), worker_flags_.end());
    return ChildProcess::Start(argv, absl::StrCat(dir_, "/worker-", worker_logs_++, ".log"));
  }

  std::string dir_;
  std::string port_;
  std::string host_ = "127.0.0.1";
  std::vector<std::string> coordinator_security_ = {"--plaintext"};
  std::vector<std::string> worker_security_ = {"--plaintext"};
  JobClientAuth client_auth_;
  int starts_ = 0;
  int worker_logs_ = 0;
  std::vector<std::string> worker_flags_;
  std::unique_ptr<ChildProcess> coordinator_;
  std::vector<std::unique_ptr<ChildProcess>> workers_;
  std::unique_ptr<JobClient> client_;
};

}  // namespace resbm::testing

#endif  // RESBM_TESTS_TESTING_PROCESS_CLUSTER_H_
