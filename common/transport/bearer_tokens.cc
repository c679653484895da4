#include "common/transport/bearer_tokens.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace resbm {
namespace {

// Compares in time that depends only on the longer length, so a caller can find neither a
// token byte by byte nor its length from response times.
bool ConstantTimeEquals(const std::string& a, const std::string& b) {
  const size_t n = std::max(a.size(), b.size());
  size_t difference = a.size() ^ b.size();
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    difference |= static_cast<size_t>(x ^ y);
  }
  return difference == 0;
}

}  // namespace

absl::StatusOr<BearerTokens> BearerTokens::Load(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat("auth-tokens-file: '", path, "' cannot be read"));
  }
  std::stringstream text;
  text << in.rdbuf();
  return Parse(text.str(), path);
}

absl::StatusOr<BearerTokens> BearerTokens::Parse(const std::string& text,
                                                 const std::string& source) {
  BearerTokens tokens;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line.substr(0, line.find('#')));
    if (line.empty()) continue;
    std::vector<std::string> fields =
        absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    const std::string where = absl::StrCat(source, ":", line_number);
    if (fields.size() != 2) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": ", fields.size(), " fields; expected 'USER TOKEN'"));
    }
    if (fields[1].size() < kMinTokenLength) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": the token of '", fields[0], "' has ", fields[1].size(),
                       " characters; expected at least ", kMinTokenLength));
    }
    for (size_t i = 0; i < tokens.users_.size(); ++i) {
      if (tokens.users_[i] == fields[0] || tokens.tokens_[i] == fields[1]) {
        return absl::InvalidArgumentError(absl::StrCat(
            where, ": ", tokens.users_[i] == fields[0] ? "user '" + fields[0] + "'" : "token",
            " given twice; expected each once"));
      }
    }
    tokens.users_.push_back(fields[0]);
    tokens.tokens_.push_back(fields[1]);
  }
  if (tokens.users_.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": no tokens; expected 'USER TOKEN' lines"));
  }
  return tokens;
}

absl::StatusOr<std::string> BearerTokens::Authenticate(const std::string& authorization) const {
  constexpr absl::string_view kScheme = "Bearer ";
  if (authorization.empty()) {
    return absl::UnauthenticatedError(
        "authorization: missing; expected 'Bearer <token>' (resbmctl --token or $RESBM_TOKEN)");
  }
  // The scheme is case-insensitive (RFC 9110); the token is not.
  if (!absl::StartsWithIgnoreCase(authorization, kScheme)) {
    return absl::UnauthenticatedError(
        "authorization: not a bearer token; expected 'Bearer <token>'");
  }
  const std::string token(authorization.substr(kScheme.size()));
  std::string user;
  // Every token is compared, so the time does not say which one (nearly) matched.
  for (size_t i = 0; i < tokens_.size(); ++i) {
    if (ConstantTimeEquals(token, tokens_[i])) user = users_[i];
  }
  if (user.empty()) return absl::UnauthenticatedError("authorization: unknown token");
  return user;
}

absl::StatusOr<std::string> BearerTokens::Authenticate(
    const grpc::ServerContextBase& context) const {
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("authorization");
  if (it == metadata.end()) return Authenticate(std::string());
  return Authenticate(std::string(it->second.data(), it->second.size()));
}

}  // namespace resbm
