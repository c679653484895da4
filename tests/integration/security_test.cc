// Transport security with real processes: a coordinator and stage workers on mutual TLS
// (certificates from tools/make_certs.sh), the job API behind bearer tokens. A job runs to the
// end; a missing or wrong token is UNAUTHENTICATED; a plaintext client and a client without a
// certificate are refused by the workers; a worker with a certificate from another CA never
// joins; services without TLS material or --plaintext refuse to start.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <string>

#include "common/config/job_config.h"
#include "common/runtime/child_process.h"
#include "common/transport/transport_security.h"
#include "gtest/gtest.h"
#include "resbm/v1/coordinator.grpc.pb.h"
#include "resbm/v1/stage_worker.grpc.pb.h"
#include "tests/testing/binaries.h"
#include "tests/testing/process_cluster.h"
#include "tests/testing/test_certificates.h"
#include "tests/testing/wait_for.h"

namespace resbm::testing {
namespace {

constexpr char kToken[] = "a1b2c3d4e5f6a7b8c9d0e1f2";  // alice's.
constexpr char kBobToken[] = "b0b0b0b0b0b0b0b0b0b0b0b0";
constexpr char kCarolToken[] = "ca401ca401ca401ca401ca40";  // An admin's.

v1::JobConfig TinyJob() {
  auto config = ParseJobConfigJson(R"({"model": {"d_model": 64, "n_layers": 4, "n_heads": 2,
      "mlp_hidden": 128, "seq_len": 32},
    "stages": {"num_stages": 2}, "compression": {"ratio": 8},
    "training": {"steps": 12, "batch_size": 8, "microbatches": 2, "eval_every": 6,
                 "eval_batches": 1, "seed": 5, "checkpoint_every": 6}})");
  EXPECT_TRUE(config.ok()) << config.status();
  return *config;
}

std::vector<std::string> TlsFlags(const TestCertificates& certs, const std::string& name) {
  return {"--tls-cert=" + certs.cert(name), "--tls-key=" + certs.key(name),
          "--tls-ca=" + certs.ca()};
}

JobClientAuth ClientAuth(const TestCertificates& certs, const std::string& token) {
  auto security = TransportSecurity::Load({false, "", "", certs.ca()}, /*server=*/false);
  EXPECT_TRUE(security.ok()) << security.status();
  return JobClientAuth{security->ChannelCredentials(), token};
}

class SecurityTest : public ::testing::Test {
 protected:
  SecurityTest()
      : dir_(::testing::TempDir() + "/resbm_security_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name()),
        cluster_(dir_ + "/cluster") {}

  void SetUp() override {
    auto certs = MakeTestCertificates(dir_ + "/certs", "coordinator worker client");
    ASSERT_TRUE(certs.ok()) << certs.status();
    certs_ = *certs;
    tokens_file_ = dir_ + "/tokens";
    std::ofstream(tokens_file_) << "alice " << kToken << "\nbob " << kBobToken << "\ncarol "
                                << kCarolToken << "\n";
    std::vector<std::string> coordinator = TlsFlags(certs_, "coordinator");
    coordinator.push_back("--auth-tokens-file=" + tokens_file_);
    coordinator.push_back("--admin-users=carol");
    coordinator.push_back("--max-unfinished-jobs-per-user=2");
    cluster_.set_security(coordinator, TlsFlags(certs_, "worker"), ClientAuth(certs_, kToken));
    ASSERT_TRUE(cluster_.StartCoordinator().ok()) << cluster_.Logs();
  }

  std::string dir_;
  ProcessCluster cluster_;
  TestCertificates certs_;
  std::string tokens_file_;
};

TEST_F(SecurityTest, AJobRunsOnMutualTlsWithAToken) {
  ASSERT_TRUE(cluster_.StartWorker().ok());
  ASSERT_TRUE(cluster_.StartWorker().ok());
  auto job = cluster_.client().Submit(TinyJob());
  ASSERT_TRUE(job.ok()) << job.status();
  auto ended = cluster_.client().WaitForEnd(job->job_id(), absl::Minutes(3));
  ASSERT_TRUE(ended.ok()) << ended.status() << cluster_.Logs();
  EXPECT_EQ(ended->state(), v1::JOB_STATE_SUCCEEDED) << ended->message() << cluster_.Logs();
  EXPECT_EQ(ended->progress().step(), 12u);
}

TEST_F(SecurityTest, AMissingOrWrongTokenIsUnauthenticated) {
  for (const std::string& token : {std::string(), std::string("not-the-token-0123456789")}) {
    JobClient client(cluster_.address(), absl::Seconds(10), ClientAuth(certs_, token));
    auto jobs = client.List();
    ASSERT_FALSE(jobs.ok()) << "token '" << token << "'";
    EXPECT_EQ(jobs.status().code(), absl::StatusCode::kUnauthenticated) << jobs.status();
    auto submitted = client.Submit(TinyJob());
    EXPECT_EQ(submitted.status().code(), absl::StatusCode::kUnauthenticated);
    auto watched = client.Watch("job-1", [](const v1::JobEvent&) {});
    EXPECT_EQ(watched.status().code(), absl::StatusCode::kUnauthenticated) << watched.status();
    EXPECT_EQ(client.Get("job-1").status().code(), absl::StatusCode::kUnauthenticated);
    EXPECT_EQ(client.Cancel("job-1").status().code(), absl::StatusCode::kUnauthenticated);
    EXPECT_EQ(client.ClusterStatus().status().code(), absl::StatusCode::kUnauthenticated);
  }
  // Nothing was stored.
  auto jobs = cluster_.client().List();
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  EXPECT_TRUE(jobs->empty());
}

// No workers: the first job waits for them (RUNNING), the others queue, so ownership and the
// per-user limit are all there is.
TEST_F(SecurityTest, JobsHaveOwnersAndOnlyTheOwnerOrAnAdminCancelsOne) {
  JobClient bob(cluster_.address(), absl::Seconds(10), ClientAuth(certs_, kBobToken));
  JobClient carol(cluster_.address(), absl::Seconds(10), ClientAuth(certs_, kCarolToken));
  auto first = cluster_.client().Submit(TinyJob());
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->owner(), "alice");
  auto seen = bob.Get(first->job_id());  // Reading is anyone's.
  ASSERT_TRUE(seen.ok()) << seen.status();
  EXPECT_EQ(seen->owner(), "alice");
  auto refused = bob.Cancel(first->job_id());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kPermissionDenied) << refused.status();
  EXPECT_NE(refused.status().message().find("belongs to 'alice'; user 'bob'"), std::string::npos)
      << refused.status();
  auto untouched = cluster_.client().Get(first->job_id());
  ASSERT_TRUE(untouched.ok()) << untouched.status();
  EXPECT_FALSE(untouched->cancel_requested());
  // Two unfinished jobs per user: alice's third waits for one to end; bob's first does not.
  auto second = cluster_.client().Submit(TinyJob());
  ASSERT_TRUE(second.ok()) << second.status();
  auto third = cluster_.client().Submit(TinyJob());
  EXPECT_EQ(third.status().code(), absl::StatusCode::kResourceExhausted) << third.status();
  EXPECT_NE(third.status().message().find("user 'alice': 2 jobs queued or running"),
            std::string::npos)
      << third.status();
  auto bobs = bob.Submit(TinyJob());
  ASSERT_TRUE(bobs.ok()) << bobs.status();
  EXPECT_EQ(bobs->owner(), "bob");
  // An admin cancels anyone's job; an owner their own.
  ASSERT_TRUE(carol.Cancel(first->job_id()).ok());
  auto by_admin = cluster_.client().WaitForEnd(first->job_id(), absl::Minutes(1));
  ASSERT_TRUE(by_admin.ok()) << by_admin.status();
  EXPECT_EQ(by_admin->state(), v1::JOB_STATE_CANCELLED);
  auto by_owner = bob.Cancel(bobs->job_id());
  ASSERT_TRUE(by_owner.ok()) << by_owner.status();
  EXPECT_EQ(by_owner->state(), v1::JOB_STATE_CANCELLED);
  auto again = cluster_.client().Submit(TinyJob());  // One of alice's two has ended.
  EXPECT_TRUE(again.ok()) << again.status();
  auto jobs = carol.List();
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  std::vector<std::string> owners;
  for (const v1::Job& job : *jobs) owners.push_back(job.owner());
  EXPECT_EQ(owners, (std::vector<std::string>{"alice", "alice", "bob", "alice"}));
}

TEST_F(SecurityTest, APlaintextClientCannotReachTheJobApi) {
  JobClient client(cluster_.address(), absl::Seconds(5), JobClientAuth{nullptr, kToken});
  auto jobs = client.List();
  ASSERT_FALSE(jobs.ok());
  EXPECT_EQ(jobs.status().code(), absl::StatusCode::kUnavailable) << jobs.status();
}

TEST_F(SecurityTest, WorkersRefuseCallersWithoutACertificateFromTheCa) {
  auto index = cluster_.StartWorker();
  ASSERT_TRUE(index.ok());
  std::string address;
  ASSERT_TRUE(cluster_.WaitForCluster(
      [&](const v1::ClusterStatus& status) {
        if (status.workers_size() != 1) return false;
        address = status.workers(0).address();
        return true;
      },
      absl::Seconds(30)))
      << cluster_.Logs();
  // The CA alone (no client certificate), and plaintext: both refused before any RPC runs.
  auto ca_only = TransportSecurity::Load({false, "", "", certs_.ca()}, false);
  ASSERT_TRUE(ca_only.ok());
  for (const auto& credentials :
       {ca_only->ChannelCredentials(), grpc::InsecureChannelCredentials()}) {
    auto stub = v1::StageWorker::NewStub(grpc::CreateChannel(address, credentials));
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    v1::ReleaseRequest request;
    request.set_job_id("job-1");
    v1::ReleaseResponse response;
    EXPECT_EQ(stub->Release(&context, request, &response).error_code(),
              grpc::StatusCode::UNAVAILABLE);
  }
}

TEST_F(SecurityTest, RegisteringWithoutAClientCertificateIsUnauthenticated) {
  // TLS to the coordinator verified with the CA, but no certificate of our own: the handshake
  // succeeds (users come without one) and the Control service refuses.
  auto ca_only = TransportSecurity::Load({false, "", "", certs_.ca()}, false);
  ASSERT_TRUE(ca_only.ok());
  auto stub =
      v1::Control::NewStub(grpc::CreateChannel(cluster_.address(), ca_only->ChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::RegisterWorkerRequest request;
  request.set_address("127.0.0.1:9");
  v1::RegisterWorkerResponse response;
  const grpc::Status status = stub->RegisterWorker(&context, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED) << status.error_message();
  EXPECT_NE(status.error_message().find("client certificate: none"), std::string::npos);
  auto cluster = cluster_.client().ClusterStatus();
  ASSERT_TRUE(cluster.ok());
  EXPECT_EQ(cluster->workers_size(), 0);
}

TEST_F(SecurityTest, AWorkerWithAnotherCasCertificateNeverJoins) {
  auto stranger = MakeTestCertificates(dir_ + "/stranger", "worker");
  ASSERT_TRUE(stranger.ok()) << stranger.status();
  auto rogue = ChildProcess::Start(
      {BinaryPath("resbm-worker"), "--listen=127.0.0.1:0", "--coordinator=" + cluster_.address(),
       "--threads=1", "--tls-cert=" + stranger->cert("worker"),
       "--tls-key=" + stranger->key("worker"), "--tls-ca=" + certs_.ca()},
      dir_ + "/rogue.log");
  ASSERT_TRUE(rogue.ok()) << rogue.status();
  ASSERT_TRUE(cluster_.StartWorker().ok());
  ASSERT_TRUE(cluster_.WaitForCluster(
      [](const v1::ClusterStatus& status) { return status.workers_size() == 1; },
      absl::Seconds(30)))
      << cluster_.Logs();
  // Several registration attempts of the rogue worker, each refused in the TLS handshake.
  ASSERT_TRUE(WaitFor(
      [&] { return (*rogue)->Log().find("registration attempt 3 failed") != std::string::npos; },
      absl::Seconds(30)))
      << (*rogue)->Log();
  auto status = cluster_.client().ClusterStatus();
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(status->workers_size(), 1) << (*rogue)->Log();
}

TEST(SecuritySettingsTest, ServicesWithoutTlsOrPlaintextRefuseToStart) {
  const std::string dir =
      ::testing::TempDir() + "/resbm_security_flags_" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  for (const std::string& binary :
       {std::string("resbm-coordinator"), std::string("resbm-worker")}) {
    std::vector<std::string> argv = {BinaryPath(binary), "--listen=127.0.0.1:0"};
    if (binary == "resbm-coordinator") argv.push_back("--data-dir=" + dir + "/data");
    auto started = ChildProcess::Start(argv, dir + "/" + binary + ".log");
    ASSERT_TRUE(started.ok());
    const std::optional<int> code = (*started)->Wait(absl::Seconds(30));
    ASSERT_TRUE(code.has_value()) << "still running: " << (*started)->Log();
    EXPECT_NE(*code, 0) << (*started)->Log();
    EXPECT_NE((*started)->Log().find("tls-ca: empty; expected --tls-ca"), std::string::npos)
        << (*started)->Log();
  }
  // TLS without tokens: the job API would be open to anyone with the CA.
  auto certs = MakeTestCertificates(dir + "/certs", "coordinator");
  ASSERT_TRUE(certs.ok());
  std::vector<std::string> argv = {BinaryPath("resbm-coordinator"), "--listen=127.0.0.1:0",
                                   "--data-dir=" + dir + "/data"};
  for (const auto& flag : TlsFlags(*certs, "coordinator")) argv.push_back(flag);
  auto started = ChildProcess::Start(argv, dir + "/coordinator-no-tokens.log");
  ASSERT_TRUE(started.ok());
  const std::optional<int> code = (*started)->Wait(absl::Seconds(30));
  ASSERT_TRUE(code.has_value()) << "still running: " << (*started)->Log();
  EXPECT_NE(*code, 0);
  EXPECT_NE((*started)->Log().find("auth_tokens_file: empty"), std::string::npos)
      << (*started)->Log();
}

}  // namespace
}  // namespace resbm::testing
