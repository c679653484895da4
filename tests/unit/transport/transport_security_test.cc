// TransportSecurity with real certificates (tools/make_certs.sh) and a real TLS server on
// loopback: mutual TLS accepts a certificate from the CA and refuses no certificate, one from
// another CA, and plaintext; bad flag combinations and files are clear errors.
#include "common/transport/transport_security.h"

#include <unistd.h>

#include <fstream>

#include "gtest/gtest.h"
#include "resbm/v1/stage_worker.grpc.pb.h"
#include "tests/testing/test_certificates.h"

namespace resbm {
namespace {

using ::resbm::testing::MakeTestCertificates;
using ::resbm::testing::TestCertificates;

class TransportSecurityTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string dir = ::testing::TempDir() + "/resbm_tls_" + std::to_string(::getpid());
    auto made = MakeTestCertificates(dir + "/cluster", "server client");
    ASSERT_TRUE(made.ok()) << made.status();
    certs_ = new TestCertificates(*made);
    auto other = MakeTestCertificates(dir + "/other", "client");
    ASSERT_TRUE(other.ok()) << other.status();
    other_ = new TestCertificates(*other);
  }

  static TransportSecurity Load(const TestCertificates& certs, const std::string& name,
                                bool server) {
    auto loaded = TransportSecurity::Load({false, name.empty() ? "" : certs.cert(name),
                                           name.empty() ? "" : certs.key(name), certs_->ca()},
                                          server);
    EXPECT_TRUE(loaded.ok()) << loaded.status();
    return *loaded;
  }

  // One RPC to a server that requires client certificates from the cluster's CA and
  // implements nothing: UNIMPLEMENTED means the TLS handshake (both ways) went through,
  // UNAVAILABLE that the connection was refused.
  static grpc::StatusCode Call(const std::shared_ptr<grpc::ChannelCredentials>& credentials) {
    v1::StageWorker::CallbackService unimplemented;
    grpc::ServerBuilder builder;
    builder.RegisterService(&unimplemented);
    int port = 0;
    builder.AddListeningPort(
        "127.0.0.1:0",
        Load(*certs_, "server", true)
            .ServerCredentials(TransportSecurity::ClientCertificates::kRequire),
        &port);
    auto server = builder.BuildAndStart();
    EXPECT_NE(port, 0);
    auto stub = v1::StageWorker::NewStub(
        grpc::CreateChannel("127.0.0.1:" + std::to_string(port), credentials));
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    v1::ReleaseResponse response;
    const grpc::Status status = stub->Release(&context, v1::ReleaseRequest(), &response);
    server->Shutdown();
    return status.error_code();
  }

  static TestCertificates* certs_;
  static TestCertificates* other_;
};

TestCertificates* TransportSecurityTest::certs_ = nullptr;
TestCertificates* TransportSecurityTest::other_ = nullptr;

TEST_F(TransportSecurityTest, MutualTlsAcceptsACertificateFromTheCa) {
  EXPECT_EQ(Call(Load(*certs_, "client", false).ChannelCredentials()),
            grpc::StatusCode::UNIMPLEMENTED);
}

TEST_F(TransportSecurityTest, NoClientCertificateIsRefused) {
  EXPECT_EQ(Call(Load(*certs_, "", false).ChannelCredentials()), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(TransportSecurityTest, ACertificateFromAnotherCaIsRefused) {
  auto stranger = TransportSecurity::Load(
      {false, other_->cert("client"), other_->key("client"), certs_->ca()}, false);
  ASSERT_TRUE(stranger.ok()) << stranger.status();
  EXPECT_EQ(Call(stranger->ChannelCredentials()), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(TransportSecurityTest, PlaintextIsRefused) {
  EXPECT_EQ(Call(grpc::InsecureChannelCredentials()), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(TransportSecurityTest, BadSettingsAreClearErrors) {
  struct Case {
    TransportSecurityOptions options;
    bool server;
    std::string message;
  };
  const std::string dir = ::testing::TempDir();
  const std::string not_pem = dir + "/resbm_not_pem_" + std::to_string(::getpid());
  std::ofstream(not_pem) << "hello\n";
  for (const Case& c : std::vector<Case>{
           {{}, true, "tls-ca: empty; expected --tls-ca"},
           {{true, certs_->cert("server"), "", ""}, true, "plaintext: set together with"},
           {{false, certs_->cert("server"), certs_->key("server"), ""}, true, "tls-ca: empty"},
           {{false, "", "", certs_->ca()}, true, "tls-cert: empty; a server needs"},
           {{false, certs_->cert("client"), "", certs_->ca()},
            false,
            "tls-key: empty; expected both"},
           {{false, "", "", "/nonexistent/ca.pem"}, false, "tls-ca: '/nonexistent/ca.pem' cannot"},
           {{false, "", "", not_pem}, false, "is not a PEM file"},
       }) {
    auto loaded = TransportSecurity::Load(c.options, c.server);
    ASSERT_FALSE(loaded.ok()) << c.message;
    EXPECT_EQ(loaded.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(loaded.status().message().find(c.message), std::string::npos) << loaded.status();
  }
  auto plaintext = TransportSecurity::Load({true, "", "", ""}, true);
  ASSERT_TRUE(plaintext.ok());
  EXPECT_TRUE(plaintext->plaintext());
}

}  // namespace
}  // namespace resbm
