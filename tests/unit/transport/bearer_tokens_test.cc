#include "common/transport/bearer_tokens.h"

#include "gtest/gtest.h"

namespace resbm {
namespace {

constexpr char kTokens[] = R"(# users of the job API
alice  0123456789abcdef0123
bob    fedcba9876543210fedc   # a comment after the token
)";

TEST(BearerTokensTest, KnownTokensNameTheirUser) {
  auto tokens = BearerTokens::Parse(kTokens, "tokens");
  ASSERT_TRUE(tokens.ok()) << tokens.status();
  EXPECT_EQ(tokens->size(), 2u);
  EXPECT_EQ(*tokens->Authenticate("Bearer 0123456789abcdef0123"), "alice");
  EXPECT_EQ(*tokens->Authenticate("Bearer fedcba9876543210fedc"), "bob");
  EXPECT_EQ(*tokens->Authenticate("bearer fedcba9876543210fedc"), "bob");  // Scheme any case.
}

TEST(BearerTokensTest, AnythingElseIsUnauthenticatedWithoutNamingTokens) {
  auto tokens = BearerTokens::Parse(kTokens, "tokens");
  ASSERT_TRUE(tokens.ok());
  for (const std::string& header :
       {std::string(), std::string("0123456789abcdef0123"), std::string("Basic YWxpY2U6eA=="),
        std::string("Bearer 0123456789abcdef012"), std::string("Bearer 0123456789abcdef01234"),
        std::string("Bearer "), std::string("Bearer FEDCBA9876543210FEDC")}) {
    auto user = tokens->Authenticate(header);
    ASSERT_FALSE(user.ok()) << header;
    EXPECT_EQ(user.status().code(), absl::StatusCode::kUnauthenticated) << header;
    EXPECT_EQ(user.status().message().find("0123456789abcdef0123"), std::string::npos);
    EXPECT_EQ(user.status().message().find("alice"), std::string::npos);
  }
}

TEST(BearerTokensTest, BadFilesAreClearErrors) {
  struct Case {
    std::string text;
    std::string message;
  };
  for (const Case& c : std::vector<Case>{
           {"alice\n", "tokens:1: 1 fields; expected 'USER TOKEN'"},
           {"alice short\n",
            "tokens:1: the token of 'alice' has 5 characters; expected at least 16"},
           {"a 0123456789abcdef\na fedcba9876543210\n", "tokens:2: user 'a' given twice"},
           {"a 0123456789abcdef\nb 0123456789abcdef\n", "tokens:2: token given twice"},
           {"# nothing\n\n", "tokens: no tokens"},
           {"a b c\n", "tokens:1: 3 fields"},
       }) {
    auto tokens = BearerTokens::Parse(c.text, "tokens");
    ASSERT_FALSE(tokens.ok()) << c.text;
    EXPECT_EQ(tokens.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(tokens.status().message().find(c.message), std::string::npos) << tokens.status();
  }
  auto missing = BearerTokens::Load("/nonexistent/tokens");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(missing.status().message().find("/nonexistent/tokens"), std::string::npos);
}

}  // namespace
}  // namespace resbm
