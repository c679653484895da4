#include "common/transport/transport_security.h"

#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace resbm {
namespace {

// The contents of a PEM file, or InvalidArgument naming the flag it came from.
absl::StatusOr<std::string> ReadPem(const std::string& flag, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(absl::StrCat(flag, ": '", path, "' cannot be read"));
  }
  std::stringstream text;
  text << in.rdbuf();
  if (!absl::StrContains(text.str(), "-----BEGIN ")) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": '", path, "' is not a PEM file (no -----BEGIN line)"));
  }
  return text.str();
}

}  // namespace

TransportSecurity TransportSecurity::Plaintext() { return TransportSecurity(); }

absl::StatusOr<TransportSecurity> TransportSecurity::Load(const TransportSecurityOptions& options,
                                                          bool server) {
  const bool any_tls =
      !options.cert_file.empty() || !options.key_file.empty() || !options.ca_file.empty();
  if (options.plaintext) {
    if (any_tls) {
      return absl::InvalidArgumentError(
          "plaintext: set together with --tls-cert/--tls-key/--tls-ca; expected one or the "
          "other");
    }
    return Plaintext();
  }
  if (!any_tls) {
    return absl::InvalidArgumentError(
        "tls-ca: empty; expected --tls-ca (and, for a server, --tls-cert and --tls-key), or "
        "--plaintext for a local run");
  }
  if (options.ca_file.empty()) {
    return absl::InvalidArgumentError("tls-ca: empty; expected the CA bundle peers chain to");
  }
  if (server && (options.cert_file.empty() || options.key_file.empty())) {
    return absl::InvalidArgumentError(
        absl::StrCat(options.cert_file.empty() ? "tls-cert" : "tls-key",
                     ": empty; a server needs its certificate and key"));
  }
  if (options.cert_file.empty() != options.key_file.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(options.cert_file.empty() ? "tls-cert" : "tls-key",
                     ": empty; expected both --tls-cert and --tls-key or neither"));
  }
  TransportSecurity security;
  security.plaintext_ = false;
  auto ca = ReadPem("tls-ca", options.ca_file);
  if (!ca.ok()) return ca.status();
  security.ca_pem_ = *std::move(ca);
  if (!options.cert_file.empty()) {
    auto cert = ReadPem("tls-cert", options.cert_file);
    if (!cert.ok()) return cert.status();
    auto key = ReadPem("tls-key", options.key_file);
    if (!key.ok()) return key.status();
    security.cert_pem_ = *std::move(cert);
    security.key_pem_ = *std::move(key);
  }
  return security;
}

std::shared_ptr<grpc::ServerCredentials> TransportSecurity::ServerCredentials(
    ClientCertificates mode) const {
  if (plaintext_) return grpc::InsecureServerCredentials();
  grpc::SslServerCredentialsOptions ssl(
      mode == ClientCertificates::kRequire
          ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
          : GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
  ssl.pem_root_certs = ca_pem_;
  ssl.pem_key_cert_pairs.push_back({key_pem_, cert_pem_});
  return grpc::SslServerCredentials(ssl);
}

std::shared_ptr<grpc::ChannelCredentials> TransportSecurity::ChannelCredentials() const {
  if (plaintext_) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = ca_pem_;
  ssl.pem_private_key = key_pem_;
  ssl.pem_cert_chain = cert_pem_;
  return grpc::SslCredentials(ssl);
}

void AddTransportSecurityFlags(FlagParser* flags, TransportSecurityOptions* options) {
  flags->AddString("tls-cert", &options->cert_file,
                   "this service's certificate chain (PEM; tools/make_certs.sh makes one)");
  flags->AddString("tls-key", &options->key_file, "its private key (PEM)");
  flags->AddString("tls-ca", &options->ca_file,
                   "the CA bundle (PEM) every peer's certificate must chain to");
  flags->AddBool("plaintext", &options->plaintext,
                 "no TLS and no peer certificates: only for a cluster on one machine or a "
                 "trusted network (one of --plaintext or the --tls-* flags is required)");
}

bool PeerCertificateVerified(const grpc::ServerContextBase& context) {
  const std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  return auth != nullptr && auth->IsPeerAuthenticated();
}

}  // namespace resbm
