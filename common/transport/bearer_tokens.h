// BearerTokens: the per-user tokens a service accepts in "authorization: Bearer <token>"
// metadata, loaded from a file of "USER TOKEN" lines ('#' starts a comment). Immutable after
// Load; thread-safe.
#ifndef RESBM_COMMON_TRANSPORT_BEARER_TOKENS_H_
#define RESBM_COMMON_TRANSPORT_BEARER_TOKENS_H_

#include <grpcpp/grpcpp.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace resbm {

class BearerTokens {
 public:
  // Tokens shorter than this are refused: they could be guessed.
  static constexpr size_t kMinTokenLength = 16;

  // InvalidArgument naming the file and line for a malformed line, a short token, a user or
  // token given twice, or a file without tokens; NotFound when it cannot be read.
  static absl::StatusOr<BearerTokens> Load(const std::string& path);
  static absl::StatusOr<BearerTokens> Parse(const std::string& text, const std::string& source);

  // The user whose token the call carries. Unauthenticated, without saying which tokens exist,
  // when the metadata is missing, not "Bearer <token>", or the token is unknown.
  absl::StatusOr<std::string> Authenticate(const grpc::ServerContextBase& context) const;
  absl::StatusOr<std::string> Authenticate(const std::string& authorization) const;

  size_t size() const { return users_.size(); }

 private:
  std::vector<std::string> users_;
  std::vector<std::string> tokens_;
};

}  // namespace resbm

#endif  // RESBM_COMMON_TRANSPORT_BEARER_TOKENS_H_
