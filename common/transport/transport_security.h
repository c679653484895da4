// TransportSecurity: the TLS material of one process (its certificate and key, and the CA its
// peers' certificates must chain to) turned into gRPC credentials, or an explicit plaintext
// mode for local runs. Every server and channel of the services is built from one of these,
// so TLS is all or nothing per process. Immutable after Load; thread-safe.
#ifndef RESBM_COMMON_TRANSPORT_TRANSPORT_SECURITY_H_
#define RESBM_COMMON_TRANSPORT_TRANSPORT_SECURITY_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/runtime/flag_parser.h"

namespace resbm {

// Paths as the flags give them (--tls-cert, --tls-key, --tls-ca, --plaintext).
struct TransportSecurityOptions {
  // The explicit opt-out: no TLS anywhere. For runs on one machine or a trusted network only.
  bool plaintext = false;
  std::string cert_file;  // This process's certificate chain, PEM.
  std::string key_file;   // Its private key, PEM.
  std::string ca_file;    // The CA bundle peers' certificates must chain to, PEM.
};

class TransportSecurity {
 public:
  // What a TLS server asks of its clients.
  enum class ClientCertificates {
    // Peers must present a certificate that chains to the CA (stage workers: only the
    // coordinator and the neighbouring stages call them).
    kRequire,
    // Verified when presented, optional otherwise (the coordinator: workers present one, users
    // of the job API come with a bearer token instead); see PeerCertificateVerified.
    kVerifyIfPresented,
  };

  // Reads the PEM files. A server needs cert, key and CA; a client needs at least the CA (to
  // verify the server) and presents its certificate when cert and key are given. Errors:
  // InvalidArgument naming the flag and path when a file is missing, empty or not PEM, or when
  // there is no TLS material and `plaintext` was not asked for.
  static absl::StatusOr<TransportSecurity> Load(const TransportSecurityOptions& options,
                                                bool server);
  static TransportSecurity Plaintext();

  bool plaintext() const { return plaintext_; }
  std::shared_ptr<grpc::ServerCredentials> ServerCredentials(ClientCertificates mode) const;
  std::shared_ptr<grpc::ChannelCredentials> ChannelCredentials() const;

 private:
  TransportSecurity() = default;

  bool plaintext_ = true;
  std::string cert_pem_;
  std::string key_pem_;
  std::string ca_pem_;
};

// --tls-cert, --tls-key, --tls-ca and --plaintext, the same on every service.
void AddTransportSecurityFlags(FlagParser* flags, TransportSecurityOptions* options);

// Whether the call's peer presented a certificate that chained to the CA (false on a
// plaintext connection).
bool PeerCertificateVerified(const grpc::ServerContextBase& context);

}  // namespace resbm

#endif  // RESBM_COMMON_TRANSPORT_TRANSPORT_SECURITY_H_
