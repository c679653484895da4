// TokenVocabulary: bytes, a Hugging Face vocab.json in GPT-2's byte alphabet, a plain token
// list, and malformed files refused naming the entry.
#include "tools/generate/token_vocabulary.h"

#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/scoped_temp_dir.h"

namespace resbm {
namespace {

using ::testing::HasSubstr;

TEST(TokenVocabularyTest, BytesRoundTrip) {
  const TokenVocabulary bytes = TokenVocabulary::Bytes();
  auto ids = bytes.EncodeBytes("Hi\n\xff");
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(*ids, (std::vector<int64_t>{72, 105, 10, 255}));
  EXPECT_EQ(bytes.Decode(*ids), "Hi\n\xff");
}

TEST(TokenVocabularyTest, DecodesGpt2ByteLevelTokens) {
  ScopedTempDir dir;
  // "Ġ" (U+0120) is GPT-2's space, "Ċ" (U+010A) its newline.
  std::ofstream(dir.File("vocab.json")) << R"({"Hello": 0, "\u0120world": 1, "\u010a": 2, "!": 5})";
  auto vocab = TokenVocabulary::Load(dir.File("vocab.json"));
  ASSERT_TRUE(vocab.ok()) << vocab.status();
  EXPECT_EQ(vocab->Decode({0, 1, 5, 2, 3}), "Hello world!\n<3>");
  EXPECT_EQ(vocab->EncodeBytes("x").status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(TokenVocabularyTest, ReadsOneTokenPerLine) {
  ScopedTempDir dir;
  std::ofstream(dir.File("tokens.txt")) << "a\nb c\n";
  auto vocab = TokenVocabulary::Load(dir.File("tokens.txt"));
  ASSERT_TRUE(vocab.ok());
  EXPECT_EQ(vocab->Decode({1, 0}), "b ca");
}

TEST(TokenVocabularyTest, RefusesMalformedFiles) {
  ScopedTempDir dir;
  std::ofstream(dir.File("bad.json")) << R"({"a": -1})";
  EXPECT_THAT(std::string(TokenVocabulary::Load(dir.File("bad.json")).status().message()),
              HasSubstr("token 'a'"));
  std::ofstream(dir.File("cp.json")) << R"({"\u4e00": 1})";
  EXPECT_THAT(std::string(TokenVocabulary::Load(dir.File("cp.json")).status().message()),
              HasSubstr("not in GPT-2's byte alphabet"));
  std::ofstream(dir.File("broken.json")) << R"({"a": )";
  EXPECT_FALSE(TokenVocabulary::Load(dir.File("broken.json")).ok());
  EXPECT_EQ(TokenVocabulary::Load(dir.File("none")).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace resbm
